/* zksession.c -- the publisher's session life: create and free, open, close, restart, expiry,
 * shutdown, retirement on a closer thread, and the client's log callback. */
#include "zkpub.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "addr.h"
#include "log.h"
#include "selfstat.h"
#include "util.h"
#include "zkpriv.h"

#define ZK_TICK_S         0.25 /* housekeeping and watchdog period: bounds growth between checks */
#define ZK_TICK_WARY_S    0.05 /* the period while connected without progress (a frame streams in) */
#define ZK_LOST_FACTOR    3    /* not connected this many session timeouts: start over */
#define ZK_CLOSE_MARGIN_S 1.5  /* of shutdown_timeout, kept for zookeeper_close() */
#define ZK_TIMEOUT_RATIO  10   /* a negotiated timeout this far off what we asked is nonsense */
#define ZK_FLAP_S         1.0  /* a connection lost sooner than this after its handshake is short */
#define ZK_FLAP_COUNT     3    /* short connections in a row that make us back off */
#define ZK_STUCK_S        0.5  /* requests unanswered this long: the connection makes no progress */
#define ZK_SPIN_WINDOW_S  0.25 /* CPU of the client's threads is measured over this */
#define ZK_SPIN_SHARE     0.2 /* ... and more than this share of a core, with no reply, is a spin */
#define ZK_HEAP_SLACK     ((int64_t)32 << 20) /* heap growth no reply of ours can explain */
#define ZK_UNREACHABLE_S  1.0 /* no connection this long after opening: say so (once a minute) */

/*
 * The errno of the client's last failed connection, as its log lines report it
 * ("errno=111(Connection refused)"): the library's log callback carries no context, so this is
 * the one value its threads leave for the loop outside the queue. Read by the tick.
 */
static atomic_int zk_conn_errno;

/* Returns 1 if the word before the hex number at IN[I] names a session id ("sessionId="). */
static int
hex_is_session(const char *in, size_t i)
{
    size_t end, k = i;
    char word[32];
    size_t n = 0;

    while (k > 0 && (in[k - 1] == '=' || in[k - 1] == ':' || in[k - 1] == ' '))
        k--;
    end = k;
    while (k > 0 && (isalnum((unsigned char)in[k - 1]) || in[k - 1] == '_') && end - k < 31)
        k--;
    for (size_t j = k; j < end; j++)
        word[n++] = (char)tolower((unsigned char)in[j]);
    word[n] = '\0';
    return strstr(word, "session") != NULL;
}

/*
 * Copies the client's text IN (LEN bytes) into OUT (CAP bytes) without what must never reach a
 * log: pointers ("watcher=0x55d0c3a0" becomes "watcher=<ptr>"; hex session ids are kept) and
 * passwords ("sessionPasswd=..." becomes "sessionPasswd=<hidden>"). Returns the length.
 */
static size_t
zk_scrub(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0, i = 0;

    while (i < len && o + 16 < cap) {
        if (in[i] == '0' && i + 2 < len && (in[i + 1] == 'x' || in[i + 1] == 'X') &&
            isxdigit((unsigned char)in[i + 2]) && (i == 0 || !isalnum((unsigned char)in[i - 1]))) {
            size_t j = i + 2;

            while (j < len && isxdigit((unsigned char)in[j]))
                j++;
            if (hex_is_session(in, i) && o + (j - i) + 16 < cap) {
                memcpy(out + o, in + i, j - i);
                o += j - i;
            } else {
                memcpy(out + o, "<ptr>", 5);
                o += 5;
            }
            i = j;
            continue;
        }
        if (i + 6 <= len && (strncasecmp(in + i, "passwd", 6) == 0 ||
                             (i + 8 <= len && strncasecmp(in + i, "password", 8) == 0))) {
            size_t kw = strncasecmp(in + i, "passwd", 6) == 0 ? 6 : 8;

            memcpy(out + o, in + i, kw);
            o += kw;
            i += kw;
            if (i < len && (in[i] == '=' || in[i] == ':')) {
                out[o++] = in[i++];
                while (i < len && in[i] != ' ' && in[i] != ',')
                    i++;
                memcpy(out + o, "<hidden>", 8);
                o += 8;
            }
            continue;
        }
        out[o++] = in[i++];
    }
    return o;
}

/*
 * The client's log line "time:pid(tid):ZOO_LEVEL@func@line: message" becomes one of ours,
 * component "zkclient": at error or warn when the library rates it so, at debug otherwise. A
 * refused connection is no news while ZooKeeper is down (it repeats on every retry, several a
 * second): it goes to debug, and our own "cannot reach" line (the tick, once a minute) says it.
 */
void
zkcb_log(const char *msg)
{
    static const struct {
        const char *tag;
        enum log_level level;
    } tags[] = {{"ZOO_ERROR@", LOGL_ERROR},
                {"ZOO_WARN@", LOGL_WARN},
                {"ZOO_INFO@", LOGL_DEBUG},
                {"ZOO_DEBUG@", LOGL_DEBUG}};
    enum log_level level = LOGL_DEBUG;
    const char *p = msg, *t;
    char out[1024];
    size_t len;

    for (size_t i = 0; i < ARRAY_LEN(tags); i++) {
        if ((t = strstr(msg, tags[i].tag)) != NULL) {
            level = tags[i].level;
            p = t + strlen(tags[i].tag);
            if ((t = strstr(p, ": ")) != NULL) /* "func@line: " names the library's code */
                p = t + 2;
            break;
        }
    }
    if ((t = strstr(p, "errno=")) != NULL) {
        int e = atoi(t + 6);

        atomic_store(&zk_conn_errno, e);
        if (e == ECONNREFUSED)
            level = LOGL_DEBUG;
    }
    /* Its pause after trying every server is part of the same story: ours tells it. */
    if (strstr(p, "Delaying connection after exhaustively trying all servers") != NULL)
        level = LOGL_DEBUG;
    len = strlen(p);
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    len = zk_scrub(p, len, out, sizeof(out));
    /* It repeats its connection errors on every retry, several a second: limit repeats. */
    log_text_limited(level, "zkclient", out, len);
}

/* Writes a line of ours at LEVEL, at most once a minute for the same text (it may repeat fast). */
static void __attribute__((format(printf, 2, 3)))
zk_log_limited(enum log_level level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    log_text_limited(level, ZK_COMP, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

#define zk_warn_limited(...) zk_log_limited(LOGL_WARN, __VA_ARGS__)

/* CPU seconds of every thread but this one (the loop's): the client's threads, in practice. */
static double
cpu_of_others(void)
{
    struct timespec proc, self;

    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &proc) != 0 ||
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &self) != 0)
        return 0;
    return (double)(proc.tv_sec - self.tv_sec) + (double)(proc.tv_nsec - self.tv_nsec) / 1e9;
}

/* Forgets the session CID: no id, and the password wiped (the client keeps its own copy). */
static void
zk_cid_wipe(clientid_t *cid)
{
    cid->client_id = 0;
    explicit_bzero(cid->passwd, sizeof(cid->passwd));
}

/* The handed-over session is answered for (confirmed, refused or given up): forget it. */
static void
zk_handed_done(struct zkpub *z)
{
    zk_cid_wipe(&z->handed);
}

static int
zk_open(struct zkpub *z)
{
    sigset_t block, old;
    enum log_level ll = log_get_level();
    const clientid_t *resume = z->resume.client_id != 0   ? &z->resume
                               : z->handed.client_id != 0 ? &z->handed
                                                          : NULL;
    int err;

    /* Its INFO lines are our debug ones; never its DEBUG (DESIGN-NOTES). */
    zoo_set_debug_level(ll == LOGL_ERROR   ? ZOO_LOG_LEVEL_ERROR
                        : ll == LOGL_DEBUG ? ZOO_LOG_LEVEL_INFO
                                           : ZOO_LOG_LEVEL_WARN);
    atomic_store(&zk_conn_errno, 0);
    z->heap_base = selfstat_heap_bytes();
    z->cpu_at = ev_now(z->loop);
    z->cpu_others = cpu_of_others();
    /* The client's two threads inherit this mask: signals stay with the loop thread. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    z->zh = zookeeper_init2(z->hosts, zkcb_session, (int)z->set.session_timeout_ms, resume, z,
                            ZOO_NO_LOG_CLIENTENV, zkcb_log);
    err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    zk_cid_wipe(&z->resume);
    z->session_id = 0;
    z->lost_since = ev_now(z->loop);
    z->last_reply = 0;
    z->connected_at = 0;
    z->handle_connects = 0;
    if (z->zh == NULL) {
        z->open_at = ev_now(z->loop) + zk_backoff(++z->open_fails);
        log_error(ZK_COMP, "cannot start a session with %s: %s", z->hosts, strerror(err));
        z->state = ZK_CLOSED;
        return -1;
    }
    z->state = ZK_CONNECTING;
    zoo_set_servers_resolution_delay(z->zh, -1);
    if (z->set.auth)
        zoo_add_auth(z->zh, "digest", z->set.auth, (int)strlen(z->set.auth), NULL, NULL);
    log_info(ZK_COMP, "connecting to %s (session timeout %" PRId64 "ms%s)", z->hosts,
             z->set.session_timeout_ms, resume ? ", resuming our session" : "");
    return 0;
}

static void on_event(struct zkpub *z, struct zkev *e);
static void zk_finish(struct zkpub *z);

/* Drains the queue: events of a closed handle only release their requests. */
static void
zk_drain(struct zkpub *z)
{
    struct zkev *e;

    while ((e = zkqueue_pop(&z->queue)) != NULL) {
        on_event(z, e);
        zkev_free(e);
    }
}

/*
 * After zookeeper_close() returned (here or on a retired publisher's closer thread):
 * completions the client dropped at close leave their requests in the registry; they are
 * released once the queue is drained, and nothing of the session is ours any more.
 */
static void
zk_after_close(struct zkpub *z)
{
    struct zkreq *r, *tmp;

    zk_drain(z);
    TAILQ_FOREACH_SAFE (r, &z->reqs, link, tmp)
        zk_req_release(r);
    zk_forget_session(z);
}

/* Closes the handle from the loop thread. */
static void
zk_close(struct zkpub *z)
{
    zhandle_t *zh = z->zh;

    if (zh == NULL)
        return;
    zk_batch_discard(z);
    z->zh = NULL;
    zookeeper_close(zh);
    zk_after_close(z);
}

static void
zk_restart(struct zkpub *z)
{
    zk_close(z);
    if (z->state < ZK_STOPPING)
        zk_open(z);
}

static void *
restarter_main(void *arg)
{
    struct zkpub *z = arg;

    zookeeper_close(z->zh_restarting);
    ev_async_send(z->loop, &z->restart_done);
    return NULL;
}

/* The handle given up by zk_backoff_restart() is closed: its requests are released. */
static void
zk_restart_joined(struct zkpub *z)
{
    pthread_join(z->restarter, NULL);
    z->zh_restarting = NULL;
    zk_after_close(z);
}

static void
on_restart_done(struct ev_loop *loop, ev_async *w, int revents)
{
    struct zkpub *z = w->data;

    (void)loop;
    (void)revents;
    if (z->zh_restarting != NULL)
        zk_restart_joined(z);
}

/* Returns 1 if socket FD is connected to one of HOSTS ("ip:port,..." as resolved at start). */
static int
fd_peer_in(int fd, const char *hosts)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN + 16];
    const char *p;
    int port;
    size_t wl;

    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(want, sizeof(want), "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(want, sizeof(want), "[%s]:%d", ip, port);
    } else {
        return 0;
    }
    wl = strlen(want);
    for (p = hosts; (p = strstr(p, want)) != NULL; p += wl)
        if ((p == hosts || p[-1] == ',') && (p[wl] == '\0' || p[wl] == ','))
            return 1;
    return 0;
}

/*
 * Shuts down (never closes: the descriptor stays the client's) every socket of ours connected
 * to a ZooKeeper server of HOSTS. The client's IO thread stuck on a connection (3.8's
 * recv_buffer() after a negative frame length reads nothing more and polls a readable socket
 * until its receive deadline, and zookeeper_close() waits for that thread) then sees the
 * connection fail at once and drops it. Only the handle being given up has such sockets: the
 * next one is opened after it is closed. Loop thread only (no probe opens a socket meanwhile).
 */
static void
zk_kick_sockets(const char *hosts)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    struct stat st;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        int fd = atoi(de->d_name);

        if (de->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        if (fd_peer_in(fd, hosts))
            shutdown(fd, SHUT_RDWR);
    }
    closedir(d);
}

/*
 * Gives the current handle up and opens a new one after our own back-off (0.5 s doubling to
 * 30 s; reset once a connection stayed healthy for a session timeout). The client's own
 * reconnect pace is no defence against a server that answers nonsense: it retries after
 * recv_timeout/60, which a negotiated timeout of 0 makes no wait at all. The handle may be
 * connected, and zookeeper_close() then waits for the server (1.5 s against one that never
 * answers), so it is closed on a thread of its own; the next handle is opened only once it
 * returned, so at most one handle is ever closing. KEEP: the next handle presents the current
 * session again (a server that drops our connections may still hold it). KICK: its connection
 * is stuck (zk_kick_sockets). Returns the delay.
 */
static ev_tstamp
zk_backoff_restart(struct zkpub *z, int keep, int kick)
{
    zhandle_t *zh = z->zh;
    ev_tstamp delay = zk_backoff(++z->open_fails);
    const clientid_t *cid;
    sigset_t block, old;
    int rc;

    memset(&z->resume, 0, sizeof(z->resume));
    if (keep && zh && z->session_id != 0 && (cid = zoo_client_id(zh)) != NULL &&
        cid->client_id == z->session_id)
        z->resume = *cid;
    z->open_at = ev_now(z->loop) + delay;
    z->connected_at = 0;
    z->short_conns = 0;
    z->state = ZK_CONNECTING; /* "connecting": the next handle will */
    if (zh == NULL)
        return delay;
    zk_batch_discard(z);
    if (kick)
        zk_kick_sockets(z->hosts);
    z->zh = NULL; /* events of the old handle only release their requests from now on */
    z->zh_restarting = zh;
    sigfillset(&block);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&z->restarter, NULL, restarter_main, z);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        z->zh_restarting = NULL;
        zookeeper_close(zh);
        zk_after_close(z);
    }
    return delay;
}

/*
 * Returns 1 when the heap grew past what anything of ours can explain since the publisher was
 * last healthy: the client allocates whatever length a frame announces (ZooKeeper C client 3.8
 * recv_buffer()) and fills it as bytes arrive.
 */
static int
zk_heap_over(struct zkpub *z, int64_t *heap)
{
    *heap = selfstat_heap_bytes();
    return *heap > 0 && z->heap_base > 0 && *heap - z->heap_base > ZK_HEAP_SLACK;
}

/*
 * Returns a reason when a connection the client reports as established is not one we can use:
 * 1. no session id (a real server never gives 0);
 * 2. a negotiated timeout <= 0, or more than ZK_TIMEOUT_RATIO times off what we asked (a real
 *    server clamps it to 2..20 ticks): the client derives its reconnect pace and its receive
 *    deadline from it, and 0 makes it reconnect thousands of times a second;
 * 3. the heap grew past ZK_HEAP_SLACK since the handle opened (a huge frame right after the
 *    handshake).
 */
static const char *
zk_connection_insane(struct zkpub *z, const struct zkev *e, char *buf, size_t len)
{
    int recv = zoo_recv_timeout(z->zh);
    int64_t asked = z->set.session_timeout_ms, heap;

    if (e->session_id == 0) {
        snprintf(buf, len, "a session id of 0");
        return buf;
    }
    if (recv <= 0 || (int64_t)recv * ZK_TIMEOUT_RATIO < asked ||
        (int64_t)recv > asked * ZK_TIMEOUT_RATIO) {
        snprintf(buf, len, "a session timeout of %dms (we asked for %" PRId64 "ms)", recv, asked);
        return buf;
    }
    if (zk_heap_over(z, &heap)) {
        snprintf(buf, len, "a frame that made us allocate %" PRId64 " MiB",
                 (heap - z->heap_base) >> 20);
        return buf;
    }
    return NULL;
}

static void
on_connected(struct zkpub *z, const struct zkev *e)
{
    ev_tstamp now = ev_now(z->loop);
    char why[128];
    int fresh = e->session_id != z->session_id;

    if (zk_connection_insane(z, e, why, sizeof(why)) != NULL) {
        ev_tstamp d = zk_backoff_restart(z, 0, 1);

        zk_warn_limited("ZooKeeper at %s answered the handshake with %s: not a usable "
                        "session; reconnecting with back-off",
                        z->hosts, why);
        log_debug(ZK_COMP, "next connection in %.1fs", d);
        return;
    }
    z->connected_at = now;
    z->handle_connects++;
    z->tick.repeat = ZK_TICK_WARY_S; /* until it makes progress (on_tick) */
    ev_timer_again(z->loop, &z->tick);
    z->cpu_at = now; /* the watchdog's CPU window starts with the connection */
    z->cpu_others = cpu_of_others();
    if (z->connects++ > 0)
        z->reconnects++;
    if (fresh) {
        zk_forget_session(z);
        z->session_id = e->session_id;
        if (z->handed.client_id != 0 && e->session_id == z->handed.client_id) {
            /* Our nodes are all there still, probably: read each back before writing it. */
            z->resumed = 1;
            zk_verify_all(z);
            log_info(ZK_COMP,
                     "session 0x%" PRIx64 " resumed from the previous image (timeout %dms)",
                     (uint64_t)z->session_id, zoo_recv_timeout(z->zh));
        } else {
            log_info(ZK_COMP, "session 0x%" PRIx64 " established (timeout %dms)",
                     (uint64_t)z->session_id, zoo_recv_timeout(z->zh));
        }
        zk_handed_done(z);
    } else {
        zk_warn_limited("reconnected, session 0x%" PRIx64 " kept", (uint64_t)z->session_id);
    }
    if (z->state != ZK_STOPPING)
        z->state = ZK_CONNECTED;
    zk_reconcile_all(z);
}

/* The connection was lost (the client reconnects by itself, within the session). */
static void
on_lost(struct zkpub *z)
{
    ev_tstamp now = ev_now(z->loop);
    int short_conn = z->connected_at > 0 && now - z->connected_at < ZK_FLAP_S;

    z->lost_since = now;
    z->connected_at = 0;
    if (z->state == ZK_STOPPING) {
        zk_finish(z);
        return;
    }
    z->state = ZK_CONNECTING;
    z->short_conns = short_conn ? z->short_conns + 1 : 0;
    /*
     * A server that drops every connection right after the handshake would have the client
     * reconnect at its own pace (several times a second) for ever. After ZK_FLAP_COUNT such
     * connections in a row (or one, while already backing off), back off ourselves; the next
     * handle presents the same session, so a real server that still holds it keeps our nodes.
     */
    if (z->short_conns >= (z->open_fails > 0 ? 1 : ZK_FLAP_COUNT)) {
        ev_tstamp d = zk_backoff_restart(z, 1, 0);

        zk_warn_limited("ZooKeeper at %s drops the connection right after the handshake; "
                        "reconnecting with back-off",
                        z->hosts);
        log_debug(ZK_COMP, "next connection in %.1fs", d);
        return;
    }
    zk_warn_limited("connection lost, session 0x%" PRIx64 " kept while reconnecting",
                    (uint64_t)z->session_id);
}

static void
on_session(struct zkpub *z, const struct zkev *e)
{
    if (e->state == ZOO_CONNECTED_STATE) {
        on_connected(z, e);
    } else if (e->state == ZOO_EXPIRED_SESSION_STATE) {
        if (z->handed.client_id != 0)
            log_warn(ZK_COMP,
                     "session 0x%" PRIx64 " of the previous image cannot be resumed: "
                     "taking our nodes over in a new one",
                     (uint64_t)z->handed.client_id);
        zk_handed_done(z);
        z->sessions_expired++;
        log_warn(ZK_COMP, "session 0x%" PRIx64 " expired: starting a new one",
                 (uint64_t)z->session_id);
        if (z->state == ZK_STOPPING)
            zk_finish(z);
        else
            zk_restart(z);
    } else if (e->state == ZOO_AUTH_FAILED_STATE) {
        log_error(ZK_COMP, "authentication failed: starting a new session");
        if (z->state == ZK_STOPPING)
            zk_finish(z);
        else
            zk_backoff_restart(z, 0, 0);
    } else if (e->state == ZOO_READONLY_STATE && z->state < ZK_STOPPING) {
        /* We never ask for one (a read-only session is not continued on a read-write server). */
        zk_backoff_restart(z, 0, 1);
        zk_warn_limited("ZooKeeper at %s answered with a read-only session, which we never "
                        "ask for: reconnecting with back-off",
                        z->hosts);
    } else if (z->state == ZK_CONNECTED || z->state == ZK_STOPPING) {
        on_lost(z);
    }
}

/* One event of the queue: a reply (whatever its handle), or a session or watch event. */
static void
on_event(struct zkpub *z, struct zkev *e)
{
    if (e->kind == ZKEV_REPLY) {
        if (z->zh != NULL)
            z->last_reply = ev_now(z->loop); /* the current handle's: no other is open */
        zk_on_reply(z, e);
        return;
    }
    if (e->zh != z->zh || z->zh == NULL)
        return; /* from a handle already closed */
    if (e->kind == ZKEV_SESSION)
        on_session(z, e);
    else
        zk_on_watch(z, e->ctx, e->type);
}

static void
on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    struct zkpub *z = w->data;

    (void)loop;
    (void)revents;
    zk_drain(z);
    if (z->state == ZK_STOPPING && (!zk_ready(z) || zk_all_deleted(z)))
        zk_finish(z);
}

/*
 * Returns 1 when the publisher is connected and its connection makes progress: nothing asked,
 * or something answered within ZK_STUCK_S.
 */
static int
zk_progressing(const struct zkpub *z, ev_tstamp now)
{
    return z->state == ZK_CONNECTED && z->session_id != 0 &&
           (z->pending == 0 || (z->last_reply > 0 && now - z->last_reply < ZK_STUCK_S));
}

/*
 * The watchdog of what the client library may do to us on a hostile connection, on every tick
 * while a handle is open:
 * 1. CPU: while the connection makes no progress (zk_progressing), the client's threads (the
 *    process's CPU minus the loop thread's) used more than ZK_SPIN_SHARE of a core over the
 *    last ZK_SPIN_WINDOW_S: its IO thread spins (3.8's recv_buffer() on a negative frame
 *    length polls a readable socket until its receive deadline, 2/3 of the session timeout);
 * 2. memory: while connected without progress, heap in use grew more than ZK_HEAP_SLACK over
 *    its reference (a frame announcing gigabytes is allocated whole and filled as it streams;
 *    ZK_TICK_S bounds what arrives between two checks; on_connected() checks too). The
 *    reference follows the heap while the connection makes progress or none is established
 *    (the client reads no frame before its handshake), so growth elsewhere in the agent is
 *    not blamed on ZooKeeper; growth of more than ZK_HEAP_SLACK within one tick elsewhere
 *    while ours waits could cost one reconnect.
 * Either gives the handle up (zookeeper_close() frees its buffers) with our back-off.
 * Returns 1 if the handle was given up.
 */
static int
zk_watchdog(struct zkpub *z, ev_tstamp now)
{
    double others, share = 0;
    int progressing = zk_progressing(z, now);
    int64_t heap;

    if (now - z->cpu_at >= ZK_SPIN_WINDOW_S) {
        others = cpu_of_others();
        share = (others - z->cpu_others) / (now - z->cpu_at);
        z->cpu_others = others;
        z->cpu_at = now;
    }
    if (progressing || z->state != ZK_CONNECTED) {
        z->heap_base = selfstat_heap_bytes();
    } else if (zk_heap_over(z, &heap)) {
        zk_backoff_restart(z, 0, 1);
        zk_warn_limited("the ZooKeeper client holds a frame from %s far larger than any answer "
                        "of ours: reconnecting with back-off",
                        z->hosts);
        log_debug(ZK_COMP, "heap %" PRId64 " MiB over its reference", (heap - z->heap_base) >> 20);
        return 1;
    }
    if (!progressing && share > ZK_SPIN_SHARE) {
        zk_backoff_restart(z, 0, 1);
        zk_warn_limited("the ZooKeeper client's threads spin (over %.0f%% of a core) on a "
                        "connection to %s that makes no progress: reconnecting with back-off",
                        ZK_SPIN_SHARE * 100, z->hosts);
        log_debug(ZK_COMP, "client threads at %.0f%% of a core", share * 100);
        return 1;
    }
    return 0;
}

/* Why the client could not connect, from its last error. */
static const char *
zk_unreachable_cause(void)
{
    int e = atomic_load(&zk_conn_errno);

    if (e == ECONNREFUSED)
        return "connection refused";
    if (e > 0)
        return strerror(e);
    return "no session established";
}

static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct zkpub *z = w->data;
    ev_tstamp now = ev_now(loop);
    ev_tstamp lost_for = now - z->lost_since;
    double limit = ZK_LOST_FACTOR * (double)z->set.session_timeout_ms / 1000.0;

    (void)revents;
    if (z->state >= ZK_STOPPING)
        return;
    if (z->zh == NULL) {
        if (z->zh_restarting == NULL && now >= z->open_at)
            zk_open(z);
        return;
    }
    if (zk_watchdog(z, now))
        return;
    /* Connected without progress: check often, a frame may be streaming in. */
    if (w->repeat !=
        (zk_progressing(z, now) || z->state != ZK_CONNECTED ? ZK_TICK_S : ZK_TICK_WARY_S)) {
        w->repeat = w->repeat == ZK_TICK_S ? ZK_TICK_WARY_S : ZK_TICK_S;
        ev_timer_again(loop, w);
    }
    /* A connection that stayed healthy for a session timeout ends our back-off. */
    if (z->open_fails > 0 && z->connected_at > 0 &&
        now - z->connected_at >= (double)z->set.session_timeout_ms / 1000.0 &&
        zk_progressing(z, now))
        z->open_fails = 0;
    if (z->state == ZK_CONNECTING && z->handle_connects == 0 && lost_for >= ZK_UNREACHABLE_S)
        zk_warn_limited("cannot reach ZooKeeper at %s (%s); retrying", z->hosts,
                        zk_unreachable_cause());
    /* Not connected for long, with a session (a wiped ensemble never expires it) or without. */
    if (z->state == ZK_CONNECTING && lost_for > limit) {
        if (z->session_id != 0 || z->handed.client_id != 0)
            log_warn(ZK_COMP, "not connected for %.0fs: giving up session 0x%" PRIx64, lost_for,
                     (uint64_t)(z->session_id != 0 ? z->session_id : z->handed.client_id));
        else
            zk_log_limited(LOGL_INFO, "no session with ZooKeeper at %s for %.0fs: starting over",
                           z->hosts, limit);
        zk_handed_done(z); /* a wiped ensemble refuses it for ever: take the nodes over */
        zk_backoff_restart(z, 0, 0);
        return;
    }
    /* Everything else moves on replies, watches and session events: only retries wait. */
    if (z->retry_due && zk_ready(z)) {
        z->retry_due = 0;
        zk_reconcile_all(z);
    }
}

/* The end of a shutdown: close the session, stop our watchers, then report on the loop. */
static void
on_done_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct zkpub *z = w->data;

    (void)loop;
    (void)revents;
    if (z->done)
        z->done(z->done_arg);
}

static void
zk_finish(struct zkpub *z)
{
    int unfinished = zk_ready(z) && !zk_all_deleted(z);

    if (z->state == ZK_FINISHED)
        return;
    z->state = ZK_FINISHED;
    ev_timer_stop(z->loop, &z->tick);
    ev_timer_stop(z->loop, &z->finish_timer);
    if (unfinished)
        log_warn(ZK_COMP, "shutdown: not every node deleted in time; closing the session");
    zk_close(z);
    zkqueue_stop(&z->queue);
    log_info(ZK_COMP, "session closed");
    ev_timer_init(&z->finish_timer, on_done_timer, 0., 0.);
    z->finish_timer.data = z;
    ev_timer_start(z->loop, &z->finish_timer);
}

static void
on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zk_finish(w->data);
}

int
zkpub_settings_equal(const struct zkpub_settings *a, const struct zkpub_settings *b)
{
    return strcmp(a->hosts, b->hosts) == 0 && strcmp(a->root, b->root) == 0 &&
           a->session_timeout_ms == b->session_timeout_ms &&
           (a->auth == NULL) == (b->auth == NULL) &&
           (a->auth == NULL || strcmp(a->auth, b->auth) == 0) &&
           strcmp(a->agent_name, b->agent_name) == 0;
}

/* Copies S into Z->set, its strings in one buffer of Z's. */
static void
settings_copy(struct zkpub *z, const struct zkpub_settings *s)
{
    const char *strs[] = {s->hosts, s->root, s->auth ? s->auth : "", s->agent_name};
    const char **dst[] = {&z->set.hosts, &z->set.root, &z->set.auth, &z->set.agent_name};
    size_t len = 0;
    char *p;

    for (size_t i = 0; i < ARRAY_LEN(strs); i++)
        len += strlen(strs[i]) + 1;
    p = z->set_buf = xmalloc(len);
    for (size_t i = 0; i < ARRAY_LEN(strs); i++) {
        size_t n = strlen(strs[i]) + 1;

        memcpy(p, strs[i], n);
        *dst[i] = p;
        p += n;
    }
    if (s->auth == NULL)
        z->set.auth = NULL;
    z->set.session_timeout_ms = s->session_timeout_ms;
}

struct zkpub *
zkpub_new(struct ev_loop *loop, const struct zkpub_settings *s)
{
    return zkpub_new_resumed(loop, s, NULL);
}

struct zkpub *
zkpub_new_resumed(struct ev_loop *loop, const struct zkpub_settings *s,
                  const struct zkpub_session *prev)
{
    struct zkpub *z = xcalloc(1, sizeof(*z));
    char *p;

    z->loop = loop;
    if (prev != NULL && prev->id != 0) {
        z->handed.client_id = prev->id;
        memcpy(z->handed.passwd, prev->passwd, sizeof(z->handed.passwd));
    }
    settings_copy(z, s);
    z->root = strcmp(z->set.root, "/") == 0 ? "" : z->set.root;
    z->state = ZK_CONNECTING;
    TAILQ_INIT(&z->conts);
    TAILQ_INIT(&z->nodes);
    TAILQ_INIT(&z->waiting);
    TAILQ_INIT(&z->reqs);
    if (z->set.auth) {
        z->acl_entries[0].perms = ZOO_PERM_ALL;
        z->acl_entries[0].id = ZOO_AUTH_IDS;
        z->acl_entries[1].perms = ZOO_PERM_READ;
        z->acl_entries[1].id = ZOO_ANYONE_ID_UNSAFE;
        z->acl.count = 2;
        z->acl.data = z->acl_entries;
    } else {
        z->acl = ZOO_OPEN_ACL_UNSAFE;
    }
    /* Containers in creation order: the root's ancestors, the root; then each node's own. */
    p = xstrdup(z->root);
    for (char *c = strchr(p + (*p != '\0'), '/'); c; c = strchr(c + 1, '/')) {
        *c = '\0';
        zk_cont_get(z, p);
        *c = '/';
    }
    if (*z->root)
        zk_cont_get(z, z->root);
    free(p);
    z->hosts = addr_resolve_hosts(z->set.hosts);

    zkqueue_init(&z->queue, z->loop, on_async, z);
    ev_async_init(&z->restart_done, on_restart_done);
    z->restart_done.data = z;
    ev_async_start(z->loop, &z->restart_done);
    ev_timer_init(&z->tick, on_tick, ZK_TICK_S, ZK_TICK_S);
    z->tick.data = z;
    ev_timer_start(z->loop, &z->tick);
    ev_init(&z->finish_timer, on_deadline);
    z->finish_timer.data = z;
    ev_prepare_init(&z->flush, zk_batch_flush);
    z->flush.data = z;
    zk_open(z);
    return z;
}

void
zkpub_get_stats(const struct zkpub *z, struct zkpub_stats *out)
{
    static const char *const names[] = {
        [ZK_CLOSED] = "closed",      [ZK_CONNECTING] = "connecting", [ZK_CONNECTED] = "connected",
        [ZK_STOPPING] = "connected", [ZK_FINISHED] = "closed",
    };

    memset(out, 0, sizeof(*out));
    if (z == NULL) {
        out->state = "closed";
        return;
    }
    out->state = names[z->state];
    out->session_id = z->zh ? z->session_id : 0; /* kept while reconnecting */
    out->writes_ok = z->writes_ok;
    out->writes_failed = z->writes_failed;
    out->reconnects = z->reconnects;
    out->sessions_expired = z->sessions_expired;
    out->conflicts = z->conflicts;
    out->pending = z->pending;
    out->watches = z->watches;
    out->resumed = z->resumed && z->session_id != 0;
}

void
zkpub_set_volatile_keys(struct zkpub *z, const char *const *keys)
{
    z->volatile_keys = keys;
}

int
zkpub_get_session(const struct zkpub *z, struct zkpub_session *out)
{
    const clientid_t *cid;

    memset(out, 0, sizeof(*out));
    if (z == NULL || z->zh == NULL || z->session_id == 0 || z->state >= ZK_STOPPING)
        return -1;
    cid = zoo_client_id(z->zh);
    if (cid == NULL || cid->client_id != z->session_id)
        return -1;
    out->id = cid->client_id;
    memcpy(out->passwd, cid->passwd, sizeof(out->passwd));
    return 0;
}

int
zkpub_idle(const struct zkpub *z)
{
    return z == NULL || (z->pending == 0 && z->batch == NULL);
}

void
zkpub_shutdown(struct zkpub *z, double budget, void (*done)(void *arg), void *arg)
{
    struct zknode *n;
    double deletes = budget - ZK_CLOSE_MARGIN_S;

    if (z->state >= ZK_STOPPING)
        return;
    z->done = done;
    z->done_arg = arg;
    zk_batch_discard(z); /* not sent: nothing of it to delete */
    TAILQ_FOREACH (n, &z->nodes, link) {
        zk_node_set_removed(n, 1);
        n->retry_at = 0;
        n->render = NULL;
        n->ud = NULL;
    }
    if (!zk_ready(z)) {
        zk_finish(z); /* ZooKeeper unreachable: nothing to wait for */
        return;
    }
    z->state = ZK_STOPPING;
    if (deletes < budget / 2)
        deletes = budget / 2;
    ev_timer_set(&z->finish_timer, deletes, 0.);
    ev_timer_start(z->loop, &z->finish_timer);
    log_info(ZK_COMP, "shutdown: deleting our nodes");
    zk_reconcile_all(z);
    if (zk_all_deleted(z))
        zk_finish(z);
}

static void *
closer_main(void *arg)
{
    struct zkpub *z = arg;

    zookeeper_close(z->zh_closing);
    ev_async_send(z->loop, &z->close_done);
    return NULL;
}

static void
on_close_done(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    zkpub_free(w->data);
}

void
zkpub_retire(struct zkpub *z, struct zkpub_list *retired)
{
    struct zknode *n;
    sigset_t block, old;
    zhandle_t *zh = z->zh;
    int rc;

    ev_timer_stop(z->loop, &z->tick);
    ev_timer_stop(z->loop, &z->finish_timer);
    zk_batch_discard(z);
    z->state = ZK_FINISHED;
    TAILQ_FOREACH (n, &z->nodes, link) {
        n->render = NULL; /* the callers' handles are gone */
        n->ud = NULL;
    }
    z->retired = retired;
    TAILQ_INSERT_TAIL(retired, z, retired_link);
    if (zh == NULL) {
        zkpub_free(z);
        return;
    }
    /* From now on the loop sees no handle: events of the old one only release requests. */
    z->zh = NULL;
    ev_async_init(&z->close_done, on_close_done);
    z->close_done.data = z;
    ev_async_start(z->loop, &z->close_done);
    z->zh_closing = zh;
    sigfillset(&block);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&z->closer, NULL, closer_main, z);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_warn(ZK_COMP, "cannot start a thread to close the old session (%s): closing it here",
                 strerror(rc));
        z->zh_closing = NULL;
        ev_async_stop(z->loop, &z->close_done);
        zookeeper_close(zh);
        zk_after_close(z);
        zkpub_free(z);
    }
}

void
zkpub_free(struct zkpub *z)
{
    struct zknode *n;
    struct zkcont *c;

    if (z == NULL)
        return;
    if (z->zh_closing != NULL) {
        /* Retired: its handle is closed (or being closed) on the closer thread. */
        pthread_join(z->closer, NULL);
        ev_async_stop(z->loop, &z->close_done);
        z->zh_closing = NULL;
        zk_after_close(z);
    }
    if (z->zh_restarting != NULL)
        zk_restart_joined(z); /* waits for the close of a handle given up */
    ev_async_stop(z->loop, &z->restart_done);
    if (z->retired != NULL)
        TAILQ_REMOVE(z->retired, z, retired_link);
    ev_timer_stop(z->loop, &z->tick);
    ev_timer_stop(z->loop, &z->finish_timer);
    zk_close(z);
    zkqueue_destroy(&z->queue);
    while ((n = TAILQ_FIRST(&z->nodes)) != NULL) {
        TAILQ_REMOVE(&z->nodes, n, link);
        free(n->path);
        free(n);
    }
    while ((c = TAILQ_FIRST(&z->conts)) != NULL) {
        TAILQ_REMOVE(&z->conts, c, link);
        free(c->path);
        free(c);
    }
    free(z->hosts);
    free(z->set_buf);
    zk_cid_wipe(&z->handed);
    zk_cid_wipe(&z->resume);
    free(z);
}
