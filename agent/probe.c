/* probe.c -- one PING/ROLE exchange with one Redis instance over a persistent hiredis async
 * link, the stale link a timed-out exchange leaves, and the fresh-connect check. */
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "conf.h"
#include "log.h"
#include "redislink.h"
#include "reply.h"
#include "util.h"

/*
 * How long a stale link (a timed-out probe's commands still unanswered on it) is waited on
 * before a probe replaces it with a fresh one: at least PROBE_STALE_MIN_S, and at least two
 * timeouts. A half-open link (its peer gone without a RST) or one a fork child holds can
 * then keep an instance down at most this long after the server is back.
 */
#define PROBE_STALE_MIN_S 2.0

/* A probe's commands, ROLE then PING, formatted once for every instance: PING's reply ends it. */
static const char cmd_probe[] = "*1\r\n$4\r\nROLE\r\n*1\r\n$4\r\nPING\r\n";
static void role_cb(redisAsyncContext *ac, void *reply, void *privdata);
static void ping_cb(redisAsyncContext *ac, void *reply, void *privdata);
static redisCallbackFn *const probe_fns[] = {role_cb, ping_cb};

/* The link is gone (hiredis frees it, or we did): forget everything that was about it. */
static void
link_forget(struct probe *p)
{
    p->ac = NULL;
    p->connected = 0;
    p->stale = 0;
    p->answered = 0;
}

/*
 * Drops the link. ac->data is cleared first so that the callbacks hiredis runs while
 * freeing (queued replies with NULL, the disconnect callback) know the link is abandoned.
 * Inside a reply callback hiredis defers the free until the callback returns.
 */
static void
link_drop(struct probe *p)
{
    redisAsyncContext *ac = p->ac;

    if (ac == NULL)
        return;
    link_forget(p);
    ac->data = NULL;
    redisAsyncFree(ac);
}

/* Closes the fresh-connect check's socket, if one is open. */
static void
check_stop(struct probe *p)
{
    if (p->check_fd < 0)
        return;
    ev_io_stop(p->loop, &p->check_io);
    close(p->check_fd);
    p->check_fd = -1;
}

/* Ends the running probe and reports it to the owner. */
static void
probe_finish(struct probe *p, const struct probe_result *r, int tilt)
{
    ev_timer_stop(p->loop, &p->deadline);
    check_stop(p);
    p->inflight = 0;
    p->done(p->ud, r, tilt);
}

static void
fail_with_context_error(struct probe *p, const redisContext *c)
{
    struct probe_result r = {0};

    r.status = reply_classify_error(c->err, c->errstr, r.reason, sizeof(r.reason));
    probe_finish(p, &r, 0);
}

/*
 * The link is being torn down by hiredis (NULL reply): forget it, and fail the probe. A stale
 * link that goes (the fork child that held it exited, the server closed it) is news like an
 * idle link's EOF: the owner may probe at once.
 */
static void
link_lost(struct probe *p, redisAsyncContext *ac)
{
    int was_stale = p->stale;

    link_forget(p); /* hiredis frees it once its callbacks return */
    if (p->inflight)
        fail_with_context_error(p, &ac->c);
    else if (was_stale)
        p->eof(p->ud);
}

/* Returns the probe a callback belongs to, or NULL if its link was abandoned. */
static struct probe *
live_probe(const redisAsyncContext *ac, void *privdata)
{
    struct probe *p = privdata;

    if (ac->data == NULL || p == NULL || p->ac != ac)
        return NULL;
    return p;
}

/*
 * The probe a reply callback is for, or NULL when there is nothing to do: its link was
 * abandoned, or hiredis is tearing the link down (REPLY NULL), which this reports.
 */
static struct probe *
replied_probe(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct probe *p = live_probe(ac, privdata);

    if (p != NULL && reply == NULL) {
        link_lost(p, ac);
        return NULL;
    }
    return p;
}

static void
connect_cb(const redisAsyncContext *ac, int status)
{
    struct probe *p = ac->data;

    if (p == NULL || p->ac != ac)
        return;
    if (status == REDIS_OK) {
        p->connected = 1;
        return;
    }
    /* hiredis frees the context after we return; ac->err is not set yet, c.err is. */
    link_forget(p);
    if (p->inflight)
        fail_with_context_error(p, &ac->c);
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct probe *p = ac->data;

    (void)status;
    if (p == NULL || p->ac != ac)
        return;
    link_forget(p);
    if (p->inflight) {
        fail_with_context_error(p, &ac->c);
        return;
    }
    /* An idle link hit EOF: the server probably died. Let the owner probe at once. */
    p->eof(p->ud);
}

static void
auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct probe *p = replied_probe(ac, reply, privdata);

    if (p == NULL)
        return;
    p->auth_failed = reply_auth_failed(reply);
}

/* ROLE's answer is kept for the PING reply that follows it (possibly late: see ping_cb). */
static void
role_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct probe *p = replied_probe(ac, reply, privdata);

    if (p == NULL)
        return;
    p->role_noperm = reply_parse_role(reply, &p->role) == REPLY_ROLE_NOPERM;
}

/*
 * hiredis 0.14 keeps the replies it has parsed in its read buffer until 1 KiB has gone through
 * it, so every idle link's buffer would grow to that size: at many instances, most of the
 * agent's memory per instance (docs/performance.md). A probe ends with nothing left to parse:
 * rewind the buffer in place (no allocation; its capacity stays what the largest reply
 * needed), as the reader itself does once past 1 KiB. The reply objects are copies, not
 * pointers into it. This reads the reader's private fields: another hiredis must be checked.
 */
#if HIREDIS_MAJOR != 0 || HIREDIS_MINOR != 14
#error "reader_rewind() relies on hiredis 0.14's redisReader internals: check it for this hiredis"
#endif
static void
reader_rewind(redisAsyncContext *ac)
{
    redisReader *rd = ac->c.reader;

    if (rd != NULL && rd->ridx == -1 && rd->pos == rd->len && rd->len > 0) {
        sdsclear(rd->buf);
        rd->pos = 0;
        rd->len = 0;
    }
}

/*
 * PING is the last command of an exchange: its reply ends it. On a stale link it is a late
 * reply -- the server is back from a hang: it completes the probe that was waiting on the
 * link, or, between probes, has the owner probe again at once.
 */
static void
ping_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct probe *p = replied_probe(ac, reply, privdata);
    struct probe_result r = {0};

    if (p == NULL)
        return;
    reader_rewind(ac);
    p->answered = 1;
    p->stale = 0;
    if (!p->inflight) {
        p->wake(p->ud);
        return;
    }
    r.status = reply_classify_ping(reply, r.reason, sizeof(r.reason));
    if (p->auth_failed) {
        r.status = PROBE_FAILED;
        util_strlcpy(r.reason, "auth failed", sizeof(r.reason));
        /* A refused AUTH leaves the link unauthenticated: start over on a new one. */
        link_drop(p);
    }
    if (r.status == PROBE_OK) {
        double rtt = ev_time() - p->t0;
        r.latency_us = rtt > 0 ? (int64_t)(rtt * 1e6) : 0;
    }
    r.role = &p->role;
    r.role_noperm = p->role_noperm;
    probe_finish(p, &r, 0);
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct probe *p = w->data;
    struct probe_result r = {0};

    (void)revents;
    /*
     * A deadline that fires more than two intervals late says the loop itself stalled
     * (suspend, SIGSTOP): the timeout was judged on bad timing and must not move state.
     */
    double late = ev_now(loop) - (p->started + (double)p->conf->timeout_ms / 1000.0);
    int tilt = late > 2.0 * (double)p->conf->interval_ms / 1000.0;

    /*
     * libev runs due timers before the I/O callbacks of the same iteration. After the loop
     * fell behind (a start-up storm of thousands of connects and first publications, a slow
     * callback) deadlines would fire while the replies already sit unread in the sockets,
     * and a busy agent would call healthy instances down by the thousand. So, unless the
     * stall was long enough for TILT, read what has arrived first: if the reply is there the
     * probe completes normally (with its real, late, round trip), and only a probe that is
     * still unanswered times out. At most one read() per expired deadline.
     */
    if (!tilt && p->ac != NULL && p->connected) {
        redislink_read(p->ac); /* may finish the probe, or tear the link down */
        if (!p->inflight)
            return;
    }

    /*
     * A connected link keeps its unanswered commands: it is stale, and their late reply will
     * say the server is back (ping_cb). Nothing more is sent on it. A link whose connect never
     * settled is of no use: dropped.
     */
    if (p->ac != NULL && p->connected) {
        if (!p->stale) {
            p->stale = 1;
            p->stale_since = p->started;
            p->checked = 0;
        }
    } else {
        link_drop(p);
    }
    r.status = PROBE_TIMEOUT;
    util_strlcpy(r.reason, "timeout", sizeof(r.reason));
    probe_finish(p, &r, tilt);
}

/*
 * The fresh-connect check settled with ERR (0: connected). A refusal (or a missing unix
 * socket) ends the waiting probe as conclusive: whatever holds the stale link open, the server
 * does not listen any more (a fork child of a killed Redis keeps its connections). The stale
 * link is dropped with it. Anything else says nothing: the probe keeps waiting.
 */
static void
check_settled(struct probe *p, int err)
{
    struct probe_result r = {0};

    check_stop(p);
    if (err != ECONNREFUSED && err != ENOENT)
        return;
    link_drop(p);
    r.status = PROBE_CONCLUSIVE;
    util_strlcpy(r.reason, err == ENOENT ? "no such socket" : "connection refused",
                 sizeof(r.reason));
    probe_finish(p, &r, 0);
}

static void
check_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct probe *p = w->data;
    int err = 0;
    socklen_t len = sizeof(err);

    (void)loop;
    (void)revents;
    if (getsockopt(p->check_fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return;
    check_settled(p, err);
}

/*
 * Starts the fresh-connect check of a probe waiting on a stale link: a plain non-blocking
 * connect() to the instance's address, closed as soon as it settles -- at once on loopback,
 * else through check_io within the probe's deadline. It uses one fd more than the link, for
 * that long only. If the agent has no fd to spare, there is no check.
 */
static void
check_start(struct probe *p)
{
    const struct addr *a = &p->conf->addr;
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, rc;

    memset(&ss, 0, sizeof(ss));
    if (a->family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        un->sun_family = AF_UNIX;
        util_strlcpy(un->sun_path, a->path, sizeof(un->sun_path));
        len = sizeof(*un);
    } else if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)a->port);
        if (inet_pton(AF_INET, a->host, &in->sin_addr) != 1)
            return;
        len = sizeof(*in);
    } else if (a->family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)a->port);
        if (inet_pton(AF_INET6, a->host, &in6->sin6_addr) != 1)
            return;
        len = sizeof(*in6);
    } else {
        return;
    }
    fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return; /* EMFILE and the like: the agent's own limit, no verdict */
    p->check_fd = fd;
    rc = connect(fd, (struct sockaddr *)&ss, len);
    if (rc == 0) {
        check_settled(p, 0);
        return;
    }
    if (errno != EINPROGRESS) {
        check_settled(p, errno);
        return;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    if (poll(&pfd, 1, 0) == 1) {
        check_cb(p->loop, &p->check_io, EV_WRITE);
        return;
    }
    ev_io_set(&p->check_io, fd, EV_WRITE);
    ev_io_start(p->loop, &p->check_io);
}

void
probe_init(struct probe *p, struct ev_loop *loop, const struct conf_instance *ci,
           probe_done_fn *done, probe_eof_fn *eof, probe_wake_fn *wake, void *ud)
{
    memset(p, 0, sizeof(*p));
    p->loop = loop;
    p->conf = ci;
    p->done = done;
    p->eof = eof;
    p->wake = wake;
    p->ud = ud;
    ev_init(&p->deadline, deadline_cb);
    p->deadline.data = p;
    ev_init(&p->check_io, check_cb);
    p->check_io.data = p;
    p->check_fd = -1;
    if (ci->password != NULL) {
        /* Arguments, never splicing: the secret is not a format string. */
        p->cmd_auth_len = ci->username ? redisFormatCommand(&p->cmd_auth, "AUTH %s %s",
                                                            ci->username, ci->password)
                                       : redisFormatCommand(&p->cmd_auth, "AUTH %s", ci->password);
        if (p->cmd_auth_len < 0) {
            char comp[CONF_NAME_MAX + 16];

            snprintf(comp, sizeof(comp), "instance %s", ci->name);
            fatal(comp, "cannot format AUTH");
        }
    }
}

/* Opens the link; returns 0, or -1 with the failure in R. */
static int
link_open(struct probe *p, struct probe_result *r)
{
    const struct addr *a = &p->conf->addr;
    redisAsyncContext *ac;

    ac =
        a->family == AF_UNIX ? redisAsyncConnectUnix(a->path) : redisAsyncConnect(a->host, a->port);
    if (ac == NULL) {
        r->status = PROBE_AGENT_ERROR;
        util_strlcpy(r->reason, "out of memory", sizeof(r->reason));
        return -1;
    }
    if (ac->err) {
        r->status = reply_classify_error(ac->err, ac->errstr, r->reason, sizeof(r->reason));
        redisAsyncFree(ac);
        return -1;
    }
    if (redislink_attach(p->loop, ac) < 0) {
        redisAsyncFree(ac);
        r->status = PROBE_AGENT_ERROR;
        util_strlcpy(r->reason, "cannot attach to the event loop", sizeof(r->reason));
        return -1;
    }
    ac->data = p;
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    link_forget(p);
    p->ac = ac;
    return 0;
}

/* Seconds a stale link is waited on before a probe replaces it (PROBE_STALE_MIN_S). */
static double
stale_max(const struct probe *p)
{
    double two_timeouts = 2.0 * (double)p->conf->timeout_ms / 1000.0;

    return two_timeouts > PROBE_STALE_MIN_S ? two_timeouts : PROBE_STALE_MIN_S;
}

void
probe_start(struct probe *p)
{
    struct probe_result r = {0};
    int fresh = 0;

    p->inflight = 1;
    p->started = ev_now(p->loop);
    p->t0 = ev_time();
    ev_timer_set(&p->deadline, (double)p->conf->timeout_ms / 1000.0, 0.);

    /*
     * A stale link still carries the last exchange: send nothing more on it (a hung server
     * would pile our commands up), wait for its late reply under this probe's deadline. The
     * first probe waiting on a link that used to answer also tries a fresh connection, which
     * is refused if the server is gone and someone else (a fork child) holds the link. A link
     * unanswered for too long is replaced: a half-open link must not keep an instance down.
     */
    if (p->ac != NULL && p->stale) {
        if (p->started - p->stale_since < stale_max(p)) {
            ev_timer_start(p->loop, &p->deadline);
            if (p->answered && !p->checked) {
                p->checked = 1;
                check_start(p); /* may end the probe: refused */
            }
            return;
        }
        link_drop(p);
    }
    if (p->ac == NULL) {
        if (link_open(p, &r) < 0) {
            p->inflight = 0;
            p->done(p->ud, &r, 0);
            return;
        }
        fresh = 1;
        p->auth_failed = 0;
    }
    ev_timer_start(p->loop, &p->deadline);
    health_role_clear(&p->role);
    p->role_noperm = 0;

    /* AUTH on a new link, then ROLE and PING in one write; PING's reply ends the exchange. */
    int rc = REDIS_OK;
    if (fresh && p->cmd_auth != NULL)
        rc = redisAsyncFormattedCommand(p->ac, auth_cb, p, p->cmd_auth, (size_t)p->cmd_auth_len);
    if (rc == REDIS_OK)
        rc = redislink_send(p->ac, cmd_probe, sizeof(cmd_probe) - 1, probe_fns,
                            (int)ARRAY_LEN(probe_fns), p);
    if (rc != REDIS_OK) {
        /*
         * A link that is closing takes no command; otherwise hiredis could not allocate one:
         * the agent's fault. The callbacks queued so far are abandoned with the link.
         */
        int closing = (p->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) != 0;
        link_drop(p);
        r.status = closing ? PROBE_FAILED : PROBE_AGENT_ERROR;
        util_strlcpy(r.reason, closing ? "connection lost" : "out of memory", sizeof(r.reason));
        probe_finish(p, &r, 0);
        return;
    }
    /*
     * On a link in use the commands went out in redislink_send(). A new link is handed to
     * hiredis only once its connect has settled (poll says writable: connected, or refused --
     * on loopback both are known as soon as connect() returns), so a refused reconnect after a
     * Redis died is conclusive within this same iteration, and the commands are written then
     * instead of when the loop next reports the socket writable. hiredis may tear the link
     * down right here (the callbacks report the probe), so nothing may touch p->ac after it.
     */
    if (fresh) {
        struct pollfd pfd = {.fd = p->ac->c.fd, .events = POLLOUT};
        if (poll(&pfd, 1, 0) == 1)
            redisAsyncHandleWrite(p->ac);
    }
}

void
probe_close(struct probe *p)
{
    ev_timer_stop(p->loop, &p->deadline);
    check_stop(p);
    p->inflight = 0;
    link_drop(p);
}

void
probe_free(struct probe *p)
{
    probe_close(p);
    if (p->cmd_auth != NULL) {
        explicit_bzero(p->cmd_auth, (size_t)p->cmd_auth_len);
        redisFreeCommand(p->cmd_auth);
        p->cmd_auth = NULL;
    }
}
