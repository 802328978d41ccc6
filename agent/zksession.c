/* zksession.c -- the publisher's session life: create and free, open, close, restart, expiry,
 * shutdown, retirement on a closer thread, and the client's log callback. */
#include "zkpub.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"
#include "util.h"
#include "zkpriv.h"

#define ZK_TICK_S         0.25 /* housekeeping period: retries, lost-connection check */
#define ZK_LOST_FACTOR    3    /* not connected this many session timeouts: new session */
#define ZK_CLOSE_MARGIN_S 1.5  /* of shutdown_timeout, kept for zookeeper_close() */

/* The client's log line "time:pid(tid):ZOO_LEVEL@func@line: message" becomes one of ours. */
void
zkcb_log(const char *msg)
{
    static const struct {
        const char *tag;
        enum log_level level;
    } tags[] = {{"ZOO_ERROR@", LOGL_ERROR},
                {"ZOO_WARN@", LOGL_WARN},
                {"ZOO_INFO@", LOGL_INFO},
                {"ZOO_DEBUG@", LOGL_DEBUG}};
    enum log_level level = LOGL_INFO;
    const char *p = msg, *t;
    size_t len;

    for (size_t i = 0; i < ARRAY_LEN(tags); i++) {
        if ((t = strstr(msg, tags[i].tag)) != NULL) {
            level = tags[i].level;
            p = t + strlen(tags[i].tag);
            break;
        }
    }
    len = strlen(p);
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    /* It repeats its connection errors on every retry, several a second: limit repeats. */
    log_text_limited(level, "zookeeper client", p, len);
}

static int
zk_open(struct zkpub *z)
{
    sigset_t block, old;
    enum log_level ll = log_get_level();
    int err;

    zoo_set_debug_level(ll == LOGL_ERROR  ? ZOO_LOG_LEVEL_ERROR
                        : ll == LOGL_WARN ? ZOO_LOG_LEVEL_WARN
                                          : ZOO_LOG_LEVEL_INFO);
    /* The client's two threads inherit this mask: signals stay with the loop thread. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    /* A session handed over by the previous image is presented once, at the first connect. */
    if (z->resume_id != 0 && z->zh_inits == 0) {
        clientid_t cid;

        cid.client_id = z->resume_id;
        memcpy(cid.passwd, z->resume_pw, sizeof(cid.passwd));
        z->zh = zookeeper_init2(z->hosts, zkcb_session, (int)z->set.session_timeout_ms, &cid, z,
                                ZOO_NO_LOG_CLIENTENV, zkcb_log);
        explicit_bzero(&cid, sizeof(cid));
    } else {
        z->zh = zookeeper_init2(z->hosts, zkcb_session, (int)z->set.session_timeout_ms, NULL, z,
                                ZOO_NO_LOG_CLIENTENV, zkcb_log);
    }
    err = errno;
    z->zh_inits++;
    explicit_bzero(z->resume_pw, sizeof(z->resume_pw)); /* the client keeps its own copy */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    z->session_id = 0;
    z->lost_since = ev_now(z->loop);
    if (z->zh == NULL) {
        log_error(ZK_COMP, "cannot start a session with %s: %s", z->hosts, strerror(err));
        z->state = ZK_CLOSED;
        return -1;
    }
    z->state = ZK_CONNECTING;
    zoo_set_servers_resolution_delay(z->zh, -1);
    if (z->set.auth)
        zoo_add_auth(z->zh, "digest", z->set.auth, (int)strlen(z->set.auth), NULL, NULL);
    log_info(ZK_COMP, "connecting to %s (session timeout %" PRId64 "ms)", z->hosts,
             z->set.session_timeout_ms);
    return 0;
}

static void on_event(struct zkpub *z, struct zkev *e);

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

static void zk_finish(struct zkpub *z);

static void
on_session(struct zkpub *z, const struct zkev *e)
{
    if (e->state == ZOO_CONNECTED_STATE) {
        int fresh = e->session_id != z->session_id;

        if (z->connects++ > 0)
            z->reconnects++;
        if (fresh) {
            zk_forget_session(z);
            z->session_id = e->session_id;
            if (z->resume_id != 0 && e->session_id == z->resume_id) {
                z->resumed = 1;
                zk_verify_all(z);
                log_info(ZK_COMP,
                         "session 0x%" PRIx64 " resumed from the previous image (timeout %dms)",
                         (uint64_t)z->session_id, zoo_recv_timeout(z->zh));
            } else {
                log_info(ZK_COMP, "session 0x%" PRIx64 " established (timeout %dms)",
                         (uint64_t)z->session_id, zoo_recv_timeout(z->zh));
            }
            z->resume_id = 0;
        } else {
            log_info(ZK_COMP, "reconnected, session 0x%" PRIx64 " kept", (uint64_t)z->session_id);
        }
        if (z->state != ZK_STOPPING)
            z->state = ZK_CONNECTED;
        zk_reconcile_all(z);
    } else if (e->state == ZOO_EXPIRED_SESSION_STATE) {
        if (z->resume_id != 0)
            log_warn(ZK_COMP,
                     "session 0x%" PRIx64 " of the previous image cannot be resumed: "
                     "taking our nodes over in a new one",
                     (uint64_t)z->resume_id);
        z->resume_id = 0;
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
            zk_restart(z);
    } else if (z->state == ZK_CONNECTED || z->state == ZK_STOPPING) {
        z->lost_since = ev_now(z->loop);
        log_warn(ZK_COMP, "connection lost, session 0x%" PRIx64 " kept while reconnecting",
                 (uint64_t)z->session_id);
        if (z->state == ZK_STOPPING)
            zk_finish(z);
        else
            z->state = ZK_CONNECTING;
    }
}

/* One event of the queue: a reply (whatever its handle), or a session or watch event. */
static void
on_event(struct zkpub *z, struct zkev *e)
{
    if (e->kind == ZKEV_REPLY) {
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

static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct zkpub *z = w->data;
    ev_tstamp lost_for = ev_now(loop) - z->lost_since;
    double limit = ZK_LOST_FACTOR * (double)z->set.session_timeout_ms / 1000.0;

    (void)revents;
    if (z->state >= ZK_STOPPING)
        return;
    if (z->zh == NULL) {
        zk_open(z);
        return;
    }
    if (z->state == ZK_CONNECTING && z->session_id != 0 && lost_for > limit) {
        log_warn(ZK_COMP, "not connected for %.0fs: giving up session 0x%" PRIx64, lost_for,
                 (uint64_t)z->session_id);
        zk_restart(z);
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
        z->resume_id = prev->id;
        memcpy(z->resume_pw, prev->passwd, sizeof(z->resume_pw));
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
    free(z);
}
