/* zkqueue.h -- hands ZooKeeper callbacks from the client's completion thread to the event loop. */
#ifndef SA_ZKQUEUE_H
#define SA_ZKQUEUE_H

#include <ev.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/queue.h>

enum zkev_kind {
    ZKEV_SESSION = 0, /* the handle's global watcher: STATE changed */
    ZKEV_WATCH,       /* a node's exists-watch fired: TYPE, CTX is the node */
    ZKEV_REPLY,       /* a request completed: RC, CTX is the request */
};

/*
 * One event from the client's completion thread. Owner: the queue while queued; whoever
 * popped it afterwards, released by zkev_free(). Copies what the callback was given, since
 * the client's own buffers die when the callback returns.
 */
struct zkev {
    STAILQ_ENTRY(zkev) link;
    enum zkev_kind kind;
    const void *zh; /* the handle it came from, compared with the current one, never used */
    int type;
    int state;
    int64_t session_id; /* ZKEV_SESSION: the handle's session id when the event was seen */
    void *ctx;
    int rc;
    int has_stat;
    int64_t owner;   /* stat ephemeralOwner, when has_stat */
    int32_t version; /* stat version, when has_stat */
    char *data;      /* ZKEV_REPLY of a get: the node's data (NUL-terminated copy), or NULL */
    int datalen;
};

/*
 * The queue itself. Owner: the struct that embeds it (the publisher); set up by
 * zkqueue_init(), torn down by zkqueue_destroy() after the client's threads are gone.
 */
struct zkqueue {
    pthread_mutex_t mu;
    STAILQ_HEAD(, zkev) q;
    struct ev_loop *loop;
    ev_async async;
    int len;
};

/* Prepares Q on LOOP; CB runs on the loop whenever events were pushed (sends coalesce). */
void zkqueue_init(struct zkqueue *q, struct ev_loop *loop,
                  void (*cb)(struct ev_loop *, ev_async *, int), void *data);

/* Appends E (ownership passes to Q) and wakes the loop; callable from any thread. */
void zkqueue_push(struct zkqueue *q, struct zkev *e);

/* Removes and returns the oldest event (the caller owns it), or NULL; loop thread only. */
struct zkev *zkqueue_pop(struct zkqueue *q);

/* Stops the async watcher; the queue may still be popped. */
void zkqueue_stop(struct zkqueue *q);

/* Frees every queued event and the mutex; no thread may push any more. */
void zkqueue_destroy(struct zkqueue *q);

/* Allocates a zeroed event of KIND (aborts on exhaustion). */
struct zkev *zkev_new(enum zkev_kind kind);

/* Releases E and its data; NULL is allowed. */
void zkev_free(struct zkev *e);

#endif
