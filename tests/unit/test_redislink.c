/* test_redislink.c -- unit tests of the bounded read path: a hiredis async link on a real libev
 * loop, with the test playing Redis on the accepted end of a unix socket (hiredis 0.14 has no
 * async connect from an fd, so a socketpair cannot stand in). */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "redislink.h"
#include "reply.h"
#include "testutil.h"
#include "util.h"

static const char cmd_ping[] = "*1\r\n$4\r\nPING\r\n";

/* The fixture: a loop, a listener, one link and what its callbacks saw. */
struct fix {
    struct ev_loop *loop;
    char dir[64], path[96];
    int lfd, sfd; /* listener, and the server's end of the link */
    redisAsyncContext *ac;
    int replies;          /* reply callbacks run with a reply */
    int nulls;            /* reply callbacks run with NULL (the link was freed) */
    int disconnects;      /* the disconnect callback ran */
    int err;              /* c->err when the link went away */
    char errstr[128];     /* c->errstr then */
    char last[64];        /* the last reply's text (status, error or string), or its type */
    size_t last_len;      /* the last reply's string length, or elements */
    int free_in_callback; /* the next reply callback calls redisAsyncFree */
    char seq[32];         /* a letter per reply, in order: 'A'rray, 'S'tatus, 'O'ther */
};

static void
note_error(struct fix *f, const redisAsyncContext *ac)
{
    f->err = ac->c.err;
    util_strlcpy(f->errstr, ac->c.errstr, sizeof(f->errstr));
}

static void
reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct fix *f = privdata;
    const redisReply *r = reply;

    if (r == NULL) {
        f->nulls++;
        note_error(f, ac);
        f->ac = NULL;
        return;
    }
    f->replies++;
    size_t n = strlen(f->seq);
    if (n + 1 < sizeof(f->seq))
        f->seq[n] = r->type == REDIS_REPLY_ARRAY ? 'A' : r->type == REDIS_REPLY_STATUS ? 'S' : 'O';
    if (r->type == REDIS_REPLY_ARRAY) {
        snprintf(f->last, sizeof(f->last), "array");
        f->last_len = r->elements;
    } else if (r->str != NULL) {
        snprintf(f->last, sizeof(f->last), "%.*s", (int)(r->len < 63 ? r->len : 63), r->str);
        f->last_len = r->len;
    } else {
        snprintf(f->last, sizeof(f->last), "type %d", r->type);
    }
    if (f->free_in_callback) {
        f->free_in_callback = 0;
        f->ac = NULL;
        redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
    }
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct fix *f = ac->data;

    (void)status;
    f->disconnects++;
    if (f->err == 0)
        note_error(f, ac);
    f->ac = NULL;
}

static int
setup(void **state)
{
    struct fix *f = xcalloc(1, sizeof(*f));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    f->loop = ev_loop_new(EVFLAG_AUTO);
    tu_tmpdir(f->dir, sizeof(f->dir), "sa-redislink");
    snprintf(f->path, sizeof(f->path), "%s/redis.sock", f->dir);
    util_strlcpy(sun.sun_path, f->path, sizeof(sun.sun_path));
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(f->lfd, 8), 0);

    f->ac = redisAsyncConnectUnix(f->path);
    assert_non_null(f->ac);
    assert_int_equal(f->ac->err, 0);
    assert_int_equal(redislink_attach(f->loop, f->ac), 0);
    assert_int_equal(redislink_attach(f->loop, f->ac), -1); /* once only */
    f->ac->data = f;
    redisAsyncSetDisconnectCallback(f->ac, disconnect_cb);
    f->sfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    assert_true(f->sfd >= 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    if (f->ac != NULL)
        redisAsyncFree(f->ac);
    if (f->sfd >= 0)
        close(f->sfd);
    close(f->lfd);
    unlink(f->path);
    rmdir(f->dir);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

/* Reads exactly LEN bytes at the server end (the loop running meanwhile) and compares them. */
static void
expect_bytes(struct fix *f, const char *want, size_t len)
{
    static char buf[1 << 21];
    size_t got = 0;
    double end = tu_now_s() + TU_DEADLINE_S;

    assert_true(len <= sizeof(buf));
    while (got < len) {
        ssize_t r = recv(f->sfd, buf + got, len - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (tu_now_s() > end)
            fail_msg("the server read %zu of %zu bytes", got, len);
        else
            tu_spin(f->loop, f->sfd, POLLIN);
    }
    assert_memory_equal(buf, want, len);
    assert_int_equal(recv(f->sfd, buf, 1, MSG_DONTWAIT), -1); /* and nothing more */
}

/* Queues N PINGs and runs the loop until the server end has read them all. */
static void
send_pings(struct fix *f, int n)
{
    static char want[64 * (sizeof(cmd_ping) - 1)];
    size_t len = (size_t)n * (sizeof(cmd_ping) - 1);

    assert_true(len <= sizeof(want));
    for (int i = 0; i < n; i++) {
        memcpy(want + (size_t)i * (sizeof(cmd_ping) - 1), cmd_ping, sizeof(cmd_ping) - 1);
        assert_int_equal(
            redisAsyncFormattedCommand(f->ac, reply_cb, f, cmd_ping, sizeof(cmd_ping) - 1),
            REDIS_OK);
    }
    expect_bytes(f, want, len);
}

static void
send_str(struct fix *f, const char *s)
{
    tu_send_all(f->loop, f->sfd, s, strlen(s));
}

/* Bytes sent to the link that it has not read yet. */
static int
unread(const struct fix *f)
{
    int n = 0;

    if (f->ac == NULL)
        return 0;
    assert_int_equal(ioctl(f->ac->c.fd, FIONREAD, &n), 0);
    return n;
}

/* Runs the loop until the link has read everything sent, or went away. */
static void
drain(struct fix *f)
{
    double end = tu_now_s() + TU_DEADLINE_S;

    do {
        tu_spin(f->loop, -1, 0);
        if (tu_now_s() > end)
            fail_msg("the link left %d bytes unread", unread(f));
    } while (unread(f) > 0);
    tu_spin(f->loop, -1, 0);
}

/* Runs the loop until the link is gone. */
static void
wait_gone(struct fix *f)
{
    double end = tu_now_s() + TU_DEADLINE_S;

    while (f->ac != NULL) {
        if (tu_now_s() > end)
            fail_msg("the link is still open");
        tu_spin(f->loop, -1, 0);
        struct pollfd p = {.fd = f->ac != NULL ? f->ac->c.fd : -1, .events = POLLIN};
        poll(&p, 1, 1);
    }
}

static void
assert_too_large(const struct fix *f)
{
    char reason[96];

    assert_int_equal(f->err, REDIS_ERR_OOM);
    assert_int_equal(reply_classify_error(f->err, f->errstr, reason, sizeof(reason)), PROBE_FAILED);
    assert_string_equal(reason, "protocol error: reply too large");
}

/* Ordinary replies pass, the link stays open, and a 60 KB bulk is under the bound. */
static void
test_replies_pass(void **state)
{
    struct fix *f = *state;
    static char big[60000 + 32];

    send_pings(f, 3);
    send_str(f, "+PONG\r\n*2\r\n$6\r\nmaster\r\n:0\r\n");
    drain(f);
    assert_int_equal(f->replies, 2);
    assert_string_equal(f->last, "array");
    assert_int_equal(f->last_len, 2);
    int n = snprintf(big, sizeof(big), "$60000\r\n");
    memset(big + n, 'v', 60000);
    memcpy(big + n + 60000, "\r\n", 2);
    tu_send_all(f->loop, f->sfd, big, (size_t)n + 60002);
    drain(f);
    assert_int_equal(f->replies, 3);
    assert_int_equal(f->last_len, 60000);
    assert_non_null(f->ac);
    assert_int_equal(f->disconnects + f->nulls, 0);
}

/* A bulk announced over the bound is refused as soon as its header is read. */
static void
test_announced_bulk_refused_at_header(void **state)
{
    struct fix *f = *state;

    send_pings(f, 1);
    send_str(f, "$2000000000\r\nxx");
    wait_gone(f);
    assert_int_equal(f->nulls, 1);
    assert_too_large(f);
    assert_string_equal(f->errstr, "reply too large");
}

/* A line that never ends: open at 60 KiB, closed within one read past 64 KiB. */
static void
test_endless_line_cut_past_bound(void **state)
{
    struct fix *f = *state;
    static char chunk[4096];

    memset(chunk, 'x', sizeof(chunk));
    chunk[0] = '+';
    send_pings(f, 1);
    for (int i = 0; i < 15; i++) /* 60 KiB */
        tu_send_all(f->loop, f->sfd, chunk, sizeof(chunk));
    chunk[0] = 'x';
    drain(f);
    assert_non_null(f->ac);
    tu_send_all(f->loop, f->sfd, chunk, sizeof(chunk)); /* 64 KiB: still not over */
    drain(f);
    assert_non_null(f->ac);
    tu_send_all(f->loop, f->sfd, chunk, 8); /* a few bytes over */
    wait_gone(f);
    assert_int_equal(f->nulls, 1);
    assert_too_large(f);
}

/* Elements each under the bound, their sum over it: the objects built so far count. */
static void
test_array_sum_refused(void **state)
{
    struct fix *f = *state;
    static char buf[40000 + 32];

    send_pings(f, 1);
    send_str(f, "*3\r\n");
    int n = snprintf(buf, sizeof(buf), "$40000\r\n");
    memset(buf + n, 'e', 40000);
    memcpy(buf + n + 40000, "\r\n", 2);
    tu_send_all(f->loop, f->sfd, buf, (size_t)n + 40002);
    drain(f);
    assert_non_null(f->ac);
    tu_send_all(f->loop, f->sfd, buf, (size_t)n + 40002);
    wait_gone(f);
    assert_int_equal(f->replies, 0);
    assert_too_large(f);
}

/* Many tiny elements: their reply objects count, not just their bytes on the wire. */
static void
test_tiny_elements_refused(void **state)
{
    struct fix *f = *state;
    static char buf[4 * 4096];

    send_pings(f, 1);
    send_str(f, "*4096\r\n");
    for (size_t i = 0; i < sizeof(buf); i += 4)
        memcpy(buf + i, ":1\r\n", 4);
    tu_send_all(f->loop, f->sfd, buf, sizeof(buf)); /* 4096 x 48-byte objects > 64 KiB */
    wait_gone(f);
    assert_int_equal(f->replies, 0);
    assert_too_large(f);
}

/* More replies than commands: a protocol error, not hiredis's assert. */
static void
test_unsolicited_reply_closes_link(void **state)
{
    struct fix *f = *state;
    char reason[96];

    send_pings(f, 1);
    send_str(f, "+PONG\r\n+PONG\r\n+PONG\r\n");
    wait_gone(f);
    assert_int_equal(f->replies, 1);
    assert_string_equal(f->last, "PONG");
    assert_int_equal(f->disconnects, 1);
    assert_int_equal(f->err, REDIS_ERR_PROTOCOL);
    assert_string_equal(f->errstr, "unsolicited reply");
    reply_classify_error(f->err, f->errstr, reason, sizeof(reason));
    assert_string_equal(reason, "protocol error");
}

/* An unsolicited error stays hiredis's: the link closes with the error's text. */
static void
test_unsolicited_error_is_hiredis(void **state)
{
    struct fix *f = *state;

    send_pings(f, 1);
    send_str(f, "+PONG\r\n-ERR max number of clients reached\r\n");
    wait_gone(f);
    assert_int_equal(f->replies, 1);
    assert_int_equal(f->err, REDIS_ERR_OTHER);
    assert_string_equal(f->errstr, "ERR max number of clients reached");
}

/* Nesting deeper than hiredis's 7 levels is its protocol error. */
static void
test_deep_nesting_protocol_error(void **state)
{
    struct fix *f = *state;
    char buf[4 * 100];

    send_pings(f, 1);
    for (int i = 0; i < 100; i++)
        memcpy(buf + 4 * i, "*1\r\n", 4);
    tu_send_all(f->loop, f->sfd, buf, sizeof(buf));
    wait_gone(f);
    assert_int_equal(f->nulls, 1);
    assert_int_equal(f->err, REDIS_ERR_PROTOCOL);
}

/* A callback that frees its link during our read, and a peer's EOF: no use after free. */
static void
test_free_in_callback_and_eof(void **state)
{
    struct fix *f = *state;

    send_pings(f, 2);
    f->free_in_callback = 1;
    send_str(f, "+PONG\r\n");
    wait_gone(f);
    assert_int_equal(f->replies, 1);
    assert_int_equal(f->nulls, 1); /* the second PING's callback, as hiredis frees */

    /* a second link, closed by its peer */
    close(f->sfd);
    f->ac = redisAsyncConnectUnix(f->path);
    assert_int_equal(redislink_attach(f->loop, f->ac), 0);
    f->ac->data = f;
    redisAsyncSetDisconnectCallback(f->ac, disconnect_cb);
    f->sfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    assert_true(f->sfd >= 0);
    f->err = 0;
    send_pings(f, 1);
    shutdown(f->sfd, SHUT_WR);
    wait_gone(f);
    assert_int_equal(f->nulls, 2);
    assert_int_equal(f->err, REDIS_ERR_EOF);
}

/*
 * Steady state: PING after PING on one link allocates nothing that stays. The reader's buffer
 * grows and is compacted in a cycle (every 1 KiB parsed), so the peak heap of two windows of
 * rounds, each several cycles long, is compared, not two single readings.
 */
static void
test_steady_state_heap(void **state)
{
    struct fix *f = *state;
    size_t peak[3] = {0};

    for (int i = 0; i < 900; i++) {
        send_pings(f, 1);
        send_str(f, "+PONG\r\n");
        drain(f);
        size_t h = mallinfo2().uordblks;
        if (h > peak[i / 300])
            peak[i / 300] = h;
    }
    assert_int_equal(f->replies, 900);
    assert_int_equal(peak[2], peak[1]);
}

/* ---------------------------------------------------------------- redislink_send() */

static const char cmd_probe[] = "*1\r\n$4\r\nROLE\r\n*1\r\n$4\r\nPING\r\n";
static redisCallbackFn *const two_cbs[] = {reply_cb, reply_cb};

/* One PING and its PONG: hiredis has then seen the connect settle (REDIS_CONNECTED). */
static void
settle(struct fix *f)
{
    send_pings(f, 1);
    send_str(f, "+PONG\r\n");
    drain(f);
    assert_true(f->ac->c.flags & REDIS_CONNECTED);
    f->replies = 0;
    f->seq[0] = '\0';
}

/* On a link in use the bytes go out within the call, and the replies reach the callbacks in order.
 */
static void
test_send_direct_in_order(void **state)
{
    struct fix *f = *state;
    char buf[64];

    settle(f);
    assert_int_equal(redislink_send(f->ac, cmd_probe, sizeof(cmd_probe) - 1, two_cbs, 2, f),
                     REDIS_OK);
    assert_int_equal(sdslen(f->ac->c.obuf), 0);
    assert_int_equal(recv(f->sfd, buf, sizeof(buf), MSG_DONTWAIT), sizeof(cmd_probe) - 1);
    assert_memory_equal(buf, cmd_probe, sizeof(cmd_probe) - 1);
    send_str(f, "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n+PONG\r\n");
    drain(f);
    assert_int_equal(f->replies, 2);
    assert_string_equal(f->seq, "AS");
    assert_string_equal(f->last, "PONG");
}

/* Before the connect has settled the bytes wait in hiredis's buffer, in order behind AUTH's. */
static void
test_send_before_connect(void **state)
{
    struct fix *f = *state;
    static const char auth[] = "*2\r\n$4\r\nAUTH\r\n$1\r\nx\r\n";
    char want[128];

    assert_false(f->ac->c.flags & REDIS_CONNECTED);
    assert_int_equal(redisAsyncFormattedCommand(f->ac, reply_cb, f, auth, sizeof(auth) - 1),
                     REDIS_OK);
    assert_int_equal(redislink_send(f->ac, cmd_probe, sizeof(cmd_probe) - 1, two_cbs, 2, f),
                     REDIS_OK);
    assert_int_equal(sdslen(f->ac->c.obuf), sizeof(auth) - 1 + sizeof(cmd_probe) - 1);
    memcpy(want, auth, sizeof(auth) - 1);
    memcpy(want + sizeof(auth) - 1, cmd_probe, sizeof(cmd_probe) - 1);
    expect_bytes(f, want, sizeof(auth) - 1 + sizeof(cmd_probe) - 1);
    send_str(f, "+OK\r\n*1\r\n$8\r\nsentinel\r\n+PONG\r\n");
    drain(f);
    assert_string_equal(f->seq, "SAS");
}

/* What the socket does not take now is queued and written later, in order. */
static void
test_send_partial_queued(void **state)
{
    struct fix *f = *state;
    enum { N = 100000 };
    static char many[N * (sizeof(cmd_ping) - 1)];
    static redisCallbackFn *cbs[N];

    settle(f);
    for (int i = 0; i < N; i++) {
        memcpy(many + (size_t)i * (sizeof(cmd_ping) - 1), cmd_ping, sizeof(cmd_ping) - 1);
        cbs[i] = reply_cb;
    }
    assert_int_equal(redislink_send(f->ac, many, sizeof(many), cbs, N, f), REDIS_OK);
    assert_true(sdslen(f->ac->c.obuf) > 0); /* more than a socket buffer: the rest waits */
    assert_true(sdslen(f->ac->c.obuf) < sizeof(many));
    expect_bytes(f, many, sizeof(many));
}

/* A write error is hiredis's to report, from the loop: the callbacks get NULL and the error. */
static void
test_send_error_from_loop(void **state)
{
    struct fix *f = *state;

    settle(f);
    close(f->sfd);
    f->sfd = -1;
    assert_int_equal(redislink_send(f->ac, cmd_probe, sizeof(cmd_probe) - 1, two_cbs, 2, f),
                     REDIS_OK);
    assert_int_equal(f->nulls, 0); /* not inside the call */
    wait_gone(f);
    assert_int_equal(f->nulls, 2);
    assert_int_equal(f->err, REDIS_ERR_IO);
    assert_string_equal(f->errstr, strerror(EPIPE));
}

/* A link that is closing takes nothing. */
static void
test_send_closing(void **state)
{
    struct fix *f = *state;

    settle(f);
    send_pings(f, 1);
    redisAsyncDisconnect(f->ac); /* waits for the PING's reply */
    assert_int_equal(redislink_send(f->ac, cmd_probe, sizeof(cmd_probe) - 1, two_cbs, 2, f),
                     REDIS_ERR);
    send_str(f, "+PONG\r\n");
    wait_gone(f);
    assert_int_equal(f->replies, 1);
    assert_int_equal(f->nulls, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replies_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_announced_bulk_refused_at_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endless_line_cut_past_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_sum_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tiny_elements_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsolicited_reply_closes_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsolicited_error_is_hiredis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_nesting_protocol_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_callback_and_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steady_state_heap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_direct_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_before_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_partial_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_error_from_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_closing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
