/* zkqueue.c -- hands ZooKeeper callbacks from the client's completion thread to the event loop. */
#include "zkqueue.h"

#include <stdlib.h>

#include "util.h"

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
