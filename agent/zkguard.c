/* zkguard.c -- the publisher's defences against a server that answers nonsense: the handshake's
 * sanity, the watchdog of the client's threads (CPU) and of the heap, and our own back-off, which
 * gives a handle up on a thread of its own. */
#include "zkpub.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "log.h"
#include "selfstat.h"
#include "zkpriv.h"

#define ZK_TIMEOUT_RATIO  10   /* a negotiated timeout this far off what we asked is nonsense */
#define ZK_FLAP_S         1.0  /* a connection lost sooner than this after its handshake is short */
#define ZK_FLAP_COUNT     3    /* short connections in a row that make us back off */
#define ZK_STUCK_S        0.5  /* requests unanswered this long: the connection makes no progress */
#define ZK_SPIN_WINDOW_S  0.25 /* CPU of the client's threads is measured over this */
#define ZK_SPIN_SHARE     0.2 /* ... and more than this share of a core, with no reply, is a spin */
#define ZK_HEAP_SLACK     ((int64_t)32 << 20) /* heap growth no reply of ours can explain */
#define ZK_HEAP_REFRESH_S 10.0 /* the heap reference's age at most while nothing waits */

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

/* Takes the heap reference now (mallinfo2() walks the allocator's free lists: not every tick). */
static void
heap_settle(struct zkpub *z)
{
    z->heap_base = selfstat_heap_bytes();
    z->heap_at = ev_now(z->loop);
}

void
zk_guard_open(struct zkpub *z)
{
    heap_settle(z);
    z->cpu_at = ev_now(z->loop);
    z->cpu_others = cpu_of_others();
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

void
zk_guard_init(struct zkpub *z)
{
    ev_async_init(&z->restart_done, on_restart_done);
    z->restart_done.data = z;
    ev_async_start(z->loop, &z->restart_done);
}

void
zk_guard_stop(struct zkpub *z)
{
    if (z->zh_restarting != NULL)
        zk_restart_joined(z); /* waits for the close of a handle given up */
    ev_async_stop(z->loop, &z->restart_done);
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
ev_tstamp
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

int
zk_guard_connected(struct zkpub *z, const struct zkev *e)
{
    char why[128];

    if (zk_connection_insane(z, e, why, sizeof(why)) != NULL) {
        ev_tstamp d = zk_backoff_restart(z, 0, 1);

        zk_warn_limited("ZooKeeper at %s answered the handshake with %s: not a usable "
                        "session; reconnecting with back-off",
                        z->hosts, why);
        log_debug(ZK_COMP, "next connection in %.1fs", d);
        return 1;
    }
    z->tick.repeat = ZK_TICK_WARY_S; /* until it makes progress (zk_guard_tick) */
    ev_timer_again(z->loop, &z->tick);
    z->cpu_at = ev_now(z->loop); /* the watchdog's CPU window starts with the connection */
    z->cpu_others = cpu_of_others();
    return 0;
}

int
zk_guard_lost(struct zkpub *z, ev_tstamp connected_at)
{
    int short_conn = connected_at > 0 && ev_now(z->loop) - connected_at < ZK_FLAP_S;

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
        return 1;
    }
    return 0;
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
 *    ZK_TICK_S bounds what arrives between two checks; zk_guard_connected() checks too). The
 *    reference follows the heap while requests wait and the connection makes progress, or
 *    while none is established (the client reads no frame before its handshake), and every
 *    ZK_HEAP_REFRESH_S while nothing waits, so growth elsewhere in the agent is not blamed on
 *    ZooKeeper; growth of more than ZK_HEAP_SLACK elsewhere within one tick (or, for the
 *    first request after a quiet spell, within ZK_HEAP_REFRESH_S) while ours waits could
 *    cost one reconnect. mallinfo2() walks the allocator's free lists, slow at many instances
 *    (docs/performance.md): a connected session with nothing waiting, the steady state, reads
 *    the heap rarely, and a request going out never does.
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
        if (z->pending > 0 || z->state != ZK_CONNECTED || now - z->heap_at >= ZK_HEAP_REFRESH_S)
            heap_settle(z);
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

int
zk_guard_tick(struct zkpub *z, ev_tstamp now)
{
    if (zk_watchdog(z, now))
        return 1;
    /* Connected without progress: check often, a frame may be streaming in. */
    if (z->tick.repeat !=
        (zk_progressing(z, now) || z->state != ZK_CONNECTED ? ZK_TICK_S : ZK_TICK_WARY_S)) {
        z->tick.repeat = z->tick.repeat == ZK_TICK_S ? ZK_TICK_WARY_S : ZK_TICK_S;
        ev_timer_again(z->loop, &z->tick);
    }
    /* A connection that stayed healthy for a session timeout ends our back-off. */
    if (z->open_fails > 0 && z->connected_at > 0 &&
        now - z->connected_at >= (double)z->set.session_timeout_ms / 1000.0 &&
        zk_progressing(z, now))
        z->open_fails = 0;
    return 0;
}
