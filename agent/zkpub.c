/* zkpub.c -- the publisher's node and container machine: registering, reconciling and answering
 * for each ephemeral node and its container, one request at a time. */
#include "zkpub.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "zkpriv.h"

#define ZK_BACKOFF_MIN_S 0.5
#define ZK_BACKOFF_MAX_S 30.0

static const char *const op_names[] = {
    [ZKOP_CONT_EXISTS] = "exists", [ZKOP_CONT_CREATE] = "create", [ZKOP_CREATE] = "create",
    [ZKOP_CHECK] = "get",          [ZKOP_TAKEOVER] = "multi",     [ZKOP_SET] = "set",
    [ZKOP_DELETE] = "delete",      [ZKOP_EXISTS] = "exists",      [ZKOP_UNWATCH] = "removewatches",
    [ZKOP_MULTI] = "multi",
};

static void node_maybe_free(struct zknode *n);

struct zkreq *
zk_req_new(struct zkpub *z, enum zkop op, struct zknode *n, struct zkcont *c)
{
    struct zkreq *r = xcalloc(1, sizeof(*r));

    r->z = z;
    r->op = op;
    r->node = n;
    r->cont = c;
    TAILQ_INSERT_TAIL(&z->reqs, r, link);
    z->pending++;
    if (op == ZKOP_CREATE || op == ZKOP_MULTI)
        z->creates++;
    if (n)
        n->busy = 1;
    if (c)
        c->busy = 1;
    return r;
}

/* Forgets R: its node or container is free for the next request. */
void
zk_req_release(struct zkreq *r)
{
    struct zkpub *z = r->z;

    TAILQ_REMOVE(&z->reqs, r, link);
    z->pending--;
    if (r->op == ZKOP_CREATE || r->op == ZKOP_MULTI)
        z->creates--;
    if (r->node)
        r->node->busy = 0;
    if (r->cont)
        r->cont->busy = 0;
    if (r->batch)
        zk_batch_free(r->batch, 1);
    free(r);
}

/* A zoo_a* call returned RC: on failure its completion never runs, so release R here. */
int
zk_req_sent(struct zkreq *r, int rc)
{
    if (rc == ZOK)
        return 0;
    r->z->retry_due = 1; /* the tick tries again */
    log_debug(ZK_COMP, "%s %s not sent: %s", op_names[r->op],
              r->node   ? r->node->path
              : r->cont ? r->cont->path
                        : "(batch)",
              zerror(rc));
    zk_req_release(r);
    return -1;
}

/* Renders N's current document (its owner's business) into SB. */
void
zk_node_render(struct zknode *n, struct sbuf *sb)
{
    n->render(n->ud, sb);
}

/* Returns 1 if DATA is a document written by an agent of our name (a previous incarnation). */
static int
doc_is_ours(const struct zkpub *z, const char *data, int len)
{
    json_t *o, *v;
    int ours = 0;

    if (data == NULL || len <= 0)
        return 0;
    o = json_loadb(data, (size_t)len, 0, NULL);
    if (o && (v = json_object_get(o, "agent")) != NULL && json_is_string(v) &&
        strcmp(json_string_value(v), z->set.agent_name) == 0)
        ours = 1;
    json_decref(o);
    return ours;
}

ev_tstamp
zk_backoff(int fails)
{
    ev_tstamp d = ZK_BACKOFF_MIN_S;

    for (int i = 1; i < fails && d < ZK_BACKOFF_MAX_S; i++)
        d *= 2;
    return d < ZK_BACKOFF_MAX_S ? d : ZK_BACKOFF_MAX_S;
}

static void
node_set_watched(struct zknode *n, int on)
{
    if (n->watched == on)
        return;
    n->watched = on;
    n->z->watches += on ? 1 : -1;
}

struct zkcont *
zk_cont_get(struct zkpub *z, const char *path)
{
    struct zkcont *c;

    TAILQ_FOREACH (c, &z->conts, link)
        if (strcmp(c->path, path) == 0)
            return c;
    c = xcalloc(1, sizeof(*c));
    c->path = xstrdup(path);
    TAILQ_INSERT_TAIL(&z->conts, c, link);
    return c;
}

static char *
path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = xmalloc(la + lb + 2);

    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

static struct zknode *
node_new(struct zkpub *z, struct zkcont *parent, const char *name)
{
    struct zknode *n = xcalloc(1, sizeof(*n));

    n->z = z;
    n->parent = parent;
    n->path = path_join(parent->path, name);
    n->version = -1;
    TAILQ_INSERT_TAIL(&z->nodes, n, link);
    return n;
}

/* Puts N on the list of nodes whose watch waits for the creates, or takes it off. */
static void
node_set_waiting(struct zknode *n, int on)
{
    if (n->waiting == on)
        return;
    n->waiting = on;
    if (on)
        TAILQ_INSERT_TAIL(&n->z->waiting, n, wait_link);
    else
        TAILQ_REMOVE(&n->z->waiting, n, wait_link);
}

/* ZooKeeper confirmed our create of N with the document of generation GEN. */
void
zk_node_created(struct zknode *n, uint64_t gen)
{
    n->created = 1;
    n->done_gen = gen;
    n->version = 0;
    n->fails = 0;
    n->z->writes_ok++;
}

/* Marks N wanted gone, or wanted again, keeping the publisher's count of removed nodes. */
void
zk_node_set_removed(struct zknode *n, int removed)
{
    if (n->removed == removed)
        return;
    n->removed = removed;
    n->z->nremoved += removed ? 1 : -1;
}

/* Frees N once nothing refers to it any more: removed, no request, no watch, not ours in ZK. */
static void
node_maybe_free(struct zknode *n)
{
    if (!n->removed || n->busy || n->watched || n->created)
        return;
    node_set_waiting(n, 0);
    zk_node_set_removed(n, 0);
    TAILQ_REMOVE(&n->z->nodes, n, link);
    free(n->path);
    free(n);
}

/* The session is gone: nothing we created or watched survives in it. */
void
zk_forget_session(struct zkpub *z)
{
    struct zknode *n, *tmp;
    struct zkcont *c;

    z->session_id = 0;
    z->resumed = 0;
    while ((n = TAILQ_FIRST(&z->waiting)) != NULL)
        node_set_waiting(n, 0);
    TAILQ_FOREACH (c, &z->conts, link) {
        c->done = 0;
        c->fails = 0;
        c->retry_at = 0;
    }
    TAILQ_FOREACH_SAFE (n, &z->nodes, link, tmp) {
        n->created = 0;
        n->conflict = 0;
        n->solo = 0;
        n->lone = 0;
        n->verify = 0;
        n->done_gen = 0;
        n->version = -1;
        n->fails = 0;
        n->retry_at = 0;
        node_set_watched(n, 0);
        node_maybe_free(n);
    }
}

int
zk_ready(const struct zkpub *z)
{
    return z->zh != NULL && (z->state == ZK_CONNECTED || z->state == ZK_STOPPING) &&
           z->session_id != 0;
}

int
zk_all_deleted(const struct zkpub *z)
{
    const struct zknode *n;

    TAILQ_FOREACH (n, &z->nodes, link)
        if (n->created || (n->busy && n->removed))
            return 0;
    return 1;
}

/*
 * Makes sure container C exists: every agent of a fleet shares them, and a create of an
 * existing one still costs the ensemble a transaction (a failed create moves the zxid), so it
 * is looked up first (a read) and created only if missing. ZNODEEXISTS on that create (another
 * agent was quicker) is as good as ZOK.
 */
static void
cont_send(struct zkpub *z, struct zkcont *c, enum zkop op)
{
    struct zkreq *r = zk_req_new(z, op, NULL, c);

    if (op == ZKOP_CONT_EXISTS)
        zk_req_sent(r, zoo_aexists(z->zh, c->path, 0, zkcb_stat, r));
    else
        zk_req_sent(r,
                    zoo_acreate(z->zh, c->path, NULL, -1, &z->acl, ZOO_PERSISTENT, zkcb_string, r));
}

static void
cont_reconcile(struct zkpub *z, struct zkcont *c)
{
    if (!zk_ready(z) || c->done || c->busy)
        return;
    if (ev_now(z->loop) < c->retry_at) {
        z->retry_due = 1;
        return;
    }
    cont_send(z, c, ZKOP_CONT_EXISTS);
}

/* Creates (OP ZKOP_CREATE) or rewrites (ZKOP_SET) N with DOC, LEN bytes of generation GEN. */
void
zk_node_send_text(struct zknode *n, enum zkop op, const char *doc, int len, uint64_t gen)
{
    struct zkpub *z = n->z;
    struct zkreq *r = zk_req_new(z, op, n, NULL);
    int rc;

    r->gen = gen;
    if (op == ZKOP_CREATE)
        rc = zoo_acreate(z->zh, n->path, doc, len, &z->acl, ZOO_EPHEMERAL, zkcb_string, r);
    else
        rc = zoo_aset(z->zh, n->path, doc, len, -1, zkcb_stat, r);
    zk_req_sent(r, rc);
}

/* Renders N's current document and creates or rewrites the node with it. */
static void
node_send_doc(struct zknode *n, enum zkop op)
{
    struct sbuf sb = {0};

    zk_node_render(n, &sb);
    zk_node_send_text(n, op, sb.buf ? sb.buf : "", (int)sb.len, n->want_gen);
    sbuf_free(&sb);
}

static void
node_send_exists(struct zknode *n)
{
    struct zkreq *r = zk_req_new(n->z, ZKOP_EXISTS, n, NULL);

    zk_req_sent(r, zoo_awexists(n->z->zh, n->path, zkcb_node_watch, n, zkcb_stat, r));
}

void
zk_node_send_delete(struct zknode *n, enum zkop op, int version)
{
    struct zkreq *r = zk_req_new(n->z, op, n, NULL);

    zk_req_sent(r, zoo_adelete(n->z->zh, n->path, version, zkcb_void, r));
}

/* The header of 3.8 declares the completion as a pointer to a function pointer; the library
 * stores and calls it as the function pointer itself, so that is what we pass. */
static void
node_send_unwatch(struct zknode *n)
{
    struct zkreq *r = zk_req_new(n->z, ZKOP_UNWATCH, n, NULL);

    zk_req_sent(r, zoo_aremove_watches(n->z->zh, n->path, ZWATCHTYPE_DATA, zkcb_node_watch, n, 0,
                                       (void_completion_t *)(uintptr_t)zkcb_void, r));
}

/*
 * Brings one node towards what it should be, one request at a time:
 * 1. a removed node is deleted if ours, its watch dropped, then it is freed;
 * 2. its container must exist first;
 * 3. a conflicting node is only watched, to be taken when its owner lets go;
 * 4. otherwise create it, rewrite it if the desired document is newer, then watch it.
 * While creates are being answered (start-up, a new session) the watches wait for them:
 * the server answers a session's requests in order, and thousands of exists requests sent
 * between the creates would hold the last nodes back (docs/performance.md).
 */
void
zk_node_reconcile(struct zknode *n)
{
    struct zkpub *z = n->z;

    if (!zk_ready(z) || n->busy || ev_now(z->loop) < n->retry_at) {
        if (zk_ready(z) && !n->busy)
            z->retry_due = 1;
        node_maybe_free(n);
        return;
    }
    if (n->removed) {
        if (n->created && n->solo)
            zk_node_send_delete(n, ZKOP_DELETE, -1);
        else if (n->created)
            zk_batch_add(n, ZKOP_DELETE);
        else if (n->watched && z->state < ZK_STOPPING)
            node_send_unwatch(n);
        else
            node_maybe_free(n);
        return;
    }
    if (z->state >= ZK_STOPPING || n->want_gen == 0)
        return;
    if (!n->parent->done) {
        cont_reconcile(z, n->parent);
        return;
    }
    if (n->conflict) {
        if (!n->watched)
            node_send_exists(n);
    } else if (!n->created && n->verify) {
        struct zkreq *g = zk_req_new(z, ZKOP_CHECK, n, NULL);

        zk_req_sent(g, zoo_aget(z->zh, n->path, 0, zkcb_data, g));
    } else if (!n->created) {
        if (n->solo)
            node_send_doc(n, ZKOP_CREATE);
        else
            zk_batch_add(n, ZKOP_CREATE);
    } else if (n->done_gen != n->want_gen) {
        node_send_doc(n, ZKOP_SET);
    } else if (!n->watched) {
        if (z->creates == 0 && z->batch == NULL)
            node_send_exists(n);
        else
            node_set_waiting(n, 1);
    }
}

/* Once every create is answered, sends the watches that waited for them. */
void
zk_arm_waiting(struct zkpub *z)
{
    struct zknode *n;

    while (z->creates == 0 && z->batch == NULL && (n = TAILQ_FIRST(&z->waiting)) != NULL) {
        node_set_waiting(n, 0);
        zk_node_reconcile(n);
    }
}

void
zk_reconcile_all(struct zkpub *z)
{
    struct zkcont *c;
    struct zknode *n, *tmp;

    TAILQ_FOREACH (c, &z->conts, link)
        cont_reconcile(z, c);
    TAILQ_FOREACH_SAFE (n, &z->nodes, link, tmp)
        zk_node_reconcile(n);
}

/* A request failed with RC: count, log, and schedule a retry where one makes sense. */
static void
fail(struct zkpub *z, const char *what, const char *path, int rc, int *fails, ev_tstamp *retry_at,
     int count)
{
    if (count)
        z->writes_failed++;
    z->retry_due = 1;
    if (rc == ZCLOSING || rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE)
        return; /* the session is ending; the next one starts afresh */
    if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) {
        log_debug(ZK_COMP, "%s %s: %s, will retry", what, path, zerror(rc));
        return; /* retried as soon as the connection is back */
    }
    (*fails)++;
    *retry_at = ev_now(z->loop) + zk_backoff(*fails);
    log_warn(ZK_COMP, "%s %s failed: %s (retry in %.1fs)", what, path, zerror(rc),
             zk_backoff(*fails));
}

static void
on_cont_reply(struct zkpub *z, struct zkcont *c, enum zkop op, int rc)
{
    if (op == ZKOP_CONT_EXISTS && rc == ZNONODE) {
        cont_send(z, c, ZKOP_CONT_CREATE);
        return;
    }
    if (rc == ZOK || rc == ZNODEEXISTS) {
        c->done = 1;
        c->fails = 0;
        if (op == ZKOP_CONT_CREATE && rc == ZOK)
            log_info(ZK_COMP, "created container %s", c->path);
        zk_reconcile_all(z);
        return;
    }
    fail(z, op_names[op], c->path, rc, &c->fails, &c->retry_at, 0);
}

static void
on_node_reply(struct zkpub *z, struct zkreq *r, const struct zkev *e)
{
    struct zknode *n = r->node;
    int rc = e->rc;

    int verify = n->verify;

    if (r->op == ZKOP_CHECK && rc != ZCONNECTIONLOSS && rc != ZOPERATIONTIMEOUT) {
        n->verify = 0; /* read back once: from now on it is written as usual */
        if (verify && rc == ZNONODE)
            return; /* gone meanwhile: created as usual */
    }
    switch (r->op) {
    case ZKOP_CREATE:
        if (rc == ZOK) {
            zk_node_created(n, r->gen);
        } else if (rc == ZNODEEXISTS) {
            struct zkreq *g = zk_req_new(z, ZKOP_CHECK, n, NULL);

            zk_req_sent(g, zoo_aget(z->zh, n->path, 0, zkcb_data, g));
            return;
        } else if (rc == ZNONODE) {
            n->parent->done = 0; /* someone removed the container: make it again */
            z->writes_failed++;
        } else {
            fail(z, "create", n->path, rc, &n->fails, &n->retry_at, 1);
        }
        break;
    case ZKOP_CHECK:
        if (rc == ZOK && e->owner == z->session_id) {
            /*
             * Our own create whose reply was lost (content unknown, so rewrite it), or, in a
             * session the previous image handed over, our node: rewritten only if it differs.
             */
            n->created = 1;
            n->done_gen = verify && zk_doc_same(z, n, e->data, e->datalen) ? n->want_gen : 0;
            n->version = e->version;
            if (verify)
                log_debug(ZK_COMP, "%s is ours in the resumed session: %s", n->path,
                          n->done_gen ? "unchanged" : "rewriting it");
        } else if (rc == ZOK && doc_is_ours(z, e->data, e->datalen)) {
            log_info(ZK_COMP, "taking over %s from our previous session 0x%" PRIx64, n->path,
                     (uint64_t)e->owner);
            zk_batch_takeover(n, e->version); /* delete + create: never missing */
            return;
        } else if (rc == ZOK) {
            if (!n->conflict) {
                z->conflicts++;
                log_warn(ZK_COMP,
                         "conflict: %s is held by another agent (session 0x%" PRIx64
                         "), not overwritten",
                         n->path, (uint64_t)e->owner);
            }
            n->conflict = 1;
        } else if (rc != ZNONODE) {
            fail(z, "get", n->path, rc, &n->fails, &n->retry_at, 0);
        }
        break;
    case ZKOP_SET:
        if (rc == ZOK) {
            n->done_gen = r->gen;
            n->version = e->version;
            n->fails = 0;
            z->writes_ok++;
        } else if (rc == ZNONODE) {
            n->created = 0; /* deleted behind our back: create it again */
            z->writes_failed++;
        } else {
            fail(z, "set", n->path, rc, &n->fails, &n->retry_at, 1);
        }
        break;
    case ZKOP_DELETE:
        if (rc == ZOK || rc == ZNONODE) {
            n->created = 0;
            if (rc == ZOK)
                z->writes_ok++;
            log_info(ZK_COMP, "deleted %s", n->path);
        } else {
            fail(z, "delete", n->path, rc, &n->fails, &n->retry_at, 1);
        }
        break;
    case ZKOP_EXISTS:
        if (rc == ZOK || rc == ZNONODE) {
            node_set_watched(n, 1);
            if (rc == ZNONODE && n->created) {
                n->created = 0; /* gone before the watch was set: create it again */
            } else if (rc == ZOK && n->created && n->version >= 0 && e->version != n->version) {
                log_warn(ZK_COMP, "%s was changed by someone else: rewriting it", n->path);
                n->done_gen = 0;
            } else if (rc == ZNONODE && n->conflict) {
                n->conflict = 0; /* the other agent let go */
            }
        } else {
            fail(z, "exists", n->path, rc, &n->fails, &n->retry_at, 0);
        }
        break;
    case ZKOP_UNWATCH:
        if (rc == ZOK || rc == ZNOWATCHER)
            node_set_watched(n, 0);
        else
            fail(z, "removewatches", n->path, rc, &n->fails, &n->retry_at, 0);
        break;
    default:
        break;
    }
}

/* A request completed (its event was popped on the loop): release it, then act on the answer. */
void
zk_on_reply(struct zkpub *z, const struct zkev *e)
{
    /* Released first, so that the reply handler may send the node's next request. */
    struct zkreq *r = e->ctx, done = *r;
    struct zkbatch *b = r->batch;

    r->batch = NULL;
    zk_req_release(r);
    if (b) {
        if (z->zh == NULL) {
            zk_batch_free(b, 1); /* a closed handle's leftover */
            return;
        }
        zk_batch_reply(z, b, e->rc);
        zk_batch_free(b, 0);
        zk_arm_waiting(z);
        return;
    }
    if (z->zh == NULL)
        return; /* a closed handle's leftover: zk_close() forgets the session */
    if (done.cont) {
        on_cont_reply(z, done.cont, done.op, e->rc);
    } else {
        on_node_reply(z, &done, e);
        zk_node_reconcile(done.node);
    }
    zk_arm_waiting(z);
}

/* N's exists-watch fired with TYPE (an event of the current handle). */
void
zk_on_watch(struct zkpub *z, struct zknode *n, int type)
{
    node_set_watched(n, 0);
    if (type == ZOO_DELETED_EVENT) {
        if (n->created && !n->busy && !n->removed && z->state < ZK_STOPPING)
            log_warn(ZK_COMP, "%s vanished (not deleted by us): re-creating it", n->path);
        if (!n->busy)
            n->created = 0;
        n->conflict = 0;
        n->fails = 0;
        n->retry_at = 0;
    }
    zk_node_reconcile(n);
}

void
zkpub_add_dir(struct zkpub *z, const char *dir)
{
    char *cpath = path_join(z->root, dir);

    zk_cont_get(z, cpath);
    free(cpath);
}

struct zknode *
zkpub_node_new(struct zkpub *z, const char *dir, const char *name, zkpub_render_fn *render,
               void *ud)
{
    struct zknode *n = NULL;
    char *cpath, *path;

    if (z->state >= ZK_STOPPING)
        return NULL;
    cpath = path_join(z->root, dir);
    path = path_join(cpath, name);
    /*
     * A node still being deleted after a reload dropped it is taken back. Only then is the
     * list searched: at start-up 10,000 first publications would make it quadratic.
     */
    if (z->nremoved > 0)
        TAILQ_FOREACH (n, &z->nodes, link)
            if (n->removed && strcmp(n->path, path) == 0)
                break;
    if (n)
        zk_node_set_removed(n, 0);
    else
        n = node_new(z, zk_cont_get(z, cpath), name);
    free(path);
    free(cpath);
    n->render = render;
    n->ud = ud;
    cont_reconcile(z, n->parent);
    return n;
}

void
zkpub_node_changed(struct zkpub *z, struct zknode *n)
{
    if (n == NULL || z->state >= ZK_STOPPING)
        return;
    n->want_gen++;
    zk_node_reconcile(n);
}

int
zkpub_node_published(const struct zknode *n)
{
    return n != NULL && n->created && n->want_gen != 0 && n->done_gen == n->want_gen && !n->removed;
}

void
zkpub_node_remove(struct zkpub *z, struct zknode *n)
{
    if (z == NULL || n == NULL)
        return;
    n->render = NULL;
    n->ud = NULL;
    zk_node_set_removed(n, 1);
    zk_node_reconcile(n);
}
