/*
 * testutil.h -- helpers shared by the unit tests: clocks, deadlines, file descriptor
 * counting, loopback ports, temp dirs, and driving a real libev loop (for a while, or until a
 * condition holds) while a test plays the client on the other end of a socket.
 *
 * Everything is static inline so a test includes only what it uses, with no extra object
 * in the build. Every wait has a deadline (TU_DEADLINE_S) and fails the test with what it
 * saw instead of hanging; nothing sleeps to assert. Include it after the system headers
 * cmocka needs (setjmp.h, stdarg.h, stddef.h, stdint.h) -- it includes them itself too.
 */
#ifndef SA_TESTUTIL_H
#define SA_TESTUTIL_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "util.h"

#define TU_DEADLINE_S 5.0 /* how long any helper waits before failing the test */

/* Monotonic seconds, for deadlines. */
static inline double
tu_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How many file descriptors this process has open (entries of /proc/self/fd). */
static inline int
tu_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

/* A loopback TCP port nobody listens on right now (bind port 0, read it, close). */
static inline int
tu_free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* Makes a fresh directory /tmp/PREFIX.XXXXXX into BUF; the test removes it. */
static inline void
tu_tmpdir(char *buf, size_t size, const char *prefix)
{
    int n = snprintf(buf, size, "/tmp/%s.XXXXXX", prefix);

    assert_true(n > 0 && (size_t)n < size);
    if (mkdtemp(buf) == NULL)
        fail_msg("mkdtemp %s: %s", buf, strerror(errno));
}

/*
 * Runs LOOP once without blocking (if not NULL), then waits up to 1 ms for EVENTS on FD (if
 * FD >= 0).
 */
static inline void
tu_spin(struct ev_loop *loop, int fd, short events)
{
    if (loop != NULL)
        ev_run(loop, EVRUN_NOWAIT);
    if (fd >= 0) {
        struct pollfd p = {.fd = fd, .events = events};
        poll(&p, 1, 1);
    }
}

/* Runs LOOP for SECS seconds of real time, sleeping at most 1 ms at a time. */
static inline void
tu_run_for(struct ev_loop *loop, double secs)
{
    for (double end = tu_now_s() + secs; tu_now_s() < end;) {
        ev_run(loop, EVRUN_NOWAIT);
        poll(NULL, 0, 1);
    }
}

/* Runs LOOP until COND holds, failing the test with COND's text after TU_DEADLINE_S. */
#define TU_RUN_UNTIL(loop, cond)                                                                   \
    do {                                                                                           \
        double tu_end_ = tu_now_s() + TU_DEADLINE_S;                                               \
        while (!(cond)) {                                                                          \
            if (tu_now_s() > tu_end_)                                                              \
                fail_msg("not within %.0f s: %s", TU_DEADLINE_S, #cond);                           \
            ev_run((loop), EVRUN_NOWAIT);                                                          \
            poll(NULL, 0, 1);                                                                      \
        }                                                                                          \
    } while (0)

/*
 * Sends all of P on the non-blocking FD while running LOOP (the server side; NULL: the peer
 * is not served meanwhile, so what does not fit in the socket buffers waits).
 */
static inline void
tu_send_all(struct ev_loop *loop, int fd, const void *p, size_t n)
{
    const char *b = p;
    double end = tu_now_s() + TU_DEADLINE_S;

    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINPROGRESS && errno != ENOTCONN)
            fail_msg("send: %s", strerror(errno));
        if (tu_now_s() > end)
            fail_msg("send: %zu bytes still unsent after %.0f s", n, TU_DEADLINE_S);
        tu_spin(loop, fd, POLLOUT);
    }
}

/* Sends the string S (without its NUL) as tu_send_all() does. */
static inline void
tu_send_str(struct ev_loop *loop, int fd, const char *s)
{
    tu_send_all(loop, fd, s, strlen(s));
}

/*
 * Reads the non-blocking FD into OUT, running LOOP, until EOF (returns 0), a reset (returns
 * -1) or, when UNTIL is not NULL, until OUT ends with UNTIL (returns 1). Fails the test if
 * none of these comes within the deadline.
 */
static inline int
tu_recv_until(struct ev_loop *loop, int fd, struct sbuf *out, const char *until)
{
    char buf[65536];
    double end = tu_now_s() + TU_DEADLINE_S;

    for (;;) {
        if (until != NULL && out->len >= strlen(until) &&
            strcmp(out->buf + out->len - strlen(until), until) == 0)
            return 1;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            sbuf_add(out, buf, (size_t)n);
            continue;
        }
        if (n == 0)
            return 0;
        if (errno == ECONNRESET)
            return -1;
        if (errno != EAGAIN)
            fail_msg("recv: %s", strerror(errno));
        if (tu_now_s() > end)
            fail_msg("recv: nothing more within %.0f s (got %zu bytes)", TU_DEADLINE_S, out->len);
        tu_spin(loop, fd, POLLIN);
    }
}

/*
 * Reads the non-blocking FD until the peer closes it, running LOOP (may be NULL: nothing
 * to run) between reads. Returns what was read, NUL-terminated, for the caller to free;
 * *LENP (if not NULL) gets its length and *RESET (if not NULL) whether the stream ended in
 * a reset rather than a clean EOF. Fails the test if no end comes within the deadline.
 */
static inline char *
tu_read_to_eof(struct ev_loop *loop, int fd, size_t *lenp, int *reset)
{
    struct sbuf in = {0};
    char buf[65536];
    double end = tu_now_s() + TU_DEADLINE_S;

    if (reset != NULL)
        *reset = 0;
    for (;;) {
        if (loop != NULL)
            ev_run(loop, EVRUN_NOWAIT);
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            sbuf_add(&in, buf, (size_t)n);
            continue;
        }
        if (n == 0)
            break;
        if (errno == ECONNRESET) {
            if (reset != NULL)
                *reset = 1;
            break;
        }
        if (errno != EAGAIN)
            fail_msg("recv: %s", strerror(errno));
        if (tu_now_s() > end)
            fail_msg("no EOF within %.0f s (got %zu bytes)", TU_DEADLINE_S, in.len);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 1);
    }
    sbuf_adds(&in, "");
    if (lenp != NULL)
        *lenp = in.len;
    return in.buf;
}

#endif /* SA_TESTUTIL_H */
