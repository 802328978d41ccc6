/* zksession.c -- the publisher's session life: create and free, open, close, restart, expiry,
 * session events, shutdown, retirement on a closer thread, and the client's log callback. */
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

#include "addr.h"
#include "log.h"
#include "util.h"
#include "zkpriv.h"

#define ZK_LOST_FACTOR    3   /* not connected this many session timeouts: start over */
#define ZK_CLOSE_MARGIN_S 1.5 /* of shutdown_timeout, kept for zookeeper_close() */
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

void
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
    zk_guard_open(z);
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
void
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

static void
on_connected(struct zkpub *z, const struct zkev *e)
{
    int fresh = e->session_id != z->session_id;

    if (zk_guard_connected(z, e))
        return; /* not a usable session: given up */
    z->connected_at = ev_now(z->loop);
    z->handle_connects++;
    if (z->connects++ > 0)
        z->reconnects++;
    if (fresh) {
        zk_forget_session(z);
        z->session_id = e->session_id;
        if (!zk_handed_answered(z))
            log_info(ZK_COMP, "session 0x%" PRIx64 " established (timeout %dms)",
                     (uint64_t)z->session_id, zoo_recv_timeout(z->zh));
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
    ev_tstamp connected_at = z->connected_at;

    z->lost_since = ev_now(z->loop);
    z->connected_at = 0;
    if (z->state == ZK_STOPPING) {
        zk_finish(z);
        return;
    }
    z->state = ZK_CONNECTING;
    if (zk_guard_lost(z, connected_at))
        return; /* it flaps: given up with our back-off */
    zk_warn_limited("connection lost, session 0x%" PRIx64 " kept while reconnecting",
                    (uint64_t)z->session_id);
}

static void
on_session(struct zkpub *z, const struct zkev *e)
{
    if (e->state == ZOO_CONNECTED_STATE) {
        on_connected(z, e);
    } else if (e->state == ZOO_EXPIRED_SESSION_STATE) {
        zk_handed_expired(z);
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
    if (zk_guard_tick(z, now))
        return; /* the handle was given up */
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
    zk_handed_take(z, prev);
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
    zk_guard_init(z);
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
    zk_guard_stop(z);
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
