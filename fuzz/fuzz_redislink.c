/* fuzz_redislink.c -- libFuzzer target: bytes from a "Redis" peer through the bounded read
 * path (redislink.c) of a real hiredis async link on a libev loop, with 1-3 commands waiting.
 *
 * Input: byte 0 says how many PINGs wait (1-3, from bits 0-1: hiredis reads a link only once
 * a command was queued, and the agent's links always start with some), whether the rest is repeated
 * past the 64 KiB bound (bit 2: endless replies, floods) and where the first write is cut (the byte
 * itself); the rest is what the peer sends, after which it closes. Every reply callback must
 * run exactly once, and the link must be gone at the end (cut, refused or at EOF), with any
 * error classified into a printable reason. hiredis 0.14 aborts on a reply nobody asked for:
 * a crash here is a hole in the read path. The peer end is a unix socket (hiredis 0.14 has
 * no async connect from an fd). */
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "redislink.h"
#include "reply.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char cmd_ping[] = "*1\r\n$4\r\nPING\r\n";

static struct ev_loop *loop;
static int lfd = -1;
static char path[108];

struct run {
    redisAsyncContext *ac; /* NULL once hiredis freed it */
    int callbacks;         /* reply callbacks run, with a reply or NULL */
};

static void
check_reason(int err, const char *errstr)
{
    char reason[96];

    if (reply_classify_error(err, errstr, reason, sizeof(reason)) == PROBE_OK)
        abort();
    for (const char *p = reason; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            abort();
}

static void
reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct run *r = privdata;

    r->callbacks++;
    if (reply == NULL) {
        check_reason(ac->c.err, ac->c.errstr);
        r->ac = NULL;
    }
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct run *r = ac->data;

    (void)status;
    check_reason(ac->c.err, ac->c.errstr);
    r->ac = NULL;
}

static void
setup_once(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char dir[] = "/tmp/fuzz_redislink.XXXXXX";

    loop = ev_default_loop(0);
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/redis.sock", dir);
    util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(lfd, 8) != 0)
        abort();
}

/* Sends N bytes of P from the peer end while the loop runs; stops when the link is gone. */
static void
peer_send(struct run *r, int sfd, const uint8_t *p, size_t n)
{
    while (n > 0 && r->ac != NULL) {
        ssize_t w = send(sfd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN) {
            return; /* the link closed its end */
        }
        ev_run(loop, EVRUN_NOWAIT);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run r = {0};
    int sfd, waiting;

    if (size < 2)
        return 0;
    if (lfd < 0)
        setup_once();
    waiting = 1 + (data[0] & 3) % 3;
    r.ac = redisAsyncConnectUnix(path);
    if (r.ac == NULL || r.ac->err || redislink_attach(loop, r.ac) != 0)
        abort();
    r.ac->data = &r;
    redisAsyncSetDisconnectCallback(r.ac, disconnect_cb);
    sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (sfd < 0)
        abort();
    for (int i = 0; i < waiting; i++)
        if (redisAsyncFormattedCommand(r.ac, reply_cb, &r, cmd_ping, sizeof(cmd_ping) - 1) !=
            REDIS_OK)
            abort();
    ev_run(loop, EVRUN_NOWAIT); /* the commands go out */

    const uint8_t *body = data + 1;
    size_t len = size - 1, cut = data[0] % (len + 1);
    size_t reps = (data[0] & 4) ? (REDISLINK_MAX_HELD + 16384) / len + 2 : 1;
    peer_send(&r, sfd, body, cut);
    peer_send(&r, sfd, body + cut, len - cut);
    if (reps > 1) {
        /* in one buffer, so the link reads full 16 KiB chunks as it would in the agent */
        uint8_t *more = xmalloc((reps - 1) * len);
        for (size_t i = 0; i < reps - 1; i++)
            memcpy(more + i * len, body, len);
        peer_send(&r, sfd, more, (reps - 1) * len);
        free(more);
    }
    shutdown(sfd, SHUT_WR);

    /* EOF, if nothing closed the link before: hiredis frees it. */
    for (int spins = 0; r.ac != NULL; spins++) {
        struct pollfd pfd = {.fd = r.ac->c.fd, .events = POLLIN};
        if (spins > 1000)
            abort(); /* the link must end: refused, in error, or at EOF */
        poll(&pfd, 1, 10);
        ev_run(loop, EVRUN_NOWAIT);
    }
    if (r.callbacks != waiting)
        abort(); /* every reply callback exactly once */
    close(sfd);
    return 0;
}
