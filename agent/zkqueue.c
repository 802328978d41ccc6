/* zkqueue.c -- the thread boundary of the ZooKeeper publisher: every completion and watcher that
 * runs on the client's threads, and the queue that carries what they saw to the event loop. */
#include "zkqueue.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "zkpriv.h"

void
zkqueue_init(struct zkqueue *q, struct ev_loop *loop, void (*cb)(struct ev_loop *, ev_async *, int),
             void *data)
{
    pthread_mutex_init(&q->mu, NULL);
    STAILQ_INIT(&q->q);
    q->loop = loop;
    q->len = 0;
    ev_async_init(&q->async, cb);
    q->async.data = data;
    ev_async_start(loop, &q->async);
}

void
zkqueue_push(struct zkqueue *q, struct zkev *e)
{
    pthread_mutex_lock(&q->mu);
    STAILQ_INSERT_TAIL(&q->q, e, link);
    q->len++;
    pthread_mutex_unlock(&q->mu);
    ev_async_send(q->loop, &q->async);
}

struct zkev *
zkqueue_pop(struct zkqueue *q)
{
    struct zkev *e;

    pthread_mutex_lock(&q->mu);
    e = STAILQ_FIRST(&q->q);
    if (e) {
        STAILQ_REMOVE_HEAD(&q->q, link);
        q->len--;
    }
    pthread_mutex_unlock(&q->mu);
    return e;
}

void
zkqueue_stop(struct zkqueue *q)
{
    ev_async_stop(q->loop, &q->async);
}

void
zkqueue_destroy(struct zkqueue *q)
{
    struct zkev *e;

    zkqueue_stop(q);
    while ((e = zkqueue_pop(q)) != NULL)
        zkev_free(e);
    pthread_mutex_destroy(&q->mu);
}

struct zkev *
zkev_new(enum zkev_kind kind)
{
    struct zkev *e = xcalloc(1, sizeof(*e));

    e->kind = kind;
    return e;
}

void
zkev_free(struct zkev *e)
{
    if (e == NULL)
        return;
    free(e->data);
    free(e);
}

/*
 * ---- the client's threads: copy, queue, wake the loop; nothing else ----
 * These run on the client's completion thread (the log callback, zksession.c's zkcb_log, on
 * either of its threads). They read nothing of the publisher but the queue's address, and
 * touch nothing but the queue; the request, node or publisher they carry is only compared or
 * used on the loop.
 */

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

void
zkcb_string(int rc, const char *value, const void *data)
{
    (void)value;
    cb_push_reply(data, rc, NULL, NULL, -1);
}

void
zkcb_stat(int rc, const struct Stat *st, const void *data)
{
    cb_push_reply(data, rc, st, NULL, -1);
}

void
zkcb_void(int rc, const void *data)
{
    cb_push_reply(data, rc, NULL, NULL, -1);
}

void
zkcb_data(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    cb_push_reply(data, rc, st, value, len);
}

void
zkcb_session(zhandle_t *zh, int type, int state, const char *path, void *ctx)
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

void
zkcb_node_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
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
