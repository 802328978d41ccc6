/* redislink.h -- a hiredis async link attached to libev with a bounded read path. */
#ifndef SA_REDISLINK_H
#define SA_REDISLINK_H

#include <ev.h>
#include <stddef.h>

struct redisAsyncContext;
typedef void(redisCallbackFn)(struct redisAsyncContext *, void *, void *); /* hiredis/async.h */

/*
 * Most a link may hold for the reply it is reading: the input not parsed yet plus the reply
 * objects built so far (SPEC: "A Redis reply (or unparsed input on a link) larger than 64 KiB
 * is a protocol error").
 */
#define REDISLINK_MAX_HELD (64 * 1024)

/*
 * Attaches AC to LOOP (in place of hiredis's libev adapter) and bounds what its peer can make
 * us hold. After this:
 * - a reply, or unparsed input, over REDISLINK_MAX_HELD (a bulk announced larger is refused as
 *   soon as its header is read) frees the link at once; its callbacks see c->err
 *   REDIS_ERR_OOM, errstr "reply too large" (reply_classify_error: "protocol error: reply too
 *   large");
 * - a reply that arrives when no command waits for one (hiredis 0.14 would abort the process
 *   on an assert) closes the link as a protocol error (REDIS_ERR_PROTOCOL);
 * - replies are built from replyobj.c's free list and freed back to it, arrays bounded by
 *   REPLY_MAX_ELEMENTS.
 * Allocates one struct per link, owned by AC and freed with it (the adapter's cleanup hook).
 * Call before setting the connect and disconnect callbacks. Returns 0, or -1 if AC already
 * has an event library attached (AC is left as it was).
 */
int redislink_attach(struct ev_loop *loop, struct redisAsyncContext *ac);

/*
 * Sends LEN bytes of N formatted commands (CMDS, e.g. constant strings) on AC and hands their
 * N replies, in order, to FNS[0..N-1] with PRIVDATA, as N calls of redisAsyncFormattedCommand
 * would, for less: on a connected link with nothing queued the bytes go out in one send() now,
 * without hiredis parsing them or copying them into its output buffer; what the socket does not
 * take (and everything, before the connect has settled) is queued for hiredis to write. Never
 * frees AC: a write error is left to hiredis's write path, which tears the link down from the
 * loop (the callbacks get NULL and c->err). Returns REDIS_OK, or REDIS_ERR if AC is closing or
 * no memory was left for a callback entry (the link is then failed: drop it).
 */
int redislink_send(struct redisAsyncContext *ac, const char *cmds, size_t len,
                   redisCallbackFn *const *fns, int n, void *privdata);

/*
 * Reads what has arrived on AC now, as its read watcher would, bound included (a probe's
 * deadline reads once before it gives up). AC must have been attached by redislink_attach();
 * it may be freed when this returns.
 */
void redislink_read(struct redisAsyncContext *ac);

#endif
