/* client.c -- sentinel-agentctl's stats socket client: connect, send one line, read the answer. */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until FD is ready for EVENTS, at most until DEADLINE (mono_ms). Returns 0 or -1. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        struct pollfd p = {.fd = fd, .events = events};
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

/*
 * Connects to the unix socket PATH within CLIENT_TIMEOUT_MS. A listener with a full backlog
 * answers EAGAIN to a non-blocking connect: retry until the deadline. Returns the
 * non-blocking socket, or -1 with errno set.
 */
static int
connect_socket(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int64_t deadline = mono_ms() + CLIENT_TIMEOUT_MS;
    int fd, saved;

    if (util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
            return fd;
        if (errno == EINTR)
            continue;
        if (errno == EINPROGRESS) {
            int err = 0;
            socklen_t len = sizeof(err);
            if (wait_fd(fd, POLLOUT, deadline) < 0)
                goto fail;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                goto fail;
            if (err == 0)
                return fd;
            errno = err;
            goto fail;
        }
        if (errno != EAGAIN)
            goto fail;
        if (mono_ms() >= deadline) {
            errno = ETIMEDOUT;
            goto fail;
        }
        usleep(10 * 1000);
    }
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Sends all of P; returns 0 or -1 with errno set. */
static int
send_all(int fd, const char *p, size_t n)
{
    int64_t deadline = mono_ms() + CLIENT_TIMEOUT_MS;

    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            deadline = mono_ms() + CLIENT_TIMEOUT_MS;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            return -1;
        if (wait_fd(fd, POLLOUT, deadline) < 0)
            return -1;
    }
    return 0;
}

/*
 * Reads into OUT until EOF, waiting at most CLIENT_TIMEOUT_MS for each piece. A reset after a
 * complete answer counts as EOF. Returns 0, or -1 with errno set.
 */
static int
read_all(int fd, struct sbuf *out)
{
    char buf[65536];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            sbuf_add(out, buf, (size_t)n);
            continue;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return 0; /* judged complete or cut off by the caller */
        if (errno != EAGAIN)
            return -1;
        if (wait_fd(fd, POLLIN, mono_ms() + CLIENT_TIMEOUT_MS) < 0)
            return -1;
    }
}

int
client_ask(const char *path, const char *cmd, struct sbuf *ans, char *err, size_t errlen)
{
    int fd = connect_socket(path);
    int rc = -1;

    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(errno));
        return -1;
    }
    if (send_all(fd, cmd, strlen(cmd)) < 0) {
        snprintf(err, errlen, "cannot send to %s: %s", path, strerror(errno));
        goto out;
    }
    shutdown(fd, SHUT_WR);
    if (read_all(fd, ans) < 0) {
        if (errno == ETIMEDOUT)
            snprintf(err, errlen, "no answer from %s within %d s", path, CLIENT_TIMEOUT_MS / 1000);
        else
            snprintf(err, errlen, "reading from %s: %s", path, strerror(errno));
        goto out;
    }
    /* A whole answer ends with an empty line: "...\n\n", or just "\n" if it is empty. */
    if (!(ans->len == 1 && ans->buf[0] == '\n') &&
        !(ans->len >= 2 && memcmp(ans->buf + ans->len - 2, "\n\n", 2) == 0)) {
        snprintf(err, errlen, "answer from %s cut off after %zu bytes", path, ans->len);
        goto out;
    }
    rc = 0;
out:
    close(fd);
    return rc;
}
