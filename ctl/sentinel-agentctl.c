/* sentinel-agentctl.c -- sends one command to the agent's stats socket and prints the answer. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "util.h"

#define CTL_DEFAULT_SOCKET "/run/sentinel-agent/stats.sock"
#define CTL_TIMEOUT_MS     5000 /* for the connect, and for each wait for answer bytes */

/* Exit codes, as SPEC.md "Binaries" says. */
#define EXIT_ANSWER  0
#define EXIT_ERRANS  1  /* the answer is an error object */
#define EXIT_CONNECT 2  /* no connection, timeout, or an answer cut off */
#define EXIT_USAGE   64 /* EX_USAGE */

static const char *progname = "sentinel-agentctl";

static void
usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [-s SOCKET | -c CONFIG] COMMAND...\n"
            "Sends COMMAND (words joined by spaces) to the sentinel-agent stats socket and\n"
            "prints the answer.\n"
            "\n"
            "  -s, --socket SOCKET   stats socket to use\n"
            "  -c, --config CONFIG   use the stats_socket named in CONFIG\n"
            "                        (default: the one of %s, else %s)\n"
            "  -h, --help            show this help and exit\n"
            "  -V, --version         show the version and exit\n"
            "\n"
            "Commands: help, stats, instances, metrics.\n"
            "Exit status: 0 answer, 1 error answer, 2 no connection or answer cut off,\n"
            "64 usage error.\n",
            progname, CONF_DEFAULT_PATH, CTL_DEFAULT_SOCKET);
}

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Returns the socket named by the config at PATH in a string the caller frees, or NULL.
 * With REPORT set, a config that does not load is fatal: its errors go to stderr, exit 2.
 * Instance addresses are checked but not resolved: finding the socket never waits on DNS.
 */
static char *
socket_from_config(const char *path, int report)
{
    struct conf_errors errs = {0};
    struct conf *conf = conf_load_flags(path, CONF_NO_RESOLVE, &errs);
    char *sock = NULL;

    if (conf != NULL && conf->stats_socket != NULL)
        sock = xstrdup(conf->stats_socket);
    if (conf == NULL && report) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msg[i]);
        if (errs.n == 0)
            fprintf(stderr, "%s: cannot load %s\n", progname, path);
        conf_errors_free(&errs);
        exit(EXIT_CONNECT);
    }
    conf_free(conf);
    conf_errors_free(&errs);
    return sock;
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
 * Connects to the unix socket PATH within CTL_TIMEOUT_MS. A listener with a full backlog
 * answers EAGAIN to a non-blocking connect: retry until the deadline. Returns the
 * non-blocking socket, or -1 with errno set.
 */
static int
connect_socket(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int64_t deadline = mono_ms() + CTL_TIMEOUT_MS;
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
    int64_t deadline = mono_ms() + CTL_TIMEOUT_MS;

    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            deadline = mono_ms() + CTL_TIMEOUT_MS;
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
 * Reads into OUT until EOF, waiting at most CTL_TIMEOUT_MS for each piece. A reset after a
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
        if (wait_fd(fd, POLLIN, mono_ms() + CTL_TIMEOUT_MS) < 0)
            return -1;
    }
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *sock_opt = NULL, *conf_opt = NULL;
    char *sock;
    struct sbuf cmd = {0}, ans = {0};
    int opt, fd, rc;

    /* "+": options stop at the first word of the command. */
    while ((opt = getopt_long(argc, argv, "+s:c:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            sock_opt = optarg;
            break;
        case 'c':
            conf_opt = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_ANSWER;
        case 'V':
            printf("%s %s\n", progname, SA_VERSION);
            return EXIT_ANSWER;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (sock_opt != NULL && conf_opt != NULL) {
        fprintf(stderr, "%s: -s and -c are exclusive\n", progname);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        fprintf(stderr, "%s: missing COMMAND\n", progname);
        usage(stderr);
        return EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++) {
        if (i > optind)
            sbuf_adds(&cmd, " ");
        sbuf_adds(&cmd, argv[i]);
    }
    if (cmd.len == 0 || strpbrk(cmd.buf, "\r\n") != NULL) {
        fprintf(stderr, "%s: COMMAND must be one non-empty line\n", progname);
        usage(stderr);
        sbuf_free(&cmd);
        return EXIT_USAGE;
    }
    sbuf_adds(&cmd, "\n");

    if (sock_opt != NULL)
        sock = xstrdup(sock_opt);
    else if (conf_opt != NULL)
        sock = socket_from_config(conf_opt, 1);
    else
        sock = socket_from_config(CONF_DEFAULT_PATH, 0);
    if (sock == NULL)
        sock = xstrdup(CTL_DEFAULT_SOCKET);

    rc = EXIT_CONNECT;
    fd = connect_socket(sock);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot connect to %s: %s\n", progname, sock, strerror(errno));
        goto out;
    }
    if (send_all(fd, cmd.buf, cmd.len) < 0) {
        fprintf(stderr, "%s: cannot send to %s: %s\n", progname, sock, strerror(errno));
        goto out_close;
    }
    shutdown(fd, SHUT_WR);
    if (read_all(fd, &ans) < 0) {
        if (errno == ETIMEDOUT)
            fprintf(stderr, "%s: no answer from %s within %d s\n", progname, sock,
                    CTL_TIMEOUT_MS / 1000);
        else
            fprintf(stderr, "%s: reading from %s: %s\n", progname, sock, strerror(errno));
        goto out_close;
    }
    /* A whole answer ends with an empty line: "...\n\n", or just "\n" if it is empty. */
    if (!(ans.len == 1 && ans.buf[0] == '\n') &&
        !(ans.len >= 2 && memcmp(ans.buf + ans.len - 2, "\n\n", 2) == 0)) {
        fprintf(stderr, "%s: answer from %s cut off after %zu bytes\n", progname, sock, ans.len);
        goto out_close;
    }
    fwrite(ans.buf, 1, ans.len - 1, stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: writing the answer: %s\n", progname, strerror(errno));
        goto out_close;
    }
    rc = strncmp(ans.buf, "{\"error\"", 8) == 0 ? EXIT_ERRANS : EXIT_ANSWER;
out_close:
    close(fd);
out:
    free(sock);
    sbuf_free(&cmd);
    sbuf_free(&ans);
    return rc;
}
