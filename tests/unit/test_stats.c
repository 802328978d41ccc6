/* test_stats.c -- unit tests of the stats socket server, driven on a real libev loop. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "stats.h"
#include "testutil.h"
#include "util.h"

#define BIG_SIZE (1024 * 1024) /* body of the answer to "big" */

/* The fixture: a fresh loop, a temp directory and a socket path inside it. */
struct fix {
    struct ev_loop *loop;
    char dir[64];
    char path[128];
    struct stats_server *srv;
};

/* Answers "big" with BIG_SIZE bytes, anything else with "ok CMD". */
static void
test_answer(void *ud, const struct stats_peer *peer, const char *cmd, struct sbuf *out)
{
    (void)ud;
    if (strcmp(cmd, "peer") == 0) {
        sbuf_printf(out, "known %d uid %u pid %d\n\n", peer->known, (unsigned)peer->uid,
                    (int)peer->pid);
        return;
    }
    if (strcmp(cmd, "big") == 0) {
        char chunk[4096];
        memset(chunk, 'x', sizeof(chunk));
        for (size_t i = 0; i < BIG_SIZE / sizeof(chunk); i++)
            sbuf_add(out, chunk, sizeof(chunk));
        sbuf_adds(out, "\n\n");
        return;
    }
    sbuf_printf(out, "ok %s\n\n", cmd);
}

static size_t
heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static struct stats_server *
listen_or_fail(struct fix *f, mode_t mode)
{
    char err[256] = "";
    struct stats_server *s =
        stats_listen(f->loop, f->path, mode, (gid_t)-1, test_answer, NULL, err, sizeof(err));
    if (s == NULL)
        fail_msg("stats_listen: %s", err);
    return s;
}

static int
setup(void **state)
{
    struct fix *f = xcalloc(1, sizeof(*f));

    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_stats.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/stats.sock", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    stats_close(f->srv);
    unlink(f->path);
    rmdir(f->dir);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static int
client_connect(struct fix *f)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    util_strlcpy(sun.sun_path, f->path, sizeof(sun.sun_path));
    for (double end = tu_now_s() + TU_DEADLINE_S;
         connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0;) {
        if (errno != EAGAIN || tu_now_s() > end)
            fail_msg("connect %s: %s", f->path, strerror(errno));
        tu_spin(f->loop, -1, 0);
    }
    return fd;
}

/* Spins the loop until the server counts N connected clients. */
static void
wait_clients(struct fix *f, int n)
{
    struct stats_server_counters c;
    double end = tu_now_s() + 5;

    for (;;) {
        stats_get_counters(f->srv, &c);
        if (c.clients == n)
            return;
        if (tu_now_s() > end)
            fail_msg("%d clients connected, expected %d", c.clients, n);
        tu_spin(f->loop, -1, 0);
        usleep(200);
    }
}

static void
test_one_command(void **state)
{
    struct fix *f = *state;
    struct sbuf out = {0};
    struct stats_server_counters c;

    f->srv = listen_or_fail(f, 0600);
    int fd = client_connect(f);
    tu_send_all(f->loop, fd, "hello\n", 6);
    assert_int_equal(tu_recv_until(f->loop, fd, &out, "\n\n"), 1);
    assert_string_equal(out.buf, "ok hello\n\n");
    /* The connection stays open for more commands, and closes at our EOF. */
    sbuf_reset(&out);
    tu_send_all(f->loop, fd, "again\n", 6);
    assert_int_equal(tu_recv_until(f->loop, fd, &out, "\n\n"), 1);
    assert_string_equal(out.buf, "ok again\n\n");
    shutdown(fd, SHUT_WR);
    sbuf_reset(&out);
    assert_int_equal(tu_recv_until(f->loop, fd, &out, NULL), 0);
    assert_int_equal(out.len, 0);
    wait_clients(f, 0);
    stats_get_counters(f->srv, &c);
    assert_int_equal(c.commands, 2);
    assert_int_equal(c.clients_total, 1);
    close(fd);
    sbuf_free(&out);
}

/* The answer function is told who connected (SO_PEERCRED), for the commands that change things. */
static void
test_peer_credentials(void **state)
{
    struct fix *f = *state;
    struct sbuf out = {0}, want = {0};

    f->srv = listen_or_fail(f, 0600);
    int fd = client_connect(f);
    tu_send_all(f->loop, fd, "peer\npeer\n", 10);
    shutdown(fd, SHUT_WR);
    assert_int_equal(tu_recv_until(f->loop, fd, &out, NULL), 0);
    sbuf_printf(&want, "known 1 uid %u pid %d\n\nknown 1 uid %u pid %d\n\n", (unsigned)geteuid(),
                (int)getpid(), (unsigned)geteuid(), (int)getpid());
    assert_string_equal(out.buf, want.buf);
    close(fd);
    sbuf_free(&out);
    sbuf_free(&want);
}

/* The socket file gets the group asked for (one the process is in: its own). */
static void
test_socket_group(void **state)
{
    struct fix *f = *state;
    struct stat st;
    char err[256] = "";

    f->srv = stats_listen(f->loop, f->path, 0660, getegid(), test_answer, NULL, err, sizeof(err));
    assert_non_null(f->srv);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_int_equal(st.st_gid, getegid());
    assert_int_equal(st.st_mode & 0777, 0660);
    if (geteuid() != 0) {
        /* A group the process is not in: refused, and no socket file is left behind. */
        stats_close(f->srv);
        f->srv = NULL;
        assert_null(stats_listen(f->loop, f->path, 0660, 0, test_answer, NULL, err, sizeof(err)));
        assert_non_null(strstr(err, "stats_socket_group"));
        assert_int_equal(lstat(f->path, &st), -1);
    }
}

static void
test_pipelined(void **state)
{
    struct fix *f = *state;
    struct sbuf out = {0};
    /* CR stripped, empty lines ignored, last line without LF answered at EOF. */
    const char req[] = "one\ntwo\r\n\n\r\nthree\nfour";

    f->srv = listen_or_fail(f, 0600);
    int fd = client_connect(f);
    tu_send_all(f->loop, fd, req, strlen(req));
    shutdown(fd, SHUT_WR);
    assert_int_equal(tu_recv_until(f->loop, fd, &out, NULL), 0);
    assert_string_equal(out.buf, "ok one\n\nok two\n\nok three\n\nok four\n\n");
    close(fd);
    sbuf_free(&out);
}

/* A line of exactly STATS_LINE_MAX bytes is answered. */
static void
test_longest_line(void **state)
{
    struct fix *f = *state;
    struct sbuf out = {0};
    char line[STATS_LINE_MAX + 1];
    char want[STATS_LINE_MAX + 8];

    f->srv = listen_or_fail(f, 0600);
    memset(line, 'a', STATS_LINE_MAX);
    line[STATS_LINE_MAX] = '\n';
    snprintf(want, sizeof(want), "ok %.*s\n\n", STATS_LINE_MAX, line);
    int fd = client_connect(f);
    tu_send_all(f->loop, fd, line, sizeof(line));
    assert_int_equal(tu_recv_until(f->loop, fd, &out, "\n\n"), 1);
    assert_string_equal(out.buf, want);
    close(fd);
    sbuf_free(&out);
}

static void
check_too_long(struct fix *f, size_t len)
{
    struct sbuf out = {0};
    struct stats_server_counters c0, c1;
    char *line = xmalloc(len + 1);

    stats_get_counters(f->srv, &c0);
    memset(line, 'a', len);
    line[len] = '\n';
    int fd = client_connect(f);
    tu_send_all(f->loop, fd, line, len + 1);
    /* No shutdown: the server closes by itself, with a clean EOF after the answer. */
    assert_int_equal(tu_recv_until(f->loop, fd, &out, NULL), 0);
    assert_string_equal(out.buf, "{\"error\":\"line too long\"}\n\n");
    close(fd);
    wait_clients(f, 0);
    stats_get_counters(f->srv, &c1);
    assert_int_equal(c1.lines_too_long, c0.lines_too_long + 1);
    assert_int_equal(c1.commands, c0.commands);
    free(line);
    sbuf_free(&out);
}

static void
test_line_too_long(void **state)
{
    struct fix *f = *state;

    f->srv = listen_or_fail(f, 0600);
    check_too_long(f, 2000);
    check_too_long(f, STATS_LINE_MAX + 1);
    check_too_long(f, 100000);
}

/* A client that keeps sending after its line too long is cut off anyway. */
static void
test_too_long_endless_sender(void **state)
{
    struct fix *f = *state;
    struct sbuf out = {0};
    char chunk[4096];
    int cut = 0;

    f->srv = listen_or_fail(f, 0600);
    memset(chunk, 'z', sizeof(chunk));
    int fd = client_connect(f);
    for (double end = tu_now_s() + 10; !cut;) {
        ssize_t w = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            cut = 1;
        else if (w < 0 && errno != EAGAIN)
            fail_msg("send: %s", strerror(errno));
        if (tu_now_s() > end)
            fail_msg("server never closed");
        tu_spin(f->loop, w < 0 ? fd : -1, POLLOUT);
    }
    /* The answer came first, whatever ends the stream after it. */
    tu_recv_until(f->loop, fd, &out, NULL);
    assert_string_equal(out.buf, "{\"error\":\"line too long\"}\n\n");
    wait_clients(f, 0);
    close(fd);
    sbuf_free(&out);
}

/* Lines answered before a line too long keep their answers, in order. */
static void
test_too_long_after_commands(void **state)
{
    struct fix *f = *state;
    struct sbuf out = {0};
    char req[3000];

    f->srv = listen_or_fail(f, 0600);
    memset(req, 'b', sizeof(req));
    memcpy(req, "a\n", 2);
    req[sizeof(req) - 1] = '\n';
    int fd = client_connect(f);
    tu_send_all(f->loop, fd, req, sizeof(req));
    assert_int_equal(tu_recv_until(f->loop, fd, &out, NULL), 0);
    assert_string_equal(out.buf, "ok a\n\n{\"error\":\"line too long\"}\n\n");
    close(fd);
    sbuf_free(&out);
}

static void
check_mode(struct fix *f, mode_t mode)
{
    struct stat st;
    mode_t before = umask(022);

    umask(before);
    f->srv = listen_or_fail(f, mode);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, mode);
    assert_int_equal(umask(before), before); /* restored */
    stats_close(f->srv);
    f->srv = NULL;
    assert_int_equal(lstat(f->path, &st), -1);
}

static void
test_mode(void **state)
{
    struct fix *f = *state;

    check_mode(f, 0600);
    check_mode(f, 0660);
    check_mode(f, 0666); /* wider than the usual umask: chmod must win */
}

static void
test_stale_socket_replaced(void **state)
{
    struct fix *f = *state;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct sbuf out = {0};
    struct stat st;

    /* A socket file nobody listens on: bound, then closed without unlink. */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    util_strlcpy(sun.sun_path, f->path, sizeof(sun.sun_path));
    assert_int_equal(bind(s, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(s);
    assert_int_equal(lstat(f->path, &st), 0);

    f->srv = listen_or_fail(f, 0600);
    int fd = client_connect(f);
    tu_send_all(f->loop, fd, "x\n", 2);
    assert_int_equal(tu_recv_until(f->loop, fd, &out, "\n\n"), 1);
    assert_string_equal(out.buf, "ok x\n\n");
    close(fd);
    sbuf_free(&out);
}

static void
test_live_socket_refused(void **state)
{
    struct fix *f = *state;
    struct sbuf out = {0};
    char err[256] = "";

    f->srv = listen_or_fail(f, 0600);
    struct stats_server *second =
        stats_listen(f->loop, f->path, 0600, (gid_t)-1, test_answer, NULL, err, sizeof(err));
    assert_null(second);
    assert_non_null(strstr(err, "another process is listening on"));
    assert_non_null(strstr(err, f->path));
    /* The first server is untouched. */
    int fd = client_connect(f);
    tu_send_all(f->loop, fd, "still\n", 6);
    assert_int_equal(tu_recv_until(f->loop, fd, &out, "\n\n"), 1);
    assert_string_equal(out.buf, "ok still\n\n");
    close(fd);
    sbuf_free(&out);
}

/* A listener whose backlog is full still counts as live (and does not hang us). */
static void
test_live_socket_full_backlog(void **state)
{
    struct fix *f = *state;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char err[256] = "";
    int cl[8];
    int n = 0;

    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    util_strlcpy(sun.sun_path, f->path, sizeof(sun.sun_path));
    assert_int_equal(bind(s, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(s, 0), 0);
    for (; n < (int)ARRAY_LEN(cl); n++) {
        cl[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(cl[n], (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            assert_int_equal(errno, EAGAIN);
            close(cl[n]);
            break;
        }
    }
    assert_true(n < (int)ARRAY_LEN(cl));
    assert_null(
        stats_listen(f->loop, f->path, 0600, (gid_t)-1, test_answer, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "another process is listening on"));
    for (int i = 0; i < n; i++)
        close(cl[i]);
    close(s);
}

static void
test_regular_file_refused(void **state)
{
    struct fix *f = *state;
    char err[256] = "";
    char buf[16] = "";
    struct stat st;

    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs("precious", fp);
    fclose(fp);
    assert_null(
        stats_listen(f->loop, f->path, 0600, (gid_t)-1, test_answer, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "not a socket"));
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    fp = fopen(f->path, "r");
    assert_non_null(fgets(buf, sizeof(buf), fp));
    fclose(fp);
    assert_string_equal(buf, "precious");
}

static void
test_bad_paths(void **state)
{
    struct fix *f = *state;
    char err[256] = "";
    char longpath[200];

    memset(longpath, 'a', sizeof(longpath));
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_null(
        stats_listen(f->loop, longpath, 0600, (gid_t)-1, test_answer, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "too long"));
    err[0] = '\0';
    assert_null(stats_listen(f->loop, "/nonexistent-dir-for-test/stats.sock", 0600, (gid_t)-1,
                             test_answer, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "bind"));
}

static void
test_max_clients(void **state)
{
    struct fix *f = *state;
    struct stats_server_counters c;
    enum { N = STATS_MAX_CLIENTS + 10 };
    int fds[N];
    int eofs = 0;
    struct rlimit rl;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * N + 64) {
        rl.rlim_cur = rl.rlim_max < 4 * N ? rl.rlim_max : 4 * N;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    f->srv = listen_or_fail(f, 0600);
    for (int i = 0; i < N; i++) {
        fds[i] = client_connect(f);
        tu_spin(f->loop, -1, 0);
    }
    for (double end = tu_now_s() + 5;;) {
        stats_get_counters(f->srv, &c);
        if (c.clients_total == N)
            break;
        if (tu_now_s() > end)
            fail_msg("only %llu accepted", (unsigned long long)c.clients_total);
        tu_spin(f->loop, -1, 0);
    }
    assert_int_equal(c.clients, STATS_MAX_CLIENTS);
    assert_int_equal(c.clients_rejected, 10);
    for (int i = 0; i < N; i++) {
        char b;
        ssize_t n = recv(fds[i], &b, 1, 0);
        if (n == 0)
            eofs++;
        else
            assert_true(n < 0 && errno == EAGAIN);
    }
    assert_int_equal(eofs, 10);
    /* Served clients still work. */
    struct sbuf out = {0};
    tu_send_all(f->loop, fds[0], "hi\n", 3);
    assert_int_equal(tu_recv_until(f->loop, fds[0], &out, "\n\n"), 1);
    assert_string_equal(out.buf, "ok hi\n\n");
    sbuf_free(&out);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    wait_clients(f, 0);
    /* With slots free again, a new client is served. */
    int fd = client_connect(f);
    wait_clients(f, 1);
    close(fd);
}

/*
 * A client pipelines 500 "big" commands (1 MiB answers each) and does not read. The server
 * must answer one at a time: it may not run ahead of what the client reads, or its buffered
 * output (and heap) would grow to hundreds of MiB.
 */
static void
test_bounded_output(void **state)
{
    struct fix *f = *state;
    struct stats_server_counters c;
    enum { NBIG = 500 };
    char req[NBIG * 4];
    size_t heap0, heap_max = 0;
    char buf[65536];
    size_t got = 0, want = (size_t)NBIG * (BIG_SIZE + 2);

    for (int i = 0; i < NBIG; i++)
        memcpy(req + 4 * i, "big\n", 4);
    f->srv = listen_or_fail(f, 0600);
    heap0 = heap_in_use();
    int fd = client_connect(f);
    tu_send_all(f->loop, fd, req, sizeof(req));
    for (int i = 0; i < 2000; i++) {
        tu_spin(f->loop, -1, 0);
        size_t h = heap_in_use();
        heap_max = h > heap_max ? h : heap_max;
    }
    stats_get_counters(f->srv, &c);
    assert_true(c.commands >= 1);
    assert_true(c.commands <= 2);
    assert_true(heap_max - heap0 < 3 * BIG_SIZE);

    /* Now read everything: 500 complete answers, heap still bounded. */
    for (double end = tu_now_s() + 60; got < want;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            fail_msg("EOF after %zu of %zu bytes", got, want);
        assert_int_equal(errno, EAGAIN);
        if (tu_now_s() > end)
            fail_msg("timed out after %zu of %zu bytes", got, want);
        ev_run(f->loop, EVRUN_NOWAIT);
        size_t h = heap_in_use();
        heap_max = h > heap_max ? h : heap_max;
    }
    assert_int_equal(got, want);
    assert_true(heap_max - heap0 < 3 * BIG_SIZE);
    stats_get_counters(f->srv, &c);
    assert_int_equal(c.commands, NBIG);
    close(fd);
}

static void
test_close_removes_file(void **state)
{
    struct fix *f = *state;
    struct stat st;
    int fds[3];
    char b;

    stats_close(NULL);
    f->srv = listen_or_fail(f, 0600);
    for (int i = 0; i < 3; i++)
        fds[i] = client_connect(f);
    wait_clients(f, 3);
    /* One client with an answer pending. */
    tu_send_all(f->loop, fds[0], "big\n", 4);
    for (int i = 0; i < 50; i++)
        tu_spin(f->loop, -1, 0);
    assert_int_equal(lstat(f->path, &st), 0);
    stats_close(f->srv);
    f->srv = NULL;
    assert_int_equal(lstat(f->path, &st), -1);
    assert_int_equal(errno, ENOENT);
    /* Every client sees its connection end. */
    for (int i = 1; i < 3; i++)
        assert_int_equal(recv(fds[i], &b, 1, 0), 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    /* The loop has nothing left to run. */
    assert_int_equal(ev_run(f->loop, 0), 0);
}

/* stats_close() leaves alone a file that replaced ours. */
static void
test_close_spares_foreign_file(void **state)
{
    struct fix *f = *state;
    struct stat st;

    f->srv = listen_or_fail(f, 0600);
    assert_int_equal(unlink(f->path), 0);
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fclose(fp);
    stats_close(f->srv);
    f->srv = NULL;
    assert_int_equal(lstat(f->path, &st), 0);
}

/*
 * Out of file descriptors, the server pauses accepting instead of spinning: a blocking loop
 * iteration then waits for the pause timer, and the pending client is served afterwards.
 */
static void
test_accept_emfile(void **state)
{
    struct fix *f = *state;
    struct rlimit rl, low;
    struct sbuf out = {0};
    const char *preload = getenv("LD_PRELOAD");

    /* Valgrind emulates the fd limit by accepting, then closing the fd itself. */
    if (preload != NULL && strstr(preload, "vgpreload") != NULL)
        skip();
    f->srv = listen_or_fail(f, 0600);
    int fd = client_connect(f);
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(probe >= 0);
    close(probe);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    low = rl;
    low.rlim_cur = (rlim_t)probe; /* the next fd the server would get is out of range */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    double t0 = tu_now_s();
    for (int i = 0; i < 3; i++)
        ev_run(f->loop, EVRUN_ONCE);
    double elapsed = tu_now_s() - t0;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(elapsed > 0.3);
    tu_send_all(f->loop, fd, "back\n", 5);
    assert_int_equal(tu_recv_until(f->loop, fd, &out, "\n\n"), 1);
    assert_string_equal(out.buf, "ok back\n\n");
    close(fd);
    sbuf_free(&out);
}

/*
 * Sends BYTE every STEP seconds on FD, running the loop, until the server closes FD (EOF or
 * EPIPE) or LIMIT seconds pass. Returns the seconds it took, or -1 if FD stayed open.
 */
static double
dribble_until_closed(struct fix *f, int fd, char byte, double step, double limit)
{
    double t0 = tu_now_s(), next = t0;

    while (tu_now_s() - t0 < limit) {
        if (tu_now_s() >= next) {
            if (send(fd, &byte, 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
                return tu_now_s() - t0;
            next += step;
        }
        ev_run(f->loop, EVRUN_NOWAIT);
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            return tu_now_s() - t0;
        usleep(1000);
    }
    return -1;
}

/* A client dribbling bytes without a newline is closed when the idle limit ends, however
 * many bytes it sends meanwhile: bytes alone are no progress. */
static void
test_dribbler_cut_off(void **state)
{
    struct fix *f = *state;
    struct stats_server_counters c;

    f->srv = listen_or_fail(f, 0600);
    stats_set_limits(f->srv, 0.3, 0);
    int fd = client_connect(f);
    double took = dribble_until_closed(f, fd, 'x', 0.02, 3.0);
    close(fd);
    if (took < 0.25 || took > 0.8)
        fail_msg("dribbler closed after %.3f s, limit 0.3 s", took);
    wait_clients(f, 0);
    stats_get_counters(f->srv, &c);
    assert_int_equal(c.idle_closed, 1);
    assert_int_equal(c.commands, 0);
}

/* Empty lines are no commands: a client sending only those is cut off too. */
static void
test_empty_lines_are_no_progress(void **state)
{
    struct fix *f = *state;

    f->srv = listen_or_fail(f, 0600);
    stats_set_limits(f->srv, 0.3, 0);
    int fd = client_connect(f);
    double took = dribble_until_closed(f, fd, '\n', 0.02, 3.0);
    close(fd);
    if (took < 0.25 || took > 0.8)
        fail_msg("client sending empty lines closed after %.3f s, limit 0.3 s", took);
}

/* Each complete command restarts the limit: a client that keeps asking stays connected,
 * and is closed one limit after its last command, even with a partial line pending. */
static void
test_complete_lines_restart_the_limit(void **state)
{
    struct fix *f = *state;
    struct sbuf out = {0};

    f->srv = listen_or_fail(f, 0600);
    stats_set_limits(f->srv, 0.3, 0);
    int fd = client_connect(f);
    for (int i = 0; i < 8; i++) { /* 8 x 0.1 s: well past one limit */
        sbuf_reset(&out);
        tu_send_all(f->loop, fd, "hi\n", 3);
        assert_int_equal(tu_recv_until(f->loop, fd, &out, "\n\n"), 1);
        assert_string_equal(out.buf, "ok hi\n\n");
        tu_run_for(f->loop, 0.1);
    }
    double t0 = tu_now_s();
    tu_send_all(f->loop, fd, "partial", 7);
    sbuf_reset(&out);
    assert_int_equal(tu_recv_until(f->loop, fd, &out, NULL), 0);
    double took = tu_now_s() - t0;
    if (took < 0.15 || took > 0.8)
        fail_msg("closed %.3f s after the last command, limit 0.3 s", took);
    assert_int_equal(out.len, 0);
    sbuf_free(&out);
    close(fd);
}

/*
 * With every slot taken, a new client closes the one that has waited longest without a
 * command (once it waited evict_after), and is served; one that asked recently is spared.
 * Before anyone waited that long, the newcomer is the one closed.
 */
static void
test_full_evicts_longest_idle(void **state)
{
    struct fix *f = *state;
    struct stats_server_counters c;
    enum { N = STATS_MAX_CLIENTS };
    int fds[N];
    struct rlimit rl;
    struct sbuf out = {0};
    char b;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * N + 64) {
        rl.rlim_cur = rl.rlim_max < 4 * N ? rl.rlim_max : 4 * N;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    f->srv = listen_or_fail(f, 0600);
    stats_set_limits(f->srv, 30.0, 0.4);
    for (int i = 0; i < N; i++)
        fds[i] = client_connect(f);
    wait_clients(f, N);
    /* All fresh: a newcomer is turned away. */
    int early = client_connect(f);
    assert_int_equal(tu_recv_until(f->loop, early, &out, NULL), 0);
    close(early);
    stats_get_counters(f->srv, &c);
    assert_int_equal(c.clients_rejected, 1);
    assert_int_equal(c.clients_evicted, 0);
    /* fds[0] dribbles (no progress), fds[1] asks: fds[0] is then the longest idle. */
    tu_send_all(f->loop, fds[0], "x", 1);
    tu_run_for(f->loop, 0.45);
    tu_send_all(f->loop, fds[1], "hi\n", 3);
    assert_int_equal(tu_recv_until(f->loop, fds[1], &out, "\n\n"), 1);
    sbuf_reset(&out);
    int late = client_connect(f);
    tu_send_all(f->loop, late, "hi\n", 3);
    assert_int_equal(tu_recv_until(f->loop, late, &out, "\n\n"), 1);
    assert_string_equal(out.buf, "ok hi\n\n");
    stats_get_counters(f->srv, &c);
    assert_int_equal(c.clients_evicted, 1);
    assert_int_equal(c.clients, N);
    assert_int_equal(recv(fds[0], &b, 1, 0), 0);  /* the dribbler went */
    assert_int_equal(recv(fds[1], &b, 1, 0), -1); /* the asker stays */
    assert_int_equal(errno, EAGAIN);
    sbuf_free(&out);
    close(late);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    wait_clients(f, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_longest_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_long_after_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_long_endless_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_socket_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_socket_full_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regular_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_removes_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_spares_foreign_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept_emfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dribbler_cut_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_lines_are_no_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_lines_restart_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_evicts_longest_idle, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
