/* test_reply.c -- classification of Redis replies and connection errors, with real RESP parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "reply.h"
#include "replyobj.h"

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

/* Parses RESP as ROLE's reply; checks the return code WANT_RC and the role; OUT gets it all. */
static void
check_role(const char *resp, int want_rc, enum inst_role want, struct role_info *out)
{
    redisReply *r = parse(resp);
    struct role_info scratch;

    if (out == NULL)
        out = &scratch;
    memset(out, 'x', sizeof(*out)); /* every field must be written */
    assert_int_equal(reply_parse_role(r, out), want_rc);
    assert_int_equal(out->role, want);
    if (want != ROLE_REPLICA) {
        assert_string_equal(out->master, "");
        assert_string_equal(out->link, "");
    }
    if (want != ROLE_MASTER)
        assert_int_equal(out->replicas, 0);
    freeReplyObject(r);
}

static void
role_replies(void **state)
{
    (void)state;
    struct role_info ri;

    check_role("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n", 0, ROLE_MASTER, &ri);
    assert_int_equal(ri.replicas, 0);
    check_role("*3\r\n$6\r\nmaster\r\n:10\r\n*2\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"
               "$2\r\n10\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6381\r\n$2\r\n10\r\n",
               0, ROLE_MASTER, &ri);
    assert_int_equal(ri.replicas, 2);
    check_role("*2\r\n$8\r\nsentinel\r\n*0\r\n", 0, ROLE_SENTINEL, NULL);
    /* a role of another server (KeyDB): a form known, a role not */
    check_role(
        "*5\r\n$14\r\nactive-replica\r\n$8\r\n10.0.0.1\r\n:6380\r\n$9\r\nconnected\r\n:1\r\n", 0,
        ROLE_UNKNOWN, NULL);
    check_role("*1\r\n$7\r\nunknown\r\n", 0, ROLE_UNKNOWN, NULL);
    /* garbage */
    check_role("*0\r\n", -1, ROLE_UNKNOWN, NULL);
    check_role("*1\r\n:1\r\n", -1, ROLE_UNKNOWN, NULL);
    check_role(":42\r\n", -1, ROLE_UNKNOWN, NULL);
    check_role("$6\r\nmaster\r\n", -1, ROLE_UNKNOWN, NULL);
    check_role("*3\r\n*1\r\n$6\r\nmaster\r\n:0\r\n*0\r\n", -1, ROLE_UNKNOWN, NULL);
    check_role("*2\r\n$6\r\nmaster\r\n:0\r\n", -1, ROLE_UNKNOWN, NULL);
    check_role("*3\r\n$6\r\nmaster\r\n:0\r\n:0\r\n", -1, ROLE_UNKNOWN, NULL);
    /* errors: NOPERM is told apart */
    check_role("-NOPERM this user has no permissions to run the 'role' command\r\n",
               REPLY_ROLE_NOPERM, ROLE_UNKNOWN, NULL);
    check_role("-NOPERMISSION\r\n", -1, ROLE_UNKNOWN, NULL);
    check_role("-ERR unknown command 'ROLE'\r\n", -1, ROLE_UNKNOWN, NULL);
    check_role("-LOADING Redis is loading the dataset in memory\r\n", -1, ROLE_UNKNOWN, NULL);

    struct role_info none;
    memset(&none, 'x', sizeof(none));
    assert_int_equal(reply_parse_role(NULL, &none), -1);
    assert_int_equal(none.role, ROLE_UNKNOWN);
    assert_string_equal(none.master, "");
}

static void
role_replica_fields(void **state)
{
    (void)state;
    static const char *const links[] = {"connected", "connect", "connecting",
                                        "handshake", "sync",    "none"};
    struct role_info ri;
    char resp[256];

    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        snprintf(resp, sizeof(resp),
                 "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$%zu\r\n%s\r\n:-1\r\n",
                 strlen(links[i]), links[i]);
        check_role(resp, 0, ROLE_REPLICA, &ri);
        assert_string_equal(ri.master, "127.0.0.1:6379");
        assert_string_equal(ri.link, links[i]);
        assert_int_equal(ri.replicas, 0);
    }
    /* a host name, an IPv6 literal (bracketed), "replica" as the name */
    check_role("*5\r\n$7\r\nreplica\r\n$12\r\nredis-a.prod\r\n:7000\r\n$4\r\nsync\r\n:0\r\n", 0,
               ROLE_REPLICA, &ri);
    assert_string_equal(ri.master, "redis-a.prod:7000");
    check_role("*5\r\n$5\r\nslave\r\n$3\r\n::1\r\n:6379\r\n$9\r\nconnected\r\n:0\r\n", 0,
               ROLE_REPLICA, &ri);
    assert_string_equal(ri.master, "[::1]:6379");
    /* a longest host name fits its buffer */
    char host[256];
    memset(host, 'h', 255);
    host[255] = '\0';
    char big[512];
    snprintf(big, sizeof(big),
             "*5\r\n$5\r\nslave\r\n$255\r\n%s\r\n:65535\r\n$9\r\nconnected\r\n:0\r\n", host);
    check_role(big, 0, ROLE_REPLICA, &ri);
    assert_int_equal(strlen(ri.master), 255 + 6);
    /* malformed replicas: unknown, never a half-filled struct */
    check_role("*5\r\n$5\r\nslave\r\n$0\r\n\r\n:6379\r\n$9\r\nconnected\r\n:0\r\n", -1,
               ROLE_UNKNOWN, NULL);
    check_role("*5\r\n$5\r\nslave\r\n$3\r\na b\r\n:6379\r\n$9\r\nconnected\r\n:0\r\n", -1,
               ROLE_UNKNOWN, NULL);
    check_role("*5\r\n$5\r\nslave\r\n$1\r\nh\r\n$4\r\n6379\r\n$9\r\nconnected\r\n:0\r\n", -1,
               ROLE_UNKNOWN, NULL);
    check_role("*5\r\n$5\r\nslave\r\n$1\r\nh\r\n:70000\r\n$9\r\nconnected\r\n:0\r\n", -1,
               ROLE_UNKNOWN, NULL);
    check_role("*5\r\n$5\r\nslave\r\n$1\r\nh\r\n:1\r\n$9\r\nCONNECTED\r\n:0\r\n", -1, ROLE_UNKNOWN,
               NULL);
    check_role("*5\r\n$5\r\nslave\r\n$1\r\nh\r\n:1\r\n$16\r\nconnectedconnect\r\n:0\r\n", -1,
               ROLE_UNKNOWN, NULL);
    check_role("*3\r\n$5\r\nslave\r\n$1\r\nh\r\n:1\r\n", -1, ROLE_UNKNOWN, NULL);
    snprintf(big, sizeof(big), "*5\r\n$5\r\nslave\r\n$256\r\n%sh\r\n:1\r\n$4\r\nsync\r\n:0\r\n",
             host);
    check_role(big, -1, ROLE_UNKNOWN, NULL);
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

    /* the agent's own faults are told apart: no verdict on the Redis */
    static const char *const own[] = {
        "Can't create socket: Too many open files",
        "Can't create socket: Too many open files in system",
        "Cannot allocate memory",
        "Can't bind socket: No buffer space available",
    };
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        assert_int_equal(reply_classify_error(REDIS_ERR_IO, own[i], got, sizeof(got)),
                         PROBE_AGENT_ERROR);
        assert_non_null(strstr(got, "agent error: "));
    }
    /* the same words from elsewhere than the kernel's errno are not */
    assert_int_equal(reply_classify_error(REDIS_ERR_OTHER, "Too many open files", got, sizeof(got)),
                     PROBE_FAILED);
    assert_int_equal(
        reply_classify_error(REDIS_ERR_IO, "Too many open files, said the peer", got, sizeof(got)),
        PROBE_FAILED);
}

/* The class of a reply to PING, as the agent classifies it first. */
static enum probe_class
ping_class(const char *resp)
{
    char reason[HEALTH_REASON_MAX];
    redisReply *r = parse(resp);
    enum probe_status st = reply_classify_ping(r, reason, sizeof(reason));

    freeReplyObject(r);
    assert_int_not_equal(st, PROBE_OK);
    return reply_reason_class(st, reason);
}

/* The class of a hiredis context error, as the agent classifies it first. */
static enum probe_class
error_class(int err, const char *errstr)
{
    char reason[HEALTH_REASON_MAX];
    enum probe_status st = reply_classify_error(err, errstr, reason, sizeof(reason));

    assert_int_not_equal(st, PROBE_AGENT_ERROR);
    return reply_reason_class(st, reason);
}

/* Every reason the classifiers and the probe module write falls in the class it names. */
static void
reason_classes(void **state)
{
    (void)state;
    assert_int_equal(ping_class("-LOADING Redis is loading\r\n"), PROBE_CLASS_LOADING);
    assert_int_equal(ping_class("-BUSY Redis is busy\r\n"), PROBE_CLASS_BUSY);
    assert_int_equal(ping_class("-MASTERDOWN Link with MASTER is down\r\n"),
                     PROBE_CLASS_MASTERDOWN);
    assert_int_equal(ping_class("-NOAUTH Authentication required.\r\n"), PROBE_CLASS_AUTH);
    assert_int_equal(ping_class("-WRONGPASS invalid\r\n"), PROBE_CLASS_AUTH);
    assert_int_equal(ping_class("-NOPERM no\r\n"), PROBE_CLASS_AUTH);
    assert_int_equal(ping_class("-ERR unknown command\r\n"), PROBE_CLASS_ERROR);
    assert_int_equal(ping_class("-LOADINGX odd\r\n"), PROBE_CLASS_ERROR);
    assert_int_equal(ping_class("-connection refused\r\n"), PROBE_CLASS_ERROR);
    assert_int_equal(ping_class(":1\r\n"), PROBE_CLASS_PROTOCOL);

    assert_int_equal(error_class(REDIS_ERR_IO, "Connection refused"), PROBE_CLASS_REFUSED);
    assert_int_equal(error_class(REDIS_ERR_IO, "No such file or directory"), PROBE_CLASS_REFUSED);
    assert_int_equal(error_class(REDIS_ERR_PROTOCOL, "Protocol error"), PROBE_CLASS_PROTOCOL);
    assert_int_equal(error_class(REDIS_ERR_OOM, "Out of memory"), PROBE_CLASS_PROTOCOL);
    assert_int_equal(error_class(REDIS_ERR_EOF, "Server closed the connection"),
                     PROBE_CLASS_CONNECTION);
    assert_int_equal(error_class(REDIS_ERR_IO, "Connection reset by peer"), PROBE_CLASS_CONNECTION);
    assert_int_equal(error_class(REDIS_ERR_IO, "Network is unreachable"), PROBE_CLASS_CONNECTION);
    assert_int_equal(error_class(REDIS_ERR_IO, NULL), PROBE_CLASS_CONNECTION);

    /* what the probe module writes itself */
    assert_int_equal(reply_reason_class(PROBE_TIMEOUT, "timeout"), PROBE_CLASS_TIMEOUT);
    assert_int_equal(reply_reason_class(PROBE_CONCLUSIVE, "connection refused"),
                     PROBE_CLASS_REFUSED);
    assert_int_equal(reply_reason_class(PROBE_CONCLUSIVE, "no such socket"), PROBE_CLASS_REFUSED);
    assert_int_equal(reply_reason_class(PROBE_FAILED, "auth failed"), PROBE_CLASS_AUTH);
    assert_int_equal(reply_reason_class(PROBE_FAILED, "connection lost"), PROBE_CLASS_CONNECTION);
    /* the status decides before the words */
    assert_int_equal(reply_reason_class(PROBE_TIMEOUT, "anything"), PROBE_CLASS_TIMEOUT);
    assert_int_equal(reply_reason_class(PROBE_FAILED, ""), PROBE_CLASS_CONNECTION);

    /* the label values: one word each, distinct */
    for (int i = 0; i < PROBE_CLASSES; i++) {
        const char *n = reply_class_name((enum probe_class)i);
        assert_non_null(n);
        assert_true(strlen(n) > 0 && strspn(n, "abcdefghijklmnopqrstuvwxyz") == strlen(n));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(n, reply_class_name((enum probe_class)j));
    }
    assert_string_equal(reply_class_name(PROBE_CLASS_REFUSED), "refused");
    assert_string_equal(reply_class_name(PROBE_CLASS_MASTERDOWN), "masterdown");
}

static void
huge_arrays_are_refused(void **state)
{
    (void)state;
    redisReader *rd = redisReaderCreateWithFunctions(replyobj_functions()); /* as a link's */
    void *reply = NULL;
    const char huge[] = "*1222222222\r\n";
    char reason[HEALTH_REASON_MAX];

    redisReaderFeed(rd, huge, sizeof(huge) - 1);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_ERR);
    assert_null(reply);
    assert_int_equal(rd->err, REDIS_ERR_OOM);
    assert_int_equal(reply_classify_error(rd->err, rd->errstr, reason, sizeof(reason)),
                     PROBE_FAILED);
    assert_string_equal(reason, "protocol error: reply too large");
    redisReaderFree(rd);

    /* a ROLE reply of a master with a few replicas still parses */
    rd = redisReaderCreateWithFunctions(replyobj_functions());
    const char role[] = "*3\r\n$6\r\nmaster\r\n:10\r\n*2\r\n*3\r\n$9\r\n127.0.0.1\r\n"
                        "$4\r\n6380\r\n$2\r\n10\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6381\r\n"
                        "$2\r\n10\r\n";
    redisReaderFeed(rd, role, sizeof(role) - 1);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    struct role_info ri;
    assert_int_equal(reply_parse_role(reply, &ri), 0);
    assert_int_equal(ri.role, ROLE_MASTER);
    assert_int_equal(ri.replicas, 2);
    replyobj_free(reply);
    redisReaderFree(rd);
    replyobj_drain();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ping_replies),
        cmocka_unit_test(long_error_is_cut),
        cmocka_unit_test(auth_replies),
        cmocka_unit_test(role_replies),
        cmocka_unit_test(role_replica_fields),
        cmocka_unit_test(connection_errors),
        cmocka_unit_test(huge_arrays_are_refused),
        cmocka_unit_test(reason_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
