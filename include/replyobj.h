/* replyobj.h -- reply objects for hiredis 0.14's reader, kept on a free list for reuse. */
#ifndef SA_REPLYOBJ_H
#define SA_REPLYOBJ_H

#include <hiredis/read.h>
#include <stddef.h>

/*
 * A reader's object functions (redisReplyObjectFunctions), building the same redisReply trees
 * as hiredis's own, so anything that reads a redisReply reads these. What differs is where an
 * object comes from: a free list that replyobj_free() refills, with room inside each object for
 * a short string (a probe's "PONG", "master", a host name, a link state) and a few elements (a
 * replica's ROLE reply has five). A probe's replies then cost no malloc() once the agent runs;
 * a longer string or a larger array still gets its own allocation, freed with its object.
 *
 * The free list keeps at most REPLYOBJ_KEEP objects; more go back to malloc. It is not
 * thread-safe: the event loop's thread only. Under AddressSanitizer an object on the free list
 * is poisoned, so a use after replyobj_free() is still reported.
 *
 * Each create function links the new object into its parent (task->parent->obj), as hiredis's
 * do, and returns NULL when out of memory; replyobj_array() also for more than
 * REPLY_MAX_ELEMENTS elements.
 */
#define REPLYOBJ_KEEP 256

/*
 * Largest array a reply may hold (ROLE lists a master's replicas); more is garbage, refused as
 * out of memory (the reader's REDIS_ERR_OOM): hiredis 0.14 would allocate room for whatever
 * count a peer announces ("*1000000000").
 */
#define REPLY_MAX_ELEMENTS 4096

void *replyobj_string(const redisReadTask *task, char *str, size_t len);
void *replyobj_array(const redisReadTask *task, int elements);
void *replyobj_integer(const redisReadTask *task, long long value);
void *replyobj_nil(const redisReadTask *task);

/* The functions above as a table, for redisReaderCreateWithFunctions() (tests, fuzzing). */
redisReplyObjectFunctions *replyobj_functions(void);

/* Frees OBJ, a tree built by the functions above (NULL: nothing), onto the free list. */
void replyobj_free(void *obj);

/* Objects on the free list now (for tests). */
size_t replyobj_kept(void);

/* Frees every object on the free list (at exit: leak checkers see nothing left). */
void replyobj_drain(void);

#endif
