/* test_replyobj.c -- the reply objects kept for reuse: hiredis's reader builds the same trees
 * with them as with its own, and the free list stays bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "replyobj.h"
#include "reply.h"

/* Parses RESP bytes (LEN of them) with a reader building from the free list. */
static redisReply *
parse_len(const char *resp, size_t len)
{
    redisReader *rd = redisReaderCreateWithFunctions(replyobj_functions());
    void *reply = NULL;

    redisReaderFeed(rd, resp, len);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

static redisReply *
parse(const char *resp)
{
    return parse_len(resp, strlen(resp));
}

static int
teardown(void **state)
{
    (void)state;
    replyobj_drain();
    return 0;
}

/* The probe's replies: the same trees as hiredis's, which reply.c reads. */
static void
test_probe_replies(void **state)
{
    struct role_info ri;
    redisReply *r;

    (void)state;
    r = parse("+PONG\r\n");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_int_equal(r->len, 4);
    assert_string_equal(r->str, "PONG");
    replyobj_free(r);

    r = parse("*5\r\n$5\r\nslave\r\n$8\r\n10.0.0.7\r\n:6379\r\n$9\r\nconnected\r\n:1234\r\n");
    assert_int_equal(reply_parse_role(r, &ri), 0);
    assert_int_equal(ri.role, ROLE_REPLICA);
    assert_string_equal(ri.master, "10.0.0.7:6379");
    assert_string_equal(ri.link, "connected");
    assert_int_equal(r->element[4]->integer, 1234);
    replyobj_free(r);

    r = parse(
        "*3\r\n$6\r\nmaster\r\n:99\r\n*2\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n$2\r\n99\r\n"
        "*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6381\r\n$2\r\n98\r\n");
    assert_int_equal(reply_parse_role(r, &ri), 0);
    assert_int_equal(ri.role, ROLE_MASTER);
    assert_int_equal(ri.replicas, 2);
    assert_string_equal(r->element[2]->element[1]->element[1]->str, "6381");
    replyobj_free(r);

    r = parse("*2\r\n$-1\r\n*-1\r\n");
    assert_int_equal(r->element[0]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[1]->type, REDIS_REPLY_NIL);
    replyobj_free(r);
}

/* Strings and arrays too large for an object's own room get their own allocation. */
static void
test_large_string_and_array(void **state)
{
    char resp[8192], big[1000];
    size_t n = 0;
    redisReply *r;

    (void)state;
    memset(big, 'x', sizeof(big));
    n += (size_t)snprintf(resp + n, sizeof(resp) - n, "*40\r\n$%zu\r\n", sizeof(big));
    memcpy(resp + n, big, sizeof(big));
    n += sizeof(big);
    n += (size_t)snprintf(resp + n, sizeof(resp) - n, "\r\n");
    for (int i = 1; i < 40; i++)
        n += (size_t)snprintf(resp + n, sizeof(resp) - n, ":%d\r\n", i);
    r = parse_len(resp, n);
    assert_int_equal(r->elements, 40);
    assert_int_equal(r->element[0]->len, sizeof(big));
    assert_memory_equal(r->element[0]->str, big, sizeof(big));
    assert_int_equal(r->element[0]->str[sizeof(big)], '\0');
    for (int i = 1; i < 40; i++)
        assert_int_equal(r->element[i]->integer, i);
    replyobj_free(r);

    /* a binary-safe bulk, with a NUL inside, as long as an object's room exactly */
    r = parse_len("$47\r\n0123456789\0"
                  "012345678901234567890123456789012345\r\n",
                  54);
    assert_int_equal(r->len, 47);
    assert_int_equal(r->str[10], '\0');
    assert_int_equal(r->str[47], '\0');
    replyobj_free(r);
}

/*
 * The objects of a reply come back to the free list and are taken from it again: had they come
 * from malloc, each round's frees would have grown the list towards REPLYOBJ_KEEP.
 */
static void
test_reuse(void **state)
{
    static const char role[] = "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n";

    (void)state;
    replyobj_free(parse(role));
    assert_int_equal(replyobj_kept(), 4);
    for (int i = 0; i < 1000; i++) {
        redisReply *r = parse(role), *p = parse("+PONG\r\n");
        replyobj_free(r);
        replyobj_free(p);
    }
    assert_int_equal(replyobj_kept(), 5); /* the most held at once: a ROLE and a PONG */
}

/* The free list keeps REPLYOBJ_KEEP objects at most; a reply of more frees the rest. */
static void
test_free_list_bounded(void **state)
{
    char resp[16384];
    size_t n = 0;
    int count = REPLYOBJ_KEEP + 100;

    (void)state;
    n += (size_t)snprintf(resp, sizeof(resp), "*%d\r\n", count);
    for (int i = 0; i < count; i++)
        n += (size_t)snprintf(resp + n, sizeof(resp) - n, ":%d\r\n", i);
    replyobj_free(parse_len(resp, n));
    assert_int_equal(replyobj_kept(), REPLYOBJ_KEEP);
    replyobj_drain();
    assert_int_equal(replyobj_kept(), 0);
}

/* A reader freed in the middle of a reply frees the part built so far onto the list. */
static void
test_partial_reply_freed(void **state)
{
    static const char part[] = "*4\r\n$6\r\nmaster\r\n:1\r\n";
    redisReader *rd = redisReaderCreateWithFunctions(replyobj_functions());
    void *reply = NULL;

    (void)state;
    redisReaderFeed(rd, part, sizeof(part) - 1);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_null(reply);
    redisReaderFree(rd);
    assert_int_equal(replyobj_kept(), 3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_probe_replies, teardown),
        cmocka_unit_test_teardown(test_large_string_and_array, teardown),
        cmocka_unit_test_teardown(test_reuse, teardown),
        cmocka_unit_test_teardown(test_free_list_bounded, teardown),
        cmocka_unit_test_teardown(test_partial_reply_freed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
