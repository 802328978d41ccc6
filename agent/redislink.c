/* redislink.c -- a hiredis async link attached to libev with a bounded read path. */
#include "redislink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "reply.h"
#include "replyobj.h"
#include "util.h"

/*
 * hiredis 0.14's reader has no byte limit: a "$2000000000" header makes it wait for 2 GB,
 * growing its buffer as the bytes come, and a reply that arrives with no command waiting
 * trips an assert in redisProcessCallbacks (the process aborts). This module is the event
 * library adapter of a link (the same five hooks as hiredis's adapters/libev.h), so every
 * read goes through link_read_cb, and it gives the reader its object functions (replyobj.c,
 * no malloc per reply) to see each object as it is built. Both read hiredis 0.14's private
 * fields (the reader's buffer and task stack, the context's callback list and output buffer):
 * another hiredis must be checked.
 */
#if HIREDIS_MAJOR != 0 || HIREDIS_MINOR != 14
#error "redislink.c relies on hiredis 0.14's redisReader and redisAsyncContext internals"
#endif

/*
 * One link's events and accounting. Owner: its redisAsyncContext (ac->ev.data), freed by the
 * cleanup hook hiredis calls when it frees the context -- unless that happens inside
 * link_read_cb, which then frees it once hiredis has returned.
 */
struct redislink {
    ev_io rev;             /* first: libev and every probe's read touch it */
    redisAsyncContext *ac; /* NULL once hiredis has freed the context during a read */
    struct ev_loop *loop;
    int reading;
    int writing;    /* hiredis has bytes to write: its output buffer is not empty */
    int in_read;    /* link_read_cb is running: cleanup leaves the struct to it */
    size_t partial; /* bytes of the objects built so far for the reply being read */
    ev_io wev;
};

/* ------------------------------------------------------------------ the reply objects */

/* The top-level task of TASK's reply. */
static const redisReadTask *
root_task(const redisReadTask *task)
{
    while (task->parent != NULL)
        task = task->parent;
    return task;
}

/*
 * Returns 1 if a complete object (LEAF: a string, integer, nil or empty array) built for
 * TASK ends its top-level reply: it is the last element at every level above it.
 */
static int
ends_reply(const redisReadTask *task, int leaf)
{
    if (!leaf)
        return 0;
    for (const redisReadTask *t = task; t->parent != NULL; t = t->parent)
        if (t->idx != t->parent->elements - 1)
            return 0;
    return 1;
}

/*
 * Charges COST bytes to the reply TASK belongs to: returns the reply's new total, or 0 if
 * that would pass REDISLINK_MAX_HELD (the object must not be built).
 */
static size_t
charge(const redisReadTask *task, size_t cost)
{
    const struct redislink *l = task->privdata;
    size_t base = (l == NULL || task->parent == NULL) ? 0 : l->partial;

    if (cost > REDISLINK_MAX_HELD - base)
        return 0;
    return base + cost;
}

/*
 * Records the object OBJ just built for TASK (TOTAL from charge()). At the end of a reply no
 * command waits for, the reader is put in error: hiredis 0.14 would otherwise assert. An
 * unsolicited error reply is left to hiredis, which closes the link with its text.
 */
static void *
built(const redisReadTask *task, void *obj, size_t total, int leaf)
{
    struct redislink *l = task->privdata;

    if (obj == NULL || l == NULL)
        return obj;
    if (!ends_reply(task, leaf)) {
        l->partial = total;
        return obj;
    }
    l->partial = 0;
    if (l->ac != NULL && l->ac->replies.head == NULL &&
        root_task(task)->type != REDIS_REPLY_ERROR) {
        /*
         * The reader checks its error once the reply is complete (this object completes it)
         * and keeps the reply as its own, freed with the reader.
         */
        redisReader *r = l->ac->c.reader;
        r->err = REDIS_ERR_PROTOCOL;
        util_strlcpy(r->errstr, "unsolicited reply", sizeof(r->errstr));
    }
    return obj;
}

static void *
link_create_string(const redisReadTask *task, char *str, size_t len)
{
    size_t total = charge(task, sizeof(redisReply) + len + 1);

    if (total == 0)
        return NULL; /* the reader's REDIS_ERR_OOM: reply too large */
    return built(task, replyobj_string(task, str, len), total, 1);
}

static void *
link_create_array(const redisReadTask *task, int elements)
{
    size_t total = 0;

    if (elements < 0 ||
        (total = charge(task, sizeof(redisReply) + (size_t)elements * sizeof(redisReply *))) == 0)
        return NULL;
    return built(task, replyobj_array(task, elements), total, elements == 0);
}

static void *
link_create_integer(const redisReadTask *task, long long value)
{
    size_t total = charge(task, sizeof(redisReply));

    if (total == 0)
        return NULL;
    return built(task, replyobj_integer(task, value), total, 1);
}

static void *
link_create_nil(const redisReadTask *task)
{
    size_t total = charge(task, sizeof(redisReply));

    if (total == 0)
        return NULL;
    return built(task, replyobj_nil(task), total, 1);
}

static redisReplyObjectFunctions link_fns = {
    /* never written */
    .createString = link_create_string,   .createArray = link_create_array,
    .createInteger = link_create_integer, .createNil = link_create_nil,
    .freeObject = replyobj_free,
};

/* Makes R build its replies through the functions above, accounting to L. */
static void
bound_reader(redisReader *r, struct redislink *l)
{
    r->fn = &link_fns;
    r->privdata = l; /* copied into every read task */
}

/* ----------------------------------------------------------------------- the read path */

/*
 * The length a bulk string announces whose header the reader has seen ('$' consumed, the
 * digits and CRLF unparsed: hiredis parses the header again until the whole bulk is there),
 * or 0 when no such header is complete. Capped just past REDISLINK_MAX_HELD.
 */
static size_t
announced_bulk(const redisReader *r)
{
    size_t n = 0, i;

    if (r->ridx < 0 || r->rstack[r->ridx].type != REDIS_REPLY_STRING)
        return 0;
    for (i = r->pos; i < r->len && r->buf[i] >= '0' && r->buf[i] <= '9'; i++)
        if (n <= REDISLINK_MAX_HELD)
            n = n * 10 + (size_t)(r->buf[i] - '0');
    return (i < r->len && r->buf[i] == '\r') ? n : 0;
}

/*
 * What L holds for the reply it is reading: the objects built so far, the input not parsed
 * yet, and, once a bulk's header is in, the whole bulk it announced.
 */
static size_t
held(const struct redislink *l)
{
    const redisReader *r = l->ac->c.reader;
    size_t unparsed = r->len - r->pos;
    size_t objects = r->ridx >= 0 ? l->partial : 0;
    size_t bulk = announced_bulk(r);

    if (bulk > 0)
        bulk += sizeof(redisReply) + 1;
    return objects + (bulk > unparsed ? bulk : unparsed);
}

/*
 * Frees the link as a reader error would, with "reply too large": the callbacks hiredis runs
 * while freeing read c->err. L is freed with it.
 */
static void
refuse_too_large(struct redislink *l)
{
    redisAsyncContext *ac = l->ac;

    ac->c.err = REDIS_ERR_OOM;
    util_strlcpy(ac->c.errstr, "reply too large", sizeof(ac->c.errstr));
    ac->err = ac->c.err;
    ac->errstr = ac->c.errstr;
    redisAsyncFree(ac);
}

/*
 * One read (hiredis reads at most 16 KiB at a time) and the replies it completes, then the
 * bound: a link whose peer made it hold more than REDISLINK_MAX_HELD is closed now, not at
 * the probe's deadline.
 */
static void
link_read(struct redislink *l)
{
    l->in_read = 1;
    redisAsyncHandleRead(l->ac); /* may free the context (error, EOF, a callback's free) */
    l->in_read = 0;
    if (l->ac == NULL) {
        free(l);
        return;
    }
    if (l->ac->c.reader != NULL && held(l) > REDISLINK_MAX_HELD)
        refuse_too_large(l);
}

static void
link_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    link_read(w->data);
}

void
redislink_read(redisAsyncContext *ac)
{
    link_read(ac->ev.data);
}

static void
link_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct redislink *l = w->data;

    (void)loop;
    (void)revents;
    redisAsyncHandleWrite(l->ac); /* may free the context, and L with it */
}

/* ------------------------------------------------------------------------ the write path */

static void link_add_write(void *privdata);
static void link_add_read(void *privdata);

/*
 * Puts callback FN for one more reply on AC's list, behind those waiting, as hiredis's own
 * (static) __redisPushCallback does: hiredis frees each entry with free() when its reply comes
 * or the link goes.
 */
static int
expect_reply(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata)
{
    redisCallback *cb = malloc(sizeof(*cb));

    if (cb == NULL)
        return REDIS_ERR;
    cb->next = NULL;
    cb->fn = fn;
    cb->pending_subs = 0;
    cb->privdata = privdata;
    if (ac->replies.head == NULL)
        ac->replies.head = cb;
    else
        ac->replies.tail->next = cb;
    ac->replies.tail = cb;
    return REDIS_OK;
}

/*
 * Fails L's link with ERRNUM as hiredis's own I/O would: its write path sees c->err and tears the
 * link down from the loop, and the callbacks get NULL with this error. An ENOMEM (no room for a
 * callback entry or the queued bytes) is then, like EMFILE, the agent's own fault, not the
 * Redis's (reply_classify_error), where hiredis's REDIS_ERR_OOM would read as a reply too large.
 */
static void
fail_link(struct redislink *l, int errnum)
{
    redisContext *c = &l->ac->c;

    c->err = REDIS_ERR_IO;
    util_strlcpy(c->errstr, strerror(errnum), sizeof(c->errstr));
    link_add_write(l);
}

int
redislink_send(redisAsyncContext *ac, const char *cmds, size_t len, redisCallbackFn *const *fns,
               int n, void *privdata)
{
    redisContext *c = &ac->c;
    struct redislink *l = ac->ev.data;
    ssize_t w = 0;

    if (c->flags & (REDIS_DISCONNECTING | REDIS_FREEING))
        return REDIS_ERR;
    for (int i = 0; i < n; i++) {
        if (expect_reply(ac, fns[i], privdata) != REDIS_OK) {
            /* the entries pushed so far would wait for replies never asked for: drop them */
            fail_link(l, ENOMEM);
            return REDIS_ERR;
        }
    }
    /*
     * Connected with nothing queued (the usual case): write now, with no trip through hiredis's
     * output buffer, which it frees and allocates again after every complete write. What the
     * socket does not take now is queued there for hiredis to write. hiredis asks for the write
     * watcher whenever it queues bytes and drops it once its buffer is written out, so
     * `writing` says whether anything waits there (without touching the buffer's memory).
     */
    if ((c->flags & REDIS_CONNECTED) && !l->writing) {
        w = send(c->fd, cmds, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == (ssize_t)len) {
            link_add_read(l);
            return REDIS_OK;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fail_link(l, errno);
            return REDIS_OK;
        }
        if (w < 0)
            w = 0;
    }
    sds grown = sdscatlen(c->obuf, cmds + w, len - (size_t)w);
    if (grown == NULL) {
        fail_link(l, ENOMEM);
        return REDIS_OK;
    }
    c->obuf = grown;
    link_add_write(l);
    return REDIS_OK;
}

/* -------------------------------------------------------------- the event library hooks */

static void
link_add_read(void *privdata)
{
    struct redislink *l = privdata;

    if (!l->reading) {
        l->reading = 1;
        ev_io_start(l->loop, &l->rev);
    }
}

static void
link_del_read(void *privdata)
{
    struct redislink *l = privdata;

    if (l->reading) {
        l->reading = 0;
        ev_io_stop(l->loop, &l->rev);
    }
}

static void
link_add_write(void *privdata)
{
    struct redislink *l = privdata;

    if (!l->writing) {
        l->writing = 1;
        ev_io_start(l->loop, &l->wev);
    }
}

static void
link_del_write(void *privdata)
{
    struct redislink *l = privdata;

    if (l->writing) {
        l->writing = 0;
        ev_io_stop(l->loop, &l->wev);
    }
}

/* hiredis is freeing the context: stop the watchers; free L unless a read is running. */
static void
link_cleanup(void *privdata)
{
    struct redislink *l = privdata;

    link_del_read(l);
    link_del_write(l);
    if (l->in_read) {
        l->ac = NULL; /* link_read_cb frees L when hiredis returns */
        return;
    }
    free(l);
}

int
redislink_attach(struct ev_loop *loop, redisAsyncContext *ac)
{
    struct redislink *l;

    if (ac->ev.data != NULL)
        return -1;
    l = xcalloc(1, sizeof(*l));
    l->ac = ac;
    l->loop = loop;
    ev_io_init(&l->rev, link_read_cb, ac->c.fd, EV_READ);
    ev_io_init(&l->wev, link_write_cb, ac->c.fd, EV_WRITE);
    l->rev.data = l;
    l->wev.data = l;
    ac->ev.addRead = link_add_read;
    ac->ev.delRead = link_del_read;
    ac->ev.addWrite = link_add_write;
    ac->ev.delWrite = link_del_write;
    ac->ev.cleanup = link_cleanup;
    ac->ev.data = l;
    bound_reader(ac->c.reader, l);
    return 0;
}
