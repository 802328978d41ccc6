/* test_reply.c -- classification of Redis replies and connection errors, with real RESP parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "reply.h"

/* Parses RESP bytes with hiredis's own reader, as the agent receives them. */
static redisReply *
parse(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    redisReaderFeed(rd, resp, strlen(resp));
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

static void
check_ping(const char *resp, enum probe_status want, const char *reason)
{
    char got[HEALTH_REASON_MAX];
    redisReply *r = parse(resp);

    assert_int_equal(reply_classify_ping(r, got, sizeof(got)), want);
    assert_string_equal(got, reason);
    freeReplyObject(r);
}

static void
ping_replies(void **state)
{
    (void)state;
    check_ping("+PONG\r\n", PROBE_OK, "");
    check_ping("-LOADING Redis is loading the dataset in memory\r\n", PROBE_FAILED, "loading");
    check_ping("-BUSY Redis is busy running a script.\r\n", PROBE_FAILED, "busy");
    check_ping("-MASTERDOWN Link with MASTER is down\r\n", PROBE_FAILED, "masterdown");
    check_ping("-NOAUTH Authentication required.\r\n", PROBE_FAILED, "auth failed");
    check_ping("-WRONGPASS invalid username-password pair\r\n", PROBE_FAILED, "auth failed");
    check_ping("-ERR unknown command 'PING'\r\n", PROBE_FAILED,
               "error: ERR unknown command 'PING'");
    check_ping("-LOADINGX odd\r\n", PROBE_FAILED, "error: LOADINGX odd");
    check_ping(":1\r\n", PROBE_FAILED, "unexpected reply");
    check_ping("$4\r\nPONG\r\n", PROBE_FAILED, "unexpected reply");
    /* control bytes in an error text never reach a reason */
    check_ping("-ERR a\tb\x01\r\n", PROBE_FAILED, "error: ERR a?b?");

    char got[HEALTH_REASON_MAX];
    assert_int_equal(reply_classify_ping(NULL, got, sizeof(got)), PROBE_FAILED);
    assert_string_equal(got, "connection lost");
}

static void
long_error_is_cut(void **state)
{
    (void)state;
    char resp[600], got[HEALTH_REASON_MAX];
    memset(resp, 'x', sizeof(resp));
    memcpy(resp, "-ERR ", 5);
    strcpy(resp + 500, "\r\n");
    redisReply *r = parse(resp);
    assert_int_equal(reply_classify_ping(r, got, sizeof(got)), PROBE_FAILED);
    assert_true(strlen(got) < sizeof(got));
    assert_memory_equal(got, "error: ERR xxx", 14);
    freeReplyObject(r);
}

static void
auth_replies(void **state)
{
    (void)state;
    redisReply *ok = parse("+OK\r\n");
    redisReply *bad = parse("-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    redisReply *nopass = parse("-ERR AUTH <password> called without any password configured\r\n");
    assert_int_equal(reply_auth_failed(ok), 0);
    assert_int_equal(reply_auth_failed(bad), 1);
    assert_int_equal(reply_auth_failed(nopass), 1);
    assert_int_equal(reply_auth_failed(NULL), 0);
    freeReplyObject(ok);
    freeReplyObject(bad);
    freeReplyObject(nopass);
}

static void
check_role(const char *resp, enum inst_role want)
{
    redisReply *r = parse(resp);
    assert_int_equal(reply_parse_role(r), want);
    freeReplyObject(r);
}

static void
role_replies(void **state)
{
    (void)state;
    check_role("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n", ROLE_MASTER);
    check_role("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:0\r\n",
               ROLE_REPLICA);
    check_role("*2\r\n$8\r\nsentinel\r\n*0\r\n", ROLE_SENTINEL);
    check_role("*1\r\n$7\r\nunknown\r\n", ROLE_UNKNOWN);
    check_role("*0\r\n", ROLE_UNKNOWN);
    check_role("-NOPERM no permission\r\n", ROLE_UNKNOWN);
    check_role("*1\r\n:1\r\n", ROLE_UNKNOWN);
    assert_int_equal(reply_parse_role(NULL), ROLE_UNKNOWN);
}

static void
connection_errors(void **state)
{
    (void)state;
    char got[HEALTH_REASON_MAX];

    assert_int_equal(reply_classify_error(REDIS_ERR_IO, "Connection refused", got, sizeof(got)),
                     PROBE_CONCLUSIVE);
    assert_string_equal(got, "connection refused");
    assert_int_equal(
        reply_classify_error(REDIS_ERR_IO, "No such file or directory", got, sizeof(got)),
        PROBE_CONCLUSIVE);
    assert_string_equal(got, "no such socket");
    assert_int_equal(
        reply_classify_error(REDIS_ERR_PROTOCOL, "Protocol error, got \"H\"", got, sizeof(got)),
        PROBE_FAILED);
    assert_string_equal(got, "protocol error");
    assert_int_equal(
        reply_classify_error(REDIS_ERR_EOF, "Server closed the connection", got, sizeof(got)),
        PROBE_FAILED);
    assert_string_equal(got, "connection lost");
    assert_int_equal(reply_classify_error(REDIS_ERR_IO, "Network is unreachable", got, sizeof(got)),
                     PROBE_FAILED);
    assert_string_equal(got, "connection error: Network is unreachable");
}

static void
huge_arrays_are_refused(void **state)
{
    (void)state;
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;
    const char huge[] = "*1222222222\r\n";
    char reason[HEALTH_REASON_MAX];

    reply_bound_reader(rd);
    redisReaderFeed(rd, huge, sizeof(huge) - 1);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_ERR);
    assert_null(reply);
    assert_int_equal(rd->err, REDIS_ERR_OOM);
    assert_int_equal(reply_classify_error(rd->err, rd->errstr, reason, sizeof(reason)),
                     PROBE_FAILED);
    assert_string_equal(reason, "protocol error: reply too large");
    redisReaderFree(rd);

    /* a ROLE reply of a master with a few replicas still parses */
    rd = redisReaderCreate();
    reply_bound_reader(rd);
    const char role[] = "*3\r\n$6\r\nmaster\r\n:10\r\n*2\r\n*3\r\n$9\r\n127.0.0.1\r\n"
                        "$4\r\n6380\r\n$2\r\n10\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6381\r\n"
                        "$2\r\n10\r\n";
    redisReaderFeed(rd, role, sizeof(role) - 1);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    assert_int_equal(reply_parse_role(reply), ROLE_MASTER);
    freeReplyObject(reply);
    redisReaderFree(rd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ping_replies),      cmocka_unit_test(long_error_is_cut),
        cmocka_unit_test(auth_replies),      cmocka_unit_test(role_replies),
        cmocka_unit_test(connection_errors), cmocka_unit_test(huge_arrays_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
