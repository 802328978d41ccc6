/* zkpub.c -- publishing documents to ZooKeeper as ephemeral nodes: session, containers, nodes,
 * watches. */
#include "zkpub.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zookeeper/zookeeper.h>

#include "log.h"
#include "util.h"
#include "zkqueue.h"

#define ZK_COMP           "zookeeper"
#define ZK_TICK_S         0.25 /* housekeeping period: retries, lost-connection check */
#define ZK_LOST_FACTOR    3    /* not connected this many session timeouts: new session */
#define ZK_BACKOFF_MIN_S  0.5
#define ZK_BACKOFF_MAX_S  30.0
#define ZK_CLOSE_MARGIN_S 1.5 /* of shutdown_timeout, kept for zookeeper_close() */
#define ZK_BATCH_MAX      128 /* creates and deletes sent as one multi request */

enum zkop {
    ZKOP_CONT_CREATE = 0, /* create a persistent container */
    ZKOP_CREATE,          /* create our ephemeral node */
    ZKOP_CHECK,           /* get a node that already existed: whose is it? */
    ZKOP_TAKEOVER,        /* delete a stale node of a previous incarnation of this agent */
    ZKOP_SET,             /* rewrite our node */
    ZKOP_DELETE,          /* delete our node (removed instance, shutdown) */
    ZKOP_EXISTS,          /* (re-)arm the node's exists-watch */
    ZKOP_UNWATCH,         /* drop the exists-watch of a node we give up */
    ZKOP_MULTI,           /* create or delete several of our nodes in one request */
};

static const char *const op_names[] = {"create", "create", "get",           "delete", "set",
                                       "delete", "exists", "removewatches", "multi"};

/*
 * A persistent container (ROOT and its ancestors, ROOT/agents, ROOT/CLUSTER). Owner: the
 * publisher's container list; freed by zkpub_free(). DONE is per session.
 */
struct zkcont {
    TAILQ_ENTRY(zkcont) link;
    char *path;
    int done;
    int busy;
    int fails;
    ev_tstamp retry_at;
};

/*
 * One ephemeral node we publish: an instance's or the agent's own. Owner: the publisher's
 * node list; created by zkpub_node_new(). It outlives its caller's handle after
 * zkpub_node_remove() as long as a request or a watch still refers to it, and is freed by
 * node_maybe_free() or zkpub_free(). The node pointer is the long-lived context of its
 * exists-watch: registered once per session, re-armed only when it fired.
 */
struct zknode {
    TAILQ_ENTRY(zknode) link;
    TAILQ_ENTRY(zknode) wait_link; /* on the publisher's list of nodes waiting for a watch */
    struct zkpub *z;
    zkpub_render_fn *render; /* the caller's; NULL once removed */
    void *ud;
    struct zkcont *parent;
    char *path;
    int removed;       /* wanted gone: delete, then free */
    int busy;          /* one request in flight, never more */
    int created;       /* holds our data under our current session */
    int watched;       /* exists-watch registered in the current session */
    int conflict;      /* held by another agent: not overwritten */
    int solo;          /* a multi with it failed: written alone in this session */
    int waiting;       /* on z->waiting: its watch is sent once the creates are answered */
    int32_t version;   /* data version of our last write, -1 unknown */
    uint64_t want_gen; /* generation of the desired document (0: nothing to write yet) */
    uint64_t done_gen; /* generation ZooKeeper holds (0: none or unknown) */
    int fails;
    ev_tstamp retry_at;
};

/*
 * Creates and deletes gathered during one loop iteration, sent as one multi request:
 * ZooKeeper handles a multi of 100 creates for about a sixth of the server CPU of 100 single
 * creates, which is what publishing 10,000 nodes at start-up or after a new session, and
 * deleting them at shutdown, is limited by. Owner: the
 * publisher while open (z->batch, sent or discarded before the loop next sleeps), then its
 * request (r->batch), freed by req_release(). The client reads OPS and writes RESULTS until
 * the completion, so they live here and not on a stack. Each node in it is busy.
 */
struct zkbatch {
    int count;
    int deletes; /* how many of them are deletes */
    struct zknode *nodes[ZK_BATCH_MAX];
    uint64_t gens[ZK_BATCH_MAX]; /* document generation sent */
    char *docs[ZK_BATCH_MAX];    /* NULL: delete the node */
    zoo_op_t ops[ZK_BATCH_MAX];
    zoo_op_result_t results[ZK_BATCH_MAX];
};

/*
 * One request in flight. Owner: the publisher's registry from the zoo_a* call until its
 * reply is handled on the loop, or until zookeeper_close() left it orphaned (ZOOKEEPER-2894)
 * and the publisher frees it. The client only ever sees its address as the completion data.
 */
struct zkreq {
    TAILQ_ENTRY(zkreq) link;
    struct zkpub *z;
    enum zkop op;
    struct zknode *node;
    struct zkcont *cont;
    struct zkbatch *batch; /* ZKOP_MULTI */
    uint64_t gen;          /* document generation sent */
};

/*
 * The publisher's life, one state at a time (the stats socket's zk_state in quotes):
 * - ZK_CLOSED: no handle, zookeeper_init() failed; the tick tries again ("closed");
 * - ZK_CONNECTING: a handle, not connected: its first connection, or after a loss
 *   ("connecting");
 * - ZK_CONNECTED: connected, with a session ("connected");
 * - ZK_STOPPING: shutting down, still connected, deleting our nodes ("connected"); any loss
 *   of the connection ends it;
 * - ZK_FINISHED: closed for good, shut down or retired ("closed").
 * A session that expires is replaced at once, so "expired" is never seen from the loop.
 */
enum zkstate { ZK_CLOSED = 0, ZK_CONNECTING, ZK_CONNECTED, ZK_STOPPING, ZK_FINISHED };

/*
 * The publisher. Owner: the agent (a->zk); created by zkpub_new(), released by
 * zkpub_free(). After zkpub_retire() it is on the retired list it was given and the closer
 * thread owns its handle (zh_closing) until zookeeper_close() returns; on_close_done then
 * frees it on the loop. Every other field is read and written on the loop thread only; the
 * client's threads reach it through the queue alone.
 */
struct zkpub {
    struct ev_loop *loop;
    struct zkpub_settings set; /* our copy: its strings point into set_buf */
    char *set_buf;
    const char *root; /* set.root, "" for "/" */
    zhandle_t *zh;
    char *hosts; /* numeric host:port list, resolved once at start */
    struct zkqueue queue;
    ev_timer tick;
    ev_timer finish_timer; /* shutdown deadline, or a zero-delay finish */
    ev_prepare flush;      /* sends the open batch before the loop sleeps; active with it */
    struct zkbatch *batch; /* writes gathered in this loop iteration, not sent yet */
    TAILQ_HEAD(, zkcont) conts;
    TAILQ_HEAD(, zknode) nodes;
    int nremoved; /* nodes with removed set: zkpub_update() searches them only if any */
    TAILQ_HEAD(, zknode) waiting; /* created nodes whose exists-watch waits for the creates */
    TAILQ_HEAD(, zkreq) reqs;
    struct ACL acl_entries[2];
    struct ACL_vector acl;
    enum zkstate state;
    uint64_t connects;    /* connections made: every one after the first is a reconnect */
    ev_tstamp lost_since; /* when the connection was lost (or the handle opened) */
    int64_t session_id;
    int pending;
    int creates;   /* create and multi requests in flight */
    int retry_due; /* something failed and waits for a retry: the tick reconciles all */
    int watches;
    uint64_t writes_ok;
    uint64_t writes_failed;
    uint64_t reconnects;
    uint64_t sessions_expired;
    uint64_t conflicts;
    pthread_t closer;                /* closes zh_closing, then signals close_done */
    zhandle_t *zh_closing;           /* the handle `closer` owns; set while it runs */
    ev_async close_done;             /* `closer` returned: free the publisher on the loop */
    struct zkpub_list *retired;      /* the list it is on after zkpub_retire(), or NULL */
    TAILQ_ENTRY(zkpub) retired_link; /* on *retired */
    void (*done)(void *);
    void *done_arg;
};

static void zk_reconcile_all(struct zkpub *z);
static void node_reconcile(struct zknode *n);
static void node_maybe_free(struct zknode *n);
static void batch_free(struct zkbatch *b, int release);

/* ---- the client's threads: copy, queue, wake the loop; nothing else ---- */

static struct zkreq *
req_of(const void *data)
{
    return (struct zkreq *)(uintptr_t)data;
}

static void
cb_push_reply(const void *data, int rc, const struct Stat *st, const char *value, int len)
{
    struct zkreq *r = req_of(data);
    struct zkev *e = zkev_new(ZKEV_REPLY);

    e->ctx = r;
    e->rc = rc;
    if (st) {
        e->has_stat = 1;
        e->owner = st->ephemeralOwner;
        e->version = st->version;
    }
    if (value && len >= 0) {
        e->data = xmalloc((size_t)len + 1);
        memcpy(e->data, value, (size_t)len);
        e->data[len] = '\0';
        e->datalen = len;
    }
    zkqueue_push(&r->z->queue, e);
}

static void
cb_string(int rc, const char *value, const void *data)
{
    (void)value;
    cb_push_reply(data, rc, NULL, NULL, -1);
}

static void
cb_stat(int rc, const struct Stat *st, const void *data)
{
    cb_push_reply(data, rc, st, NULL, -1);
}

static void
cb_void(int rc, const void *data)
{
    cb_push_reply(data, rc, NULL, NULL, -1);
}

static void
cb_data(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    cb_push_reply(data, rc, st, value, len);
}

static void
cb_session(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct zkpub *z = ctx;
    struct zkev *e;
    const clientid_t *cid;

    (void)path;
    if (type != ZOO_SESSION_EVENT)
        return;
    e = zkev_new(ZKEV_SESSION);
    e->zh = zh;
    e->type = type;
    e->state = state;
    if (state == ZOO_CONNECTED_STATE && (cid = zoo_client_id(zh)) != NULL)
        e->session_id = cid->client_id;
    zkqueue_push(&z->queue, e);
}

static void
cb_node_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct zknode *n = ctx;
    struct zkev *e;

    (void)path;
    /* Every per-path watcher also hears every session event; those do not consume it. */
    if (type == ZOO_SESSION_EVENT)
        return;
    e = zkev_new(ZKEV_WATCH);
    e->zh = zh;
    e->type = type;
    e->state = state;
    e->ctx = n;
    zkqueue_push(&n->z->queue, e);
}

/* The client's log line "time:pid(tid):ZOO_LEVEL@func@line: message" becomes one of ours. */
static void
cb_log(const char *msg)
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

/* ---- requests ---- */

static struct zkreq *
req_new(struct zkpub *z, enum zkop op, struct zknode *n, struct zkcont *c)
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
static void
req_release(struct zkreq *r)
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
        batch_free(r->batch, 1);
    free(r);
}

/* A zoo_a* call returned RC: on failure its completion never runs, so release R here. */
static int
req_sent(struct zkreq *r, int rc)
{
    if (rc == ZOK)
        return 0;
    r->z->retry_due = 1; /* the tick tries again */
    log_debug(ZK_COMP, "%s %s not sent: %s", op_names[r->op],
              r->node   ? r->node->path
              : r->cont ? r->cont->path
                        : "(batch)",
              zerror(rc));
    req_release(r);
    return -1;
}

/* ---- documents ---- */

/* Renders N's current document (its owner's business) into SB. */
static void
node_render(struct zknode *n, struct sbuf *sb)
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

/* ---- state of nodes and containers ---- */

static ev_tstamp
backoff(int fails)
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

static struct zkcont *
cont_get(struct zkpub *z, const char *path)
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
static void
node_created(struct zknode *n, uint64_t gen)
{
    n->created = 1;
    n->done_gen = gen;
    n->version = 0;
    n->fails = 0;
    n->z->writes_ok++;
}

/* Marks N wanted gone, or wanted again, keeping the publisher's count of removed nodes. */
static void
node_set_removed(struct zknode *n, int removed)
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
    node_set_removed(n, 0);
    TAILQ_REMOVE(&n->z->nodes, n, link);
    free(n->path);
    free(n);
}

/* The session is gone: nothing we created or watched survives in it. */
static void
zk_forget_session(struct zkpub *z)
{
    struct zknode *n, *tmp;
    struct zkcont *c;

    z->session_id = 0;
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
        n->done_gen = 0;
        n->version = -1;
        n->fails = 0;
        n->retry_at = 0;
        node_set_watched(n, 0);
        node_maybe_free(n);
    }
}

/* ---- sending ---- */

static int
zk_ready(const struct zkpub *z)
{
    return z->zh != NULL && (z->state == ZK_CONNECTED || z->state == ZK_STOPPING) &&
           z->session_id != 0;
}

static void
cont_reconcile(struct zkpub *z, struct zkcont *c)
{
    struct zkreq *r;

    if (!zk_ready(z) || c->done || c->busy)
        return;
    if (ev_now(z->loop) < c->retry_at) {
        z->retry_due = 1;
        return;
    }
    r = req_new(z, ZKOP_CONT_CREATE, NULL, c);
    req_sent(r, zoo_acreate(z->zh, c->path, NULL, -1, &z->acl, ZOO_PERSISTENT, cb_string, r));
}

/* Creates (OP ZKOP_CREATE) or rewrites (ZKOP_SET) N with DOC, LEN bytes of generation GEN. */
static void
node_send_text(struct zknode *n, enum zkop op, const char *doc, int len, uint64_t gen)
{
    struct zkpub *z = n->z;
    struct zkreq *r = req_new(z, op, n, NULL);
    int rc;

    r->gen = gen;
    if (op == ZKOP_CREATE)
        rc = zoo_acreate(z->zh, n->path, doc, len, &z->acl, ZOO_EPHEMERAL, cb_string, r);
    else
        rc = zoo_aset(z->zh, n->path, doc, len, -1, cb_stat, r);
    req_sent(r, rc);
}

/* Renders N's current document and creates or rewrites the node with it. */
static void
node_send_doc(struct zknode *n, enum zkop op)
{
    struct sbuf sb = {0};

    node_render(n, &sb);
    node_send_text(n, op, sb.buf ? sb.buf : "", (int)sb.len, n->want_gen);
    sbuf_free(&sb);
}

static void
node_send_exists(struct zknode *n)
{
    struct zkreq *r = req_new(n->z, ZKOP_EXISTS, n, NULL);

    req_sent(r, zoo_awexists(n->z->zh, n->path, cb_node_watch, n, cb_stat, r));
}

static void
node_send_delete(struct zknode *n, enum zkop op, int version)
{
    struct zkreq *r = req_new(n->z, op, n, NULL);

    req_sent(r, zoo_adelete(n->z->zh, n->path, version, cb_void, r));
}

/* The header of 3.8 declares the completion as a pointer to a function pointer; the library
 * stores and calls it as the function pointer itself, so that is what we pass. */
static void
node_send_unwatch(struct zknode *n)
{
    struct zkreq *r = req_new(n->z, ZKOP_UNWATCH, n, NULL);

    req_sent(r, zoo_aremove_watches(n->z->zh, n->path, ZWATCHTYPE_DATA, cb_node_watch, n, 0,
                                    (void_completion_t *)(uintptr_t)cb_void, r));
}

/* ---- batched creates and deletes ---- */

/* Frees B; RELEASE: its nodes are idle again (it was never sent, or its reply never came). */
static void
batch_free(struct zkbatch *b, int release)
{
    for (int i = 0; i < b->count; i++) {
        if (release)
            b->nodes[i]->busy = 0;
        free(b->docs[i]);
    }
    free(b);
}

/* Drops the open batch unsent (the session ended, or shutdown): its nodes are idle again. */
static void
batch_discard(struct zkpub *z)
{
    if (z->batch == NULL)
        return;
    ev_prepare_stop(z->loop, &z->flush);
    batch_free(z->batch, 1);
    z->batch = NULL;
}

/* Writes "creating 12 nodes", "deleting 3 nodes" or "creating 12 and deleting 3 nodes". */
static const char *
batch_what(const struct zkbatch *b, char *buf, size_t len)
{
    int creates = b->count - b->deletes;

    if (b->deletes == 0)
        snprintf(buf, len, "creating %d nodes", creates);
    else if (creates == 0)
        snprintf(buf, len, "deleting %d nodes", b->deletes);
    else
        snprintf(buf, len, "creating %d and deleting %d nodes", creates, b->deletes);
    return buf;
}

/* Sends the open batch: one multi request, or a plain request for a batch of one. */
static void
batch_send(struct zkpub *z)
{
    struct zkbatch *b = z->batch;
    struct zkreq *r;
    char what[64];

    if (b == NULL)
        return;
    if (!zk_ready(z)) {
        batch_discard(z); /* its nodes are reconciled again when the session is back */
        return;
    }
    ev_prepare_stop(z->loop, &z->flush);
    z->batch = NULL;
    if (b->count == 1) {
        struct zknode *n = b->nodes[0];
        char *doc = b->docs[0];
        uint64_t gen = b->gens[0];

        b->docs[0] = NULL; /* taken: sent as it was rendered */
        batch_free(b, 1);
        if (doc == NULL) {
            node_send_delete(n, ZKOP_DELETE, -1);
        } else {
            node_send_text(n, ZKOP_CREATE, doc, (int)strlen(doc), gen);
            free(doc);
        }
        return;
    }
    for (int i = 0; i < b->count; i++) {
        if (b->docs[i] == NULL)
            zoo_delete_op_init(&b->ops[i], b->nodes[i]->path, -1);
        else
            zoo_create_op_init(&b->ops[i], b->nodes[i]->path, b->docs[i], (int)strlen(b->docs[i]),
                               &z->acl, ZOO_EPHEMERAL, NULL, 0);
    }
    r = req_new(z, ZKOP_MULTI, NULL, NULL);
    r->batch = b;
    log_debug(ZK_COMP, "%s in one request", batch_what(b, what, sizeof(what)));
    req_sent(r, zoo_amulti(z->zh, b->count, b->ops, b->results, cb_void, r));
}

/*
 * Adds N's create (OP ZKOP_CREATE) or delete (ZKOP_DELETE) to the open batch, which goes out
 * before the loop sleeps, or when full.
 */
static void
batch_add(struct zknode *n, enum zkop op)
{
    struct zkpub *z = n->z;
    struct zkbatch *b = z->batch;

    if (b == NULL) {
        b = z->batch = xcalloc(1, sizeof(*b));
        ev_prepare_start(z->loop, &z->flush);
    }
    b->nodes[b->count] = n;
    b->gens[b->count] = n->want_gen;
    if (op == ZKOP_DELETE) {
        b->docs[b->count] = NULL;
        b->deletes++;
    } else {
        struct sbuf sb = {0};

        node_render(n, &sb);
        b->docs[b->count] = sb.buf ? sb.buf : xstrdup("");
    }
    b->count++;
    n->busy = 1;
    if (b->count == ZK_BATCH_MAX)
        batch_send(z);
}

static void
on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    batch_send(w->data);
}

/*
 * A multi completed with RC. On success every create and delete in it happened; otherwise
 * none did. A lost connection retries them as a batch when it is back; any other failure
 * (one node already there: a previous incarnation's, another agent's; a container gone; a
 * node already deleted) has each of them written alone from now on in this session, through
 * the single request's own handling of every case, so a batch never fails twice for one node.
 */
static void
on_batch_reply(struct zkpub *z, struct zkbatch *b, int rc)
{
    int solo = rc != ZOK && rc != ZCONNECTIONLOSS && rc != ZOPERATIONTIMEOUT && rc != ZCLOSING &&
               rc != ZSESSIONEXPIRED && rc != ZINVALIDSTATE;
    char what[64];

    if (solo)
        log_info(ZK_COMP, "%s in one request failed (%s): one by one from now on",
                 batch_what(b, what, sizeof(what)), zerror(rc));
    else if (rc != ZOK)
        log_debug(ZK_COMP, "%s in one request: %s, will retry", batch_what(b, what, sizeof(what)),
                  zerror(rc));
    else if (b->deletes > 0)
        log_info(ZK_COMP, "deleted %d nodes in one request", b->deletes);
    for (int i = 0; i < b->count; i++) {
        struct zknode *n = b->nodes[i];

        n->busy = 0;
        if (rc == ZOK && b->docs[i] == NULL) {
            n->created = 0;
            z->writes_ok++;
            log_debug(ZK_COMP, "deleted %s", n->path);
        } else if (rc == ZOK) {
            node_created(n, b->gens[i]);
        } else if (solo) {
            n->solo = 1;
        }
    }
    for (int i = 0; i < b->count; i++)
        node_reconcile(b->nodes[i]);
}

/*
 * Brings one node towards what it should be, one request at a time:
 * 1. a removed node is deleted if ours, its watch dropped, then it is freed;
 * 2. its container must exist first;
 * 3. a conflicting node is only watched, to be taken when its owner lets go;
 * 4. otherwise create it, rewrite it if the desired document is newer, then watch it.
 * While creates are being answered (start-up, a new session) the watches wait for them:
 * the server answers a session's requests in order, and 10,000 exists requests sent between
 * the creates would hold the last nodes back by most of a second.
 */
static void
node_reconcile(struct zknode *n)
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
            node_send_delete(n, ZKOP_DELETE, -1);
        else if (n->created)
            batch_add(n, ZKOP_DELETE);
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
    } else if (!n->created) {
        if (n->solo)
            node_send_doc(n, ZKOP_CREATE);
        else
            batch_add(n, ZKOP_CREATE);
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
static void
zk_arm_waiting(struct zkpub *z)
{
    struct zknode *n;

    while (z->creates == 0 && z->batch == NULL && (n = TAILQ_FIRST(&z->waiting)) != NULL) {
        node_set_waiting(n, 0);
        node_reconcile(n);
    }
}

static void
zk_reconcile_all(struct zkpub *z)
{
    struct zkcont *c;
    struct zknode *n, *tmp;

    TAILQ_FOREACH (c, &z->conts, link)
        cont_reconcile(z, c);
    TAILQ_FOREACH_SAFE (n, &z->nodes, link, tmp)
        node_reconcile(n);
}

/* ---- replies ---- */

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
    *retry_at = ev_now(z->loop) + backoff(*fails);
    log_warn(ZK_COMP, "%s %s failed: %s (retry in %.1fs)", what, path, zerror(rc), backoff(*fails));
}

static void
on_cont_reply(struct zkpub *z, struct zkcont *c, int rc)
{
    if (rc == ZOK || rc == ZNODEEXISTS) {
        c->done = 1;
        c->fails = 0;
        if (rc == ZOK)
            log_info(ZK_COMP, "created container %s", c->path);
        zk_reconcile_all(z);
        return;
    }
    fail(z, "create", c->path, rc, &c->fails, &c->retry_at, 0);
}

static void
on_node_reply(struct zkpub *z, struct zkreq *r, const struct zkev *e)
{
    struct zknode *n = r->node;
    int rc = e->rc;

    switch (r->op) {
    case ZKOP_CREATE:
        if (rc == ZOK) {
            node_created(n, r->gen);
        } else if (rc == ZNODEEXISTS) {
            struct zkreq *g = req_new(z, ZKOP_CHECK, n, NULL);

            req_sent(g, zoo_aget(z->zh, n->path, 0, cb_data, g));
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
            /* Our own create whose reply was lost: ours, content unknown, so rewrite it. */
            n->created = 1;
            n->done_gen = 0;
            n->version = e->version;
        } else if (rc == ZOK && doc_is_ours(z, e->data, e->datalen)) {
            log_info(ZK_COMP, "taking over %s from our previous session 0x%" PRIx64, n->path,
                     (uint64_t)e->owner);
            node_send_delete(n, ZKOP_TAKEOVER, e->version);
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
    case ZKOP_TAKEOVER:
        if (rc != ZOK && rc != ZNONODE && rc != ZBADVERSION)
            fail(z, "delete", n->path, rc, &n->fails, &n->retry_at, 1);
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

static void
on_watch(struct zkpub *z, struct zknode *n, int type)
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
}

/* ---- session ---- */

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
    z->zh = zookeeper_init2(z->hosts, cb_session, (int)z->set.session_timeout_ms, NULL, z,
                            ZOO_NO_LOG_CLIENTENV, cb_log);
    err = errno;
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
        req_release(r);
    zk_forget_session(z);
}

/* Closes the handle from the loop thread. */
static void
zk_close(struct zkpub *z)
{
    zhandle_t *zh = z->zh;

    if (zh == NULL)
        return;
    batch_discard(z);
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
            log_info(ZK_COMP, "session 0x%" PRIx64 " established (timeout %dms)",
                     (uint64_t)z->session_id, zoo_recv_timeout(z->zh));
        } else {
            log_info(ZK_COMP, "reconnected, session 0x%" PRIx64 " kept", (uint64_t)z->session_id);
        }
        if (z->state != ZK_STOPPING)
            z->state = ZK_CONNECTED;
        zk_reconcile_all(z);
    } else if (e->state == ZOO_EXPIRED_SESSION_STATE) {
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

static int
zk_all_deleted(const struct zkpub *z)
{
    const struct zknode *n;

    TAILQ_FOREACH (n, &z->nodes, link)
        if (n->created || (n->busy && n->removed))
            return 0;
    return 1;
}

static void
on_event(struct zkpub *z, struct zkev *e)
{
    if (e->kind == ZKEV_REPLY) {
        /* Released first, so that the reply handler may send the node's next request. */
        struct zkreq *r = e->ctx, done = *r;
        struct zkbatch *b = r->batch;

        r->batch = NULL;
        req_release(r);
        if (b) {
            if (z->zh == NULL) {
                batch_free(b, 1); /* a closed handle's leftover */
                return;
            }
            on_batch_reply(z, b, e->rc);
            batch_free(b, 0);
            zk_arm_waiting(z);
            return;
        }
        if (z->zh == NULL)
            return; /* a closed handle's leftover: zk_close() forgets the session */
        if (done.cont) {
            on_cont_reply(z, done.cont, e->rc);
        } else {
            on_node_reply(z, &done, e);
            node_reconcile(done.node);
        }
        zk_arm_waiting(z);
        return;
    }
    if (e->zh != z->zh || z->zh == NULL)
        return; /* from a handle already closed */
    if (e->kind == ZKEV_SESSION) {
        on_session(z, e);
    } else {
        struct zknode *n = e->ctx;

        on_watch(z, n, e->type);
        node_reconcile(n);
    }
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

/*
 * Rewrites HOSTS with numeric addresses, resolved once here at start-up, so that neither
 * the loop nor a later zookeeper_init() waits on DNS. A name that does not resolve is kept
 * as written (the client will try it). The returned string belongs to the caller.
 */
static char *
zk_resolve_hosts(const char *hosts)
{
    struct sbuf out = {0};
    char *copy = xstrdup(hosts), *save = NULL, *tok;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        struct addrinfo hints = {0}, *res = NULL, *ai;
        size_t before = out.len;

        while (*tok == ' ')
            tok++;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        if (colon && tok[0] != '[') {
            *colon = '\0';
            if (getaddrinfo(tok, NULL, &hints, &res) == 0) {
                for (ai = res; ai; ai = ai->ai_next) {
                    char ip[NI_MAXHOST];

                    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof(ip), NULL, 0,
                                    NI_NUMERICHOST) != 0)
                        continue;
                    sbuf_printf(&out, "%s%s%s%s:%s", out.len ? "," : "",
                                ai->ai_family == AF_INET6 ? "[" : "", ip,
                                ai->ai_family == AF_INET6 ? "]" : "", colon + 1);
                }
                freeaddrinfo(res);
            }
            *colon = ':';
        }
        if (out.len == before)
            sbuf_printf(&out, "%s%s", out.len ? "," : "", tok);
    }
    free(copy);
    if (out.buf == NULL)
        sbuf_adds(&out, hosts);
    return out.buf;
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
    struct zkpub *z = xcalloc(1, sizeof(*z));
    char *p;

    z->loop = loop;
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
        cont_get(z, p);
        *c = '/';
    }
    if (*z->root)
        cont_get(z, z->root);
    free(p);
    z->hosts = zk_resolve_hosts(z->set.hosts);

    zkqueue_init(&z->queue, z->loop, on_async, z);
    ev_timer_init(&z->tick, on_tick, ZK_TICK_S, ZK_TICK_S);
    z->tick.data = z;
    ev_timer_start(z->loop, &z->tick);
    ev_init(&z->finish_timer, on_deadline);
    z->finish_timer.data = z;
    ev_prepare_init(&z->flush, on_flush);
    z->flush.data = z;
    zk_open(z);
    return z;
}

void
zkpub_add_dir(struct zkpub *z, const char *dir)
{
    char *cpath = path_join(z->root, dir);

    cont_get(z, cpath);
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
        node_set_removed(n, 0);
    else
        n = node_new(z, cont_get(z, cpath), name);
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
    node_reconcile(n);
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
    node_set_removed(n, 1);
    node_reconcile(n);
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
    batch_discard(z); /* not sent: nothing of it to delete */
    TAILQ_FOREACH (n, &z->nodes, link) {
        node_set_removed(n, 1);
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
    batch_discard(z);
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
