/* replyobj.c -- reply objects for hiredis 0.14's reader, kept on a free list for reuse. */
#include "replyobj.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define INLINE_ELEMENTS 6  /* a replica's ROLE reply has 5 */
#define INLINE_STR      48 /* "PONG", "master", most host names, with their NUL */

/*
 * One object. Owner: the reader while it builds the reply, then whoever the reader hands the
 * reply to, until replyobj_free(); then the free list (poisoned under ASan but for next), or
 * malloc's if the list is full. str and element point into the object unless they were too long.
 */
struct robj {
    struct robj *next; /* on the free list */
    redisReply r;      /* what the reader and reply.c see */
    redisReply *elements[INLINE_ELEMENTS];
    char str[INLINE_STR];
};

#define ROBJ_OF(reply) ((struct robj *)(void *)((char *)(reply)-offsetof(struct robj, r)))
#define ROBJ_BODY      (sizeof(struct robj) - offsetof(struct robj, r))

static struct robj *free_list;
static size_t kept;

/* A zeroed object of TYPE, linked into its parent, or NULL. */
static struct robj *
take(const redisReadTask *task, int type)
{
    struct robj *o = free_list;

    if (o != NULL) {
        UNPOISON(&o->r, ROBJ_BODY);
        free_list = o->next;
        kept--;
    } else if ((o = malloc(sizeof(*o))) == NULL) {
        return NULL;
    }
    memset(&o->r, 0, sizeof(o->r));
    o->r.type = type;
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = &o->r;
    }
    return o;
}

/* Undoes take() for an object whose own allocation failed: unlinked, back to the list. */
static void
give_back(const redisReadTask *task, struct robj *o)
{
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = NULL;
    }
    o->r.type = REDIS_REPLY_NIL;
    replyobj_free(&o->r);
}

void *
replyobj_string(const redisReadTask *task, char *str, size_t len)
{
    struct robj *o = take(task, task->type);
    char *buf;

    if (o == NULL)
        return NULL;
    buf = len < INLINE_STR ? o->str : malloc(len + 1);
    if (buf == NULL) {
        give_back(task, o);
        return NULL;
    }
    memcpy(buf, str, len);
    buf[len] = '\0';
    o->r.str = buf;
    o->r.len = len;
    return &o->r;
}

void *
replyobj_array(const redisReadTask *task, int elements)
{
    struct robj *o;
    redisReply **el = NULL;

    if (elements < 0 || elements > REPLY_MAX_ELEMENTS ||
        (o = take(task, REDIS_REPLY_ARRAY)) == NULL)
        return NULL;
    if (elements > INLINE_ELEMENTS) {
        el = calloc((size_t)elements, sizeof(*el));
        if (el == NULL) {
            give_back(task, o);
            return NULL;
        }
    } else if (elements > 0) {
        el = o->elements;
        memset(el, 0, (size_t)elements * sizeof(*el));
    }
    o->r.element = el;
    o->r.elements = (size_t)elements;
    return &o->r;
}

void *
replyobj_integer(const redisReadTask *task, long long value)
{
    struct robj *o = take(task, REDIS_REPLY_INTEGER);

    if (o == NULL)
        return NULL;
    o->r.integer = value;
    return &o->r;
}

void *
replyobj_nil(const redisReadTask *task)
{
    struct robj *o = take(task, REDIS_REPLY_NIL);

    return o == NULL ? NULL : &o->r;
}

void
replyobj_free(void *obj)
{
    redisReply *r = obj;
    struct robj *o;

    if (r == NULL)
        return;
    o = ROBJ_OF(r);
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            replyobj_free(r->element[i]); /* NULL where a partial reply stopped */
        if (r->element != o->elements)
            free(r->element);
    } else if (r->str != NULL && r->str != o->str) {
        free(r->str);
    }
    if (kept >= REPLYOBJ_KEEP) {
        free(o);
        return;
    }
    o->next = free_list;
    free_list = o;
    kept++;
    POISON(&o->r, ROBJ_BODY);
}

redisReplyObjectFunctions *
replyobj_functions(void)
{
    static redisReplyObjectFunctions fns = {
        .createString = replyobj_string,
        .createArray = replyobj_array,
        .createInteger = replyobj_integer,
        .createNil = replyobj_nil,
        .freeObject = replyobj_free,
    };

    return &fns;
}

size_t
replyobj_kept(void)
{
    return kept;
}

void
replyobj_drain(void)
{
    while (free_list != NULL) {
        struct robj *o = free_list;

        free_list = o->next;
        UNPOISON(&o->r, ROBJ_BODY);
        free(o);
    }
    kept = 0;
}
