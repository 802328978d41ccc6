/* fuzz_stats.c -- libFuzzer target: the stats socket's command reader, through its public API.
 * A real stats_listen() on a temporary unix socket; each input is sent by one client, in
 * chunks cut where the input says, then the client shuts down its side and reads until the
 * server closes. An input whose second byte is 'D' is a dribbler instead: it never shuts down
 * its side, and the server must end the exchange by its idle limit (shortened to
 * DRIBBLE_IDLE), whatever partial line it holds. Checks: the server always ends the
 * exchange, every answer ends with an empty line, and the server is left with no client and
 * nothing leaked. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "stats.h"
#include "util.h"

#define DRIBBLE_IDLE 0.03 /* seconds: the idle limit for a dribbling input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ev_loop *loop;
static struct stats_server *srv;
static char sock_dir[64];
static char sock_path[108];
static uint64_t answered;

/* Answers like the agent does: one line naming the command, or an error, then an empty line. */
static void
answer(void *ud, const struct stats_peer *peer, const char *cmd, struct sbuf *out)
{
    (void)ud;
    (void)peer;
    answered++;
    if (strchr(cmd, '\n') != NULL)
        abort(); /* a command is one line */
    if (strcmp(cmd, "big") == 0) {
        for (int i = 0; i < 4096; i++) /* bigger than a socket buffer: exercises flow control */
            sbuf_adds(out, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        sbuf_adds(out, "\n\n");
        return;
    }
    sbuf_printf(out, "{\"error\":\"unknown command: %.*s\"}\n\n", 64, cmd);
}

static void
cleanup(void)
{
    stats_close(srv);
    ev_loop_destroy(loop);
    rmdir(sock_dir);
}

static void
setup(void)
{
    char err[256];

    util_strlcpy(sock_dir, "/tmp/fuzz-stats-XXXXXX", sizeof(sock_dir));
    if (mkdtemp(sock_dir) == NULL)
        abort();
    snprintf(sock_path, sizeof(sock_path), "%s/s", sock_dir);
    loop = ev_loop_new(EVFLAG_AUTO);
    srv = stats_listen(loop, sock_path, 0600, (gid_t)-1, answer, NULL, err, sizeof(err));
    if (srv == NULL) {
        fprintf(stderr, "stats_listen: %s\n", err);
        abort();
    }
    atexit(cleanup);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stats_server_counters ctr;
    static char rbuf[1 << 16];
    size_t sent = 0, got = 0, chunk;
    int fd, shut = 0, eof = 0;
    int dribble = size > 1 && data[1] == 'D';
    char last2[2] = {0, 0};

    if (srv == NULL)
        setup();
    /* The first byte picks the write chunk size, so that lines cross read boundaries. */
    chunk = size > 0 ? (size_t)data[0] * 7 + 1 : 1;
    if (dribble)
        stats_set_limits(srv, DRIBBLE_IDLE, 0);
    else
        stats_set_limits(srv, STATS_IDLE_TIMEOUT, STATS_EVICT_AFTER);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    util_strlcpy(sun.sun_path, sock_path, sizeof(sun.sun_path));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        abort();
    for (long iter = 0; !eof; iter++) {
        if (iter > 2000000)
            abort(); /* the server never ended the exchange */
        if (dribble && sent == size)
            usleep(100); /* wait for the idle limit without spinning */
        if (sent < size) {
            size_t n = size - sent < chunk ? size - sent : chunk;
            ssize_t w = send(fd, data + sent, n, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                sent = size; /* the server closed on us (line too long): stop sending */
        } else if (!shut && !dribble) {
            shutdown(fd, SHUT_WR);
            shut = 1;
        }
        ev_run(loop, EVRUN_NOWAIT);
        for (;;) {
            ssize_t r = recv(fd, rbuf, sizeof(rbuf), 0);
            if (r > 0) {
                got += (size_t)r;
                last2[0] = r >= 2 ? rbuf[r - 2] : last2[1];
                last2[1] = rbuf[r - 1];
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                eof = 1;
            break;
        }
    }
    close(fd);
    /* Everything received is whole answers: it ends with an empty line. */
    if (got > 0 && !(last2[0] == '\n' && last2[1] == '\n'))
        abort();
    /* Let the server notice the close, then it must hold no client. */
    for (int i = 0; i < 1000; i++) {
        stats_get_counters(srv, &ctr);
        if (ctr.clients == 0)
            break;
        ev_run(loop, EVRUN_NOWAIT);
    }
    stats_get_counters(srv, &ctr);
    if (ctr.clients != 0)
        abort();
    return 0;
}
