/* test_sockserv.c -- unit tests of the shared stream-server machinery, on a real libev loop. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sockserv.h"
#include "testutil.h"
#include "util.h"

#define BIG_SIZE (1024 * 1024) /* the answer to "big" */

/* The fixture: a loop, a listener on an abstract unix address, and what the callbacks saw. */
struct fix {
    struct ev_loop *loop;
    struct sockaddr_un sun;
    socklen_t sunlen;
    struct sockserv *srv;
    int nsent;
    int nexpired;
};

/* The test protocol's state per client. */
struct tconn {
    char in[256];
    size_t inlen;
};

/* "q": answers "bye\n" and lingers; "big": answers BIG_SIZE bytes, then lingers; EOF: closes. */
static void
t_readable(struct sockserv_conn *c, void *ud)
{
    struct tconn *t = sockserv_data(c);
    struct sbuf *out = sockserv_out(c);
    ssize_t n;

    (void)ud;
    n = sockserv_recv(c, t->in + t->inlen, sizeof(t->in) - 1 - t->inlen);
    if (n < 0)
        return;
    if (n == 0) {
        sockserv_close(c, NULL);
        return;
    }
    t->inlen += (size_t)n;
    t->in[t->inlen] = '\0';
    if (strstr(t->in, "big") != NULL) {
        for (size_t i = 0; i < BIG_SIZE; i++)
            sbuf_add(out, "x", 1);
    } else if (strchr(t->in, 'q') != NULL) {
        sbuf_adds(out, "bye\n");
    } else {
        return;
    }
    sockserv_read_stop(c);
    if (sockserv_flush(c) == 1)
        sockserv_linger(c, "test done");
}

static void
t_sent(struct sockserv_conn *c, void *ud)
{
    struct fix *f = ud;

    f->nsent++;
    sockserv_linger(c, "test done");
}

static void
t_expired(struct sockserv_conn *c, void *ud)
{
    struct fix *f = ud;

    f->nexpired++;
    sockserv_close(c, "expired");
}

static void
start(struct fix *f, int max_clients, double timeout)
{
    static const char name[] = "sockserv-test";
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&f->sun, 0, sizeof(f->sun));
    f->sun.sun_family = AF_UNIX;
    /* An abstract address: nothing in the file system to clean up. */
    int len = snprintf(f->sun.sun_path + 1, sizeof(f->sun.sun_path) - 1, "%s-%ld-%p", name,
                       (long)getpid(), (void *)f);
    f->sunlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    assert_int_equal(bind(fd, (struct sockaddr *)&f->sun, f->sunlen), 0);
    assert_int_equal(listen(fd, 16), 0);

    const struct sockserv_conf cf = {
        .tag = "test",
        .name = "test socket",
        .full_warning = "test: full",
        .max_clients = max_clients,
        .timeout = timeout,
        .data_size = sizeof(struct tconn),
        .out_keep = 1024,
        .linger_time = 2.0,
        .linger_max = 64 * 1024,
        .readable = t_readable,
        .sent = t_sent,
        .expired = t_expired,
    };
    f->srv = sockserv_start(f->loop, fd, &cf, f);
}

static int
setup(void **state)
{
    struct fix *f = xcalloc(1, sizeof(*f));

    f->loop = ev_loop_new(EVFLAG_AUTO);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    sockserv_free(f->srv);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static int
client_connect(struct fix *f)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&f->sun, f->sunlen), 0);
    return fd;
}

static int
clients(struct fix *f)
{
    struct sockserv_counters ctr;

    sockserv_get_counters(f->srv, &ctr);
    return ctr.clients;
}

/* Runs the loop until N clients are connected, failing after the deadline. */
static void
wait_clients(struct fix *f, int n)
{
    for (double end = tu_now_s() + TU_DEADLINE_S; clients(f) != n;) {
        if (tu_now_s() > end)
            fail_msg("%d clients connected, expected %d", clients(f), n);
        tu_spin(f->loop, -1, 0);
        usleep(1000);
    }
}

/*
 * The answer arrives, then a clean EOF, although the client sent more than its request:
 * closing with that input unread would reset the connection.
 */
static void
test_answer_then_linger(void **state)
{
    struct fix *f = *state;
    char junk[8192];
    size_t len;
    int reset;

    start(f, 4, 10.0);
    memset(junk, 'j', sizeof(junk));
    int fd = client_connect(f);
    assert_true(send(fd, "q", 1, MSG_NOSIGNAL) == 1);
    for (int i = 0; i < 50; i++)
        ev_run(f->loop, EVRUN_NOWAIT);
    assert_true(send(fd, junk, sizeof(junk), MSG_NOSIGNAL) == (ssize_t)sizeof(junk));
    shutdown(fd, SHUT_WR);
    char *got = tu_read_to_eof(f->loop, fd, &len, &reset);
    assert_string_equal(got, "bye\n");
    assert_int_equal(reset, 0);
    assert_int_equal(f->nsent, 0); /* sent at once: the write watcher never ran */
    close(fd);
    wait_clients(f, 0);
    free(got);
}

/* A big answer goes out through the write watcher, which reports it sent exactly once. */
static void
test_big_answer(void **state)
{
    struct fix *f = *state;
    size_t len;
    int reset;

    start(f, 4, 10.0);
    int fd = client_connect(f);
    assert_true(send(fd, "big", 3, MSG_NOSIGNAL) == 3);
    char *got = tu_read_to_eof(f->loop, fd, &len, &reset);
    assert_int_equal(len, BIG_SIZE);
    assert_int_equal(reset, 0);
    assert_int_equal(f->nsent, 1);
    close(fd);
    wait_clients(f, 0);
    free(got);
}

/* Past max_clients, connections are accepted and closed at once, and counted. */
static void
test_client_cap(void **state)
{
    struct fix *f = *state;
    struct sockserv_counters ctr;
    size_t len;
    int reset;

    start(f, 2, 10.0);
    int a = client_connect(f), b = client_connect(f);
    wait_clients(f, 2);
    int c = client_connect(f);
    char *got = tu_read_to_eof(f->loop, c, &len, &reset);
    assert_int_equal(len, 0);
    sockserv_get_counters(f->srv, &ctr);
    assert_int_equal(ctr.clients, 2);
    assert_int_equal(ctr.accepted, 3);
    assert_int_equal(ctr.rejected, 1);
    free(got);
    close(c);
    close(a);
    close(b);
    wait_clients(f, 0);
}

/* A silent client meets the protocol's expiry callback. */
static void
test_expired(void **state)
{
    struct fix *f = *state;
    size_t len;
    int reset;

    start(f, 4, 0.05);
    int fd = client_connect(f);
    char *got = tu_read_to_eof(f->loop, fd, &len, &reset);
    assert_int_equal(len, 0);
    assert_int_equal(f->nexpired, 1);
    assert_int_equal(clients(f), 0);
    free(got);
    close(fd);
}

/*
 * Freeing the server with clients connected closes every client (each peer sees a clean
 * EOF) and the listening socket (a new connect is refused), stops every watcher it started
 * on the loop, and leaves no file descriptor behind (valgrind checks the memory).
 */
static void
test_free_with_clients(void **state)
{
    struct fix *f = *state;
    size_t len;
    int reset;

    int fds_before = tu_fd_count();
    start(f, 4, 10.0);
    int a = client_connect(f), b = client_connect(f);
    wait_clients(f, 2);
    assert_true(send(a, "x", 1, MSG_NOSIGNAL) == 1); /* input pending: a half-read client */
    for (int i = 0; i < 10; i++)
        tu_spin(f->loop, -1, 0);
    assert_int_equal(tu_fd_count(), fds_before + 5); /* listener, 2 accepted, 2 ours */

    sockserv_free(f->srv);
    f->srv = NULL;

    /* No loop runs from here on: whatever the peers see, sockserv_free() did itself. */
    char *got = tu_read_to_eof(NULL, b, &len, &reset);
    assert_int_equal(len, 0);
    assert_int_equal(reset, 0);
    free(got);
    got = tu_read_to_eof(NULL, a, &len, NULL); /* unread input may turn its close into a reset */
    assert_int_equal(len, 0);
    free(got);
    assert_int_equal(tu_fd_count(), fds_before + 2); /* only our two ends are left */
    close(a);
    close(b);
    assert_int_equal(tu_fd_count(), fds_before);

    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(c >= 0);
    assert_int_equal(connect(c, (struct sockaddr *)&f->sun, f->sunlen), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(c);

    /* ev_run() returns false once no active watcher is left: accept_w, timers, clients. */
    assert_false(ev_run(f->loop, EVRUN_NOWAIT));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answer_then_linger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_clients, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
