/* fuzz_reply.c -- libFuzzer target: bytes from a Redis peer through hiredis's reader into the
 * reply classification (reply_classify_ping, reply_auth_failed, reply_parse_role), and
 * connection error texts into reply_classify_error. */
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"
#include "replyobj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reason(const char *reason, size_t len)
{
    size_t n = strnlen(reason, len);

    if (n == len)
        abort(); /* always NUL-terminated within its buffer */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)reason[i] < 0x20 || (unsigned char)reason[i] >= 0x7f)
            abort(); /* reasons are published: printable ASCII only */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char reason[HEALTH_REASON_MAX], small[9];
    redisReader *rd;
    void *reply;
    int replies = 0;

    if (size == 0)
        return 0;

    /* 1. the byte stream as hiredis parses it, in two chunks to cross a boundary */
    rd = redisReaderCreateWithFunctions(replyobj_functions()); /* a link's objects */
    size_t cut = data[0] % (size + 1);
    if (redisReaderFeed(rd, (const char *)data, cut) == REDIS_OK &&
        redisReaderFeed(rd, (const char *)data + cut, size - cut) == REDIS_OK) {
        while (replies < 64 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
            const redisReply *r = reply;
            enum probe_status st = reply_classify_ping(r, reason, sizeof(reason));
            check_reason(reason, sizeof(reason));
            if (st == PROBE_OK && reason[0] != '\0')
                abort();
            (void)reply_classify_ping(r, small, sizeof(small));
            check_reason(small, sizeof(small));
            (void)reply_auth_failed(r);
            struct role_info ri;
            int rc = reply_parse_role(r, &ri);
            if (ri.role > ROLE_SENTINEL || (rc != 0 && ri.role != ROLE_UNKNOWN))
                abort();
            if (strnlen(ri.master, sizeof(ri.master)) == sizeof(ri.master) ||
                strnlen(ri.link, sizeof(ri.link)) == sizeof(ri.link))
                abort(); /* NUL-terminated within their buffers */
            if ((ri.role != ROLE_REPLICA && (ri.master[0] || ri.link[0])) ||
                (ri.role != ROLE_MASTER && ri.replicas != 0) || ri.replicas < 0)
                abort();
            check_reason(ri.master, sizeof(ri.master));
            replyobj_free(reply);
            replies++;
        }
    }
    redisReaderFree(rd);

    /* 2. the same bytes as a connection error text */
    char *errstr = malloc(size);
    memcpy(errstr, data + 1, size - 1);
    errstr[size - 1] = '\0';
    int err = data[0] % 8; /* REDIS_ERR_IO .. REDIS_ERR_OTHER and beyond */
    enum probe_status st = reply_classify_error(err, errstr, reason, sizeof(reason));
    check_reason(reason, sizeof(reason));
    if (st == PROBE_OK || st == PROBE_TIMEOUT || reason[0] == '\0')
        abort();
    (void)reply_classify_error(err, errstr, small, sizeof(small));
    check_reason(small, sizeof(small));
    (void)reply_classify_error(err, NULL, reason, sizeof(reason));
    free(errstr);
    (void)reply_classify_ping(NULL, reason, sizeof(reason));
    return 0;
}
