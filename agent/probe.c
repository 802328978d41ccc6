/* probe.c -- one AUTH/ROLE/PING exchange with one Redis instance over a persistent hiredis async
 * link. */
#include "probe.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "conf.h"
#include "log.h"
#include "redislink.h"
#include "reply.h"
#include "util.h"

#define PROBE_ROLE_PERIOD 10.0 /* seconds between ROLE queries on one connection */

/* Commands without arguments, formatted once for every instance. */
static const char cmd_ping[] = "*1\r\n$4\r\nPING\r\n";
static const char cmd_role[] = "*1\r\n$4\r\nROLE\r\n";

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
    p->ac = NULL;
    p->connected = 0;
    ac->data = NULL;
    redisAsyncFree(ac);
}

/* Ends the running probe and reports it to the owner. */
static void
probe_finish(struct probe *p, const struct probe_result *r, int tilt)
{
    ev_timer_stop(p->loop, &p->deadline);
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

/* The link is being torn down by hiredis (NULL reply): forget it, and fail the probe. */
static void
link_lost(struct probe *p, redisAsyncContext *ac)
{
    p->ac = NULL; /* hiredis frees it once its callbacks return */
    p->connected = 0;
    if (p->inflight)
        fail_with_context_error(p, &ac->c);
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
    p->ac = NULL;
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
    p->ac = NULL;
    p->connected = 0;
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
    struct probe *p = live_probe(ac, privdata);

    if (p == NULL)
        return;
    if (reply == NULL) {
        link_lost(p, ac);
        return;
    }
    p->auth_failed = reply_auth_failed(reply);
}

static void
role_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct probe *p = live_probe(ac, privdata);

    if (p == NULL)
        return;
    if (reply == NULL) {
        link_lost(p, ac);
        return;
    }
    p->role = reply_parse_role(reply);
    p->role_known = 1;
    p->role_due = ev_now(p->loop) + PROBE_ROLE_PERIOD;
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

static void
ping_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct probe *p = live_probe(ac, privdata);
    struct probe_result r = {0};

    if (p == NULL)
        return;
    if (reply == NULL) {
        link_lost(p, ac);
        return;
    }
    reader_rewind(ac);
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
    r.role_known = p->role_known;
    r.role = p->role;
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
        redisAsyncHandleRead(p->ac); /* may finish the probe, or tear the link down */
        if (!p->inflight)
            return;
    }

    link_drop(p);
    r.status = PROBE_TIMEOUT;
    util_strlcpy(r.reason, "timeout", sizeof(r.reason));
    probe_finish(p, &r, tilt);
}

void
probe_init(struct probe *p, struct ev_loop *loop, const struct conf_instance *ci,
           probe_done_fn *done, probe_eof_fn *eof, void *ud)
{
    memset(p, 0, sizeof(*p));
    p->loop = loop;
    p->conf = ci;
    p->done = done;
    p->eof = eof;
    p->ud = ud;
    ev_init(&p->deadline, deadline_cb);
    p->deadline.data = p;
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
        r->status = PROBE_FAILED;
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
        r->status = PROBE_FAILED;
        util_strlcpy(r->reason, "cannot attach to the event loop", sizeof(r->reason));
        return -1;
    }
    ac->data = p;
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    p->ac = ac;
    p->connected = 0;
    p->role_due = 0; /* a new link asks ROLE */
    return 0;
}

void
probe_start(struct probe *p)
{
    struct probe_result r = {0};
    int fresh = 0;

    p->inflight = 1;
    p->started = ev_now(p->loop);
    p->t0 = ev_time();
    p->auth_failed = 0;
    p->role_known = 0;
    if (p->ac == NULL) {
        if (link_open(p, &r) < 0) {
            p->inflight = 0;
            p->done(p->ud, &r, 0);
            return;
        }
        fresh = 1;
    }
    ev_timer_set(&p->deadline, (double)p->conf->timeout_ms / 1000.0, 0.);
    ev_timer_start(p->loop, &p->deadline);

    int rc = REDIS_OK;
    if (fresh && p->cmd_auth != NULL)
        rc = redisAsyncFormattedCommand(p->ac, auth_cb, p, p->cmd_auth, (size_t)p->cmd_auth_len);
    if (rc == REDIS_OK && p->started >= p->role_due)
        rc = redisAsyncFormattedCommand(p->ac, role_cb, p, cmd_role, sizeof(cmd_role) - 1);
    if (rc == REDIS_OK)
        rc = redisAsyncFormattedCommand(p->ac, ping_cb, p, cmd_ping, sizeof(cmd_ping) - 1);
    if (rc != REDIS_OK) {
        /* The link is closing; the callbacks queued so far are abandoned with it. */
        link_drop(p);
        r.status = PROBE_FAILED;
        util_strlcpy(r.reason, "connection lost", sizeof(r.reason));
        probe_finish(p, &r, 0);
        return;
    }
    /*
     * Write the commands now instead of waiting for the loop to report the socket writable:
     * hiredis starts and stops its write watcher within this iteration, which libev folds
     * into no epoll_ctl at all, and the probe costs one loop wake-up less.
     * A new link is handed to hiredis only once its connect has settled (poll says writable:
     * connected, or refused -- on loopback both are known as soon as connect() returns), so
     * a refused reconnect after a Redis died is conclusive within this same iteration.
     * Either call may tear the link down right here (the callbacks report the probe), so
     * nothing may touch p->ac after it.
     */
    if (fresh) {
        struct pollfd pfd = {.fd = p->ac->c.fd, .events = POLLOUT};
        if (poll(&pfd, 1, 0) == 1)
            redisAsyncHandleWrite(p->ac);
    } else if (p->connected && (p->ac->c.flags & REDIS_CONNECTED)) {
        redisAsyncHandleWrite(p->ac);
    }
}

void
probe_close(struct probe *p)
{
    ev_timer_stop(p->loop, &p->deadline);
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
