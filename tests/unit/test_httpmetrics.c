/* test_httpmetrics.c -- unit tests of the metrics HTTP server, driven on a real libev loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpmetrics.h"
#include "testutil.h"
#include "util.h"

/* The fixture: a fresh loop, a server on a free loopback port, the body it serves. */
struct fix {
    struct ev_loop *loop;
    struct addr addr;
    struct httpmetrics *srv;
    size_t body_size; /* 0: a short exposition */
    int calls;        /* times the body callback ran */
};

static void
test_body(void *ud, struct sbuf *out)
{
    struct fix *f = ud;

    f->calls++;
    if (f->body_size == 0) {
        sbuf_adds(out, "# HELP up Up.\n# TYPE up gauge\nup 1\n");
        return;
    }
    char chunk[4096];
    memset(chunk, '#', sizeof(chunk));
    chunk[sizeof(chunk) - 1] = '\n';
    for (size_t i = 0; i < f->body_size / sizeof(chunk); i++)
        sbuf_add(out, chunk, sizeof(chunk));
}

static int
setup(void **state)
{
    struct fix *f = xcalloc(1, sizeof(*f));
    char err[256] = "";

    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    f->addr.family = AF_INET;
    util_strlcpy(f->addr.host, "127.0.0.1", sizeof(f->addr.host));
    for (int i = 0; i < 10 && f->srv == NULL; i++) {
        f->addr.port = tu_free_port();
        f->srv = httpmetrics_listen(f->loop, &f->addr, test_body, f, err, sizeof(err));
    }
    if (f->srv == NULL)
        fail_msg("httpmetrics_listen: %s", err);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    httpmetrics_close(f->srv);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static int
client_connect(struct fix *f, int rcvbuf)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)f->addr.port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    int rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
    assert_true(rc == 0 || errno == EINPROGRESS);
    return fd;
}

/* Sends REQ on a fresh connection, half-closes, and returns the whole response. */
static char *
exchange(struct fix *f, const char *req)
{
    int fd = client_connect(f, 0);
    tu_send_str(NULL, fd, req);
    shutdown(fd, SHUT_WR);
    char *resp = tu_read_to_eof(f->loop, fd, NULL, NULL);
    close(fd);
    return resp;
}

static void
assert_status(const char *resp, const char *status_line)
{
    if (strncmp(resp, status_line, strlen(status_line)) != 0)
        fail_msg("expected \"%s\", got \"%.80s\"", status_line, resp);
    assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
}

static void
test_get_metrics(void **state)
{
    struct fix *f = *state;
    char *resp = exchange(f, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");

    assert_status(resp, "HTTP/1.1 200 OK\r\n");
    assert_non_null(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(resp, "\r\nContent-Length: 35\r\n"));
    const char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "# HELP up Up.\n# TYPE up gauge\nup 1\n");
    assert_int_equal(f->calls, 1);
    free(resp);

    resp = exchange(f, "HEAD /metrics?x=1 HTTP/1.0\n\n");
    assert_status(resp, "HTTP/1.1 200 OK\r\n");
    assert_non_null(strstr(resp, "\r\nContent-Length: 35\r\n"));
    assert_string_equal(strstr(resp, "\r\n\r\n"), "\r\n\r\n"); /* no body */
    free(resp);
}

static void
test_errors(void **state)
{
    struct fix *f = *state;
    static const struct {
        const char *req;
        const char *status;
    } cases[] = {
        {"GET / HTTP/1.0\r\n\r\n", "HTTP/1.1 404 "},
        {"GET /metrics/ HTTP/1.0\r\n\r\n", "HTTP/1.1 404 "},
        {"POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 405 "},
        {"get /metrics HTTP/1.0\r\n\r\n", "HTTP/1.1 405 "},
        {"GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /metrics HTTP/3\r\n\r\n", "HTTP/1.1 505 "},
        {"GET /metrics FTP/1.0\r\n\r\n", "HTTP/1.1 400 "},
        {"GET  /metrics HTTP/1.0\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /met rics HTTP/1.0\r\n\r\n", "HTTP/1.1 400 "},
        {"GET http://x/metrics HTTP/1.0\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /metrics HTTP/1.0\r\nBad Header: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /metrics HTTP/1.0\r\n: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /metrics HTTP/1.0\r\nX: a\x01b\r\n\r\n", "HTTP/1.1 400 "},
        {"\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /metrics HTTP/1.0\r\n", "HTTP/1.1 400 "}, /* EOF inside the head */
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *resp = exchange(f, cases[i].req);
        if (strncmp(resp, cases[i].status, strlen(cases[i].status)) != 0)
            fail_msg("case %zu: expected \"%s\", got \"%.60s\"", i, cases[i].status, resp);
        free(resp);
    }
    char *resp = exchange(f, "POST /metrics HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(resp, "\r\nAllow: GET, HEAD\r\n"));
    free(resp);
    assert_int_equal(f->calls, 0);
    /* A connection that sends nothing and hangs up gets nothing. */
    resp = exchange(f, "");
    assert_string_equal(resp, "");
    free(resp);
}

static void
test_head_too_long(void **state)
{
    struct fix *f = *state;
    struct sbuf req = {0};

    sbuf_adds(&req, "GET /metrics HTTP/1.0\r\nX-Long: ");
    while (req.len < 3 * HTTPMETRICS_HEAD_MAX)
        sbuf_adds(&req, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    sbuf_adds(&req, "\r\n\r\n");
    /* The whole request is read by the server only partly: it must still answer cleanly. */
    char *resp = exchange(f, req.buf);
    assert_status(resp, "HTTP/1.1 431 ");
    free(resp);
    sbuf_free(&req);
    assert_int_equal(f->calls, 0);
}

/* A client that never reads a big answer does not stall the loop, and gets all of it later. */
static void
test_slow_reader_never_blocks(void **state)
{
    struct fix *f = *state;
    size_t len;

    f->body_size = 16 * 1024 * 1024;
    int fd = client_connect(f, 4096);
    tu_send_str(NULL, fd, "GET /metrics HTTP/1.0\r\n\r\n");
    double t0 = tu_now_s();
    for (int i = 0; i < 200; i++) {
        ev_run(f->loop, EVRUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 1);
    }
    assert_true(tu_now_s() - t0 < 2.0);
    assert_int_equal(f->calls, 1);
    char *resp = tu_read_to_eof(f->loop, fd, &len, NULL);
    close(fd);
    assert_status(resp, "HTTP/1.1 200 OK\r\n");
    assert_non_null(strstr(resp, "\r\nContent-Length: 16777216\r\n"));
    assert_int_equal(len - (size_t)(strstr(resp, "\r\n\r\n") + 4 - resp), f->body_size);
    free(resp);
}

static void
test_client_cap(void **state)
{
    struct fix *f = *state;
    int fds[HTTPMETRICS_MAX_CLIENTS];

    for (int i = 0; i < HTTPMETRICS_MAX_CLIENTS; i++)
        fds[i] = client_connect(f, 0);
    for (int i = 0; i < 20; i++)
        ev_run(f->loop, EVRUN_NOWAIT);
    /* One too many: closed at once, without an answer. */
    int extra = client_connect(f, 0);
    char *resp = tu_read_to_eof(f->loop, extra, NULL, NULL);
    assert_string_equal(resp, "");
    free(resp);
    close(extra);
    /* A slot freed: served again. */
    close(fds[0]);
    for (int i = 0; i < 20; i++)
        ev_run(f->loop, EVRUN_NOWAIT);
    resp = exchange(f, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_status(resp, "HTTP/1.1 200 OK\r\n");
    free(resp);
    for (int i = 1; i < HTTPMETRICS_MAX_CLIENTS; i++)
        close(fds[i]);
}

static void
test_listen_errors(void **state)
{
    struct fix *f = *state;
    char err[256] = "";
    struct addr bad = f->addr;

    /* The port is taken (by the fixture's own server). */
    assert_null(httpmetrics_listen(f->loop, &f->addr, test_body, f, err, sizeof(err)));
    char want[128];
    snprintf(want, sizeof(want), "metrics_listen 127.0.0.1:%d: cannot bind: Address already in use",
             f->addr.port);
    assert_string_equal(err, want);
    util_strlcpy(bad.host, "not-an-ip", sizeof(bad.host));
    assert_null(httpmetrics_listen(f->loop, &bad, test_body, f, err, sizeof(err)));
    assert_non_null(strstr(err, "not a numeric IPv4 or IPv6 address"));

    assert_true(httpmetrics_is_on(f->srv, &f->addr));
    bad = f->addr;
    bad.port++;
    assert_false(httpmetrics_is_on(f->srv, &bad));
    assert_false(httpmetrics_is_on(NULL, &f->addr));
    httpmetrics_close(NULL);
}

/*
 * Slowloris: a client trickling a request head byte by byte, never finishing it, is closed
 * when the head's deadline ends (counted from the connect, not from its last byte).
 */
static void
test_slowloris_cut_off(void **state)
{
    struct fix *f = *state;
    static const char head[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    char buf[256];
    size_t i = 0;

    httpmetrics_set_limits(f->srv, 0.3, 0);
    int fd = client_connect(f, 0);
    double t0 = tu_now_s(), next = t0, took = -1;
    while (tu_now_s() - t0 < 3.0) {
        if (tu_now_s() >= next) {
            const char *b = i < sizeof(head) - 1 ? &head[i++] : "a";
            if (send(fd, b, 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN && errno != ENOTCONN) {
                took = tu_now_s() - t0;
                break;
            }
            next += 0.02;
        }
        ev_run(f->loop, EVRUN_NOWAIT);
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0)
            fail_msg("an answer to an incomplete head: %.*s", (int)n, buf);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            took = tu_now_s() - t0;
            break;
        }
        usleep(1000);
    }
    close(fd);
    if (took < 0.25 || took > 0.8)
        fail_msg("slowloris closed after %.3f s, deadline 0.3 s", took);
    assert_int_equal(f->calls, 0);
}

/*
 * All slots taken by clients that never finish their head: once one has waited
 * evict_after, a scrape closes the longest-waiting one and is served. A client whose answer
 * is still being written is never the one closed.
 */
static void
test_full_evicts_unfinished_head(void **state)
{
    struct fix *f = *state;
    int fds[HTTPMETRICS_MAX_CLIENTS];
    char b;

    f->body_size = 4 * 1024 * 1024; /* more than loopback buffers hold: stays unsent */
    httpmetrics_set_limits(f->srv, 30.0, 0.2);
    fds[0] = client_connect(f, 4096);
    tu_send_str(NULL, fds[0], "GET /metrics HTTP/1.0\r\n\r\n");
    for (int i = 1; i < HTTPMETRICS_MAX_CLIENTS; i++)
        fds[i] = client_connect(f, 0);
    tu_run_for(f->loop, 0.4);
    assert_int_equal(f->calls, 1);
    f->body_size = 0;
    char *resp = exchange(f, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_status(resp, "HTTP/1.1 200 OK\r\n");
    free(resp);
    /* fds[1], connected first among the idle ones, went; fds[0] (being answered) did not. */
    assert_int_equal(recv(fds[1], &b, 1, 0), 0);
    assert_true(recv(fds[0], &b, 1, 0) == 1);
    for (int i = 0; i < HTTPMETRICS_MAX_CLIENTS; i++)
        close(fds[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_never_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slowloris_cut_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_evicts_unfinished_head, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
