/* stats.c -- the stats socket: a non-blocking line-oriented unix stream server on the loop. */
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sockserv.h"

#define STATS_OUT_KEEP   (64 * 1024)   /* output capacity kept by a client between answers */
#define STATS_LINGER     2.0           /* seconds to discard input after a line too long */
#define STATS_LINGER_MAX (1024 * 1024) /* bytes discarded before giving up on a clean close */

static const char too_long_answer[] = "{\"error\":\"line too long\"}\n\n";

/*
 * One client's protocol state, inside its sockserv connection (sockserv_data()), which owns
 * it and frees it with the connection; the connection holds the fd, watchers, timer and the
 * output buffer.
 *
 * Flow control: a line is answered only while the output is empty, and the client is read
 * only while the output is empty, so a client that pipelines commands and never reads costs
 * at most one answer plus one input buffer.
 */
struct stats_client {
    struct stats_peer peer;      /* read at the first command (SO_PEERCRED is the connector's) */
    int peer_read;               /* peer has been asked of the kernel */
    size_t inlen;                /* bytes in in[] */
    int eof;                     /* the client shut down its side: read no more */
    int closing;                 /* linger as soon as the output is sent (after a line too long) */
    int deferred;                /* its answer comes later (stats_defer): neither read nor timed */
    char in[STATS_LINE_MAX + 1]; /* received bytes not yet answered: at most one line and LF */
};

/*
 * The server. Owner: the caller of stats_listen(); released by stats_close(), which frees ss
 * (every client, then the listening socket) first, then removes the socket file it created.
 */
struct stats_server {
    struct sockserv *ss; /* the listener and its clients; owned */
    char *path;          /* owned */
    dev_t dev;           /* identity of the socket file we created, so that stats_close() */
    ino_t ino;           /* never removes a file someone else put there meanwhile */
    stats_answer_fn answer;
    void *ud;
    struct sockserv_conn *current;    /* the client being answered, during the answer call */
    struct sockserv_conn *deferred;   /* the client whose answer is deferred, or NULL */
    struct stats_server_counters ctr; /* the protocol's; the connection counts are in ss */
    char full_warning[96];            /* borrowed by ss */
};

/* Answers LINE (LEN bytes, NUL-terminated at LEN) unless it is empty once a CR is dropped. */
static void
client_answer(struct stats_server *s, struct sockserv_conn *c, char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if (len == 0)
        return; /* an empty line is no command: it does not keep the client alive */
    /* A complete command restarts the idle limit; bytes alone never do (a dribbler). */
    sockserv_touch(c);
    /* A NUL inside the line would cut the command short: make it visible as '?' instead. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\0')
            line[i] = '?';
    /*
     * The credentials the kernel recorded at connect(), whenever they are asked for: so once,
     * at the first command, rather than at accept for every client that never sends one.
     */
    struct stats_client *sc = sockserv_data(c);
    if (!sc->peer_read) {
        struct ucred uc;
        socklen_t ulen = sizeof(uc);
        sc->peer_read = 1;
        if (getsockopt(sockserv_fd(c), SOL_SOCKET, SO_PEERCRED, &uc, &ulen) == 0 &&
            ulen == sizeof(uc)) {
            sc->peer.known = 1;
            sc->peer.pid = uc.pid;
            sc->peer.uid = uc.uid;
            sc->peer.gid = uc.gid;
        }
    }
    s->current = c; /* stats_defer() may be called by the answer */
    s->answer(s->ud, &sc->peer, line, sockserv_out(c));
    s->current = NULL;
    s->ctr.commands++;
}

/*
 * Takes at most one unit of work from the input buffer:
 *   1. a complete line: answered, and removed with its LF;
 *   2. a full buffer without LF: the line is too long; answer the error, drop the input
 *      and mark the client for closing;
 *   3. after EOF, a last line without LF: answered like a complete one (so that
 *      `printf stats | socat - UNIX-CONNECT:...` works).
 * Returns 1 if it did something, 0 if it needs more input.
 */
static int
client_take_line(struct stats_server *s, struct sockserv_conn *c)
{
    struct stats_client *sc = sockserv_data(c);
    char *lf = memchr(sc->in, '\n', sc->inlen);

    if (lf != NULL) {
        size_t len = (size_t)(lf - sc->in);
        *lf = '\0';
        client_answer(s, c, sc->in, len);
        sc->inlen -= len + 1;
        memmove(sc->in, lf + 1, sc->inlen);
        return 1;
    }
    if (sc->inlen == sizeof(sc->in)) {
        sbuf_add(sockserv_out(c), too_long_answer, sizeof(too_long_answer) - 1);
        s->ctr.lines_too_long++;
        sc->inlen = 0;
        sc->closing = 1;
        return 1;
    }
    if (sc->eof && sc->inlen > 0) {
        sc->in[sc->inlen] = '\0'; /* inlen < sizeof(in) here */
        client_answer(s, c, sc->in, sc->inlen);
        sc->inlen = 0;
        return 1;
    }
    return 0;
}

/*
 * Moves a client forward as far as it can without blocking: send pending output; once it is
 * all sent, answer the next buffered line; when no complete line is left, read again, or
 * close after EOF or a line too long. Also sockserv's "all sent" callback. May free C.
 */
static void
client_pump(struct sockserv_conn *c, void *ud)
{
    struct stats_client *sc = sockserv_data(c);

    for (;;) {
        if (sockserv_out(c)->len > 0 && sockserv_flush(c) <= 0)
            return; /* closed, or writing: sockserv calls us again once all is sent */
        if (sc->closing) {
            sockserv_linger(c, "line too long");
            return;
        }
        if (sc->deferred) {
            sockserv_read_stop(c); /* stats_complete() pumps it again */
            return;
        }
        if (client_take_line(ud, c))
            continue;
        if (sc->eof) {
            sockserv_close(c, NULL);
            return;
        }
        sockserv_read_start(c);
        return;
    }
}

static void
client_read(struct sockserv_conn *c, void *ud)
{
    struct stats_client *sc = sockserv_data(c);
    ssize_t n;

    /* The client is read only when in[] lacks a complete line, so it is never full. */
    n = sockserv_recv(c, sc->in + sc->inlen, sizeof(sc->in) - sc->inlen);
    if (n < 0)
        return;
    if (n > 0) {
        sc->inlen += (size_t)n;
    } else {
        sc->eof = 1;
        sockserv_read_stop(c);
    }
    client_pump(c, ud);
}

static void
client_idle(struct sockserv_conn *c, void *ud)
{
    struct stats_server *s = ud;
    struct stats_client *sc = sockserv_data(c);

    if (sc->deferred) {
        sockserv_touch(c); /* waiting for us, not idle */
        return;
    }
    s->ctr.idle_closed++;
    sockserv_close(c, "no complete command line in time");
}

static struct stats_server *serve(struct ev_loop *loop, int fd, const char *path,
                                  const struct stat *st, stats_answer_fn answer, void *ud);

static void
client_closing(struct sockserv_conn *c, void *ud)
{
    struct stats_server *s = ud;

    if (s->deferred == c)
        s->deferred = NULL;
    if (s->current == c)
        s->current = NULL;
}

int
stats_defer(struct stats_server *s)
{
    if (s->current == NULL || s->deferred != NULL)
        return -1;
    s->deferred = s->current;
    ((struct stats_client *)sockserv_data(s->deferred))->deferred = 1;
    return 0;
}

int
stats_complete(struct stats_server *s, const char *text)
{
    struct sockserv_conn *c = s->deferred;
    int rc;

    if (c == NULL)
        return -1;
    s->deferred = NULL;
    ((struct stats_client *)sockserv_data(c))->deferred = 0;
    sockserv_touch(c);
    sbuf_adds(sockserv_out(c), text);
    rc = sockserv_flush(c);
    if (rc > 0)
        client_pump(c, s); /* the next command, or EOF: as after any answer */
    return rc;
}

int
stats_listen_fd(const struct stats_server *s)
{
    return sockserv_listen_fd(s->ss);
}

/*
 * Makes PATH free for a new socket: absent, or a stale socket file that is then removed.
 * Returns 0, or -1 with the reason in ERR.
 */
static int
clear_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
    struct stat st;
    int fd, rc, saved;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket", path);
        return -1;
    }
    /* Non-blocking, so a listener with a full backlog answers EAGAIN instead of hanging us. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    saved = errno;
    close(fd);
    if (rc == 0 || saved == EAGAIN || saved == EINPROGRESS) {
        snprintf(err, errlen, "another process is listening on %s", path);
        return -1;
    }
    if (saved == ENOENT)
        return 0;
    if (saved != ECONNREFUSED) {
        snprintf(err, errlen, "cannot probe existing socket %s: %s", path, strerror(saved));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    log_debug("stats", "removed stale socket %s", path);
    return 0;
}

struct stats_server *
stats_listen(struct ev_loop *loop, const char *path, mode_t mode, gid_t group,
             stats_answer_fn answer, void *ud, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat st;
    mode_t old_umask;
    int fd, rc;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (path[0] == '\0') {
        snprintf(err, errlen, "empty stats socket path");
        return NULL;
    }
    if (util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
        snprintf(err, errlen, "stats socket path too long (max %zu bytes): %s",
                 sizeof(sun.sun_path) - 1, path);
        return NULL;
    }
    if (clear_stale(path, &sun, err, errlen) < 0)
        return NULL;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    /* The file is born with at most MODE's permission bits, then set to MODE exactly. */
    old_umask = umask(~mode & 0777);
    rc = bind(fd, (const struct sockaddr *)&sun, sizeof(sun));
    umask(old_umask);
    if (rc < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        goto fail_close;
    }
    if (chmod(path, mode) < 0) {
        snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    /* Before listen(): nobody connects while the file still has the process's group. */
    if (group != (gid_t)-1 && chown(path, (uid_t)-1, group) < 0) {
        int saved = errno;
        snprintf(err, errlen, "cannot give %s to group %u: %s%s", path, (unsigned)group,
                 strerror(saved),
                 saved == EPERM ? " (the agent must be a member of stats_socket_group)" : "");
        goto fail_unlink;
    }
    if (lstat(path, &st) < 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    if (listen(fd, SOCKSERV_BACKLOG) < 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        goto fail_unlink;
    }

    log_debug("stats", "listening on %s mode %04o", path, (unsigned)mode);
    return serve(loop, fd, path, &st, answer, ud);

fail_unlink:
    unlink(path);
fail_close:
    close(fd);
    return NULL;
}

/* The server of the listening socket FD (taken) at PATH, whose file is ST. */
static struct stats_server *
serve(struct ev_loop *loop, int fd, const char *path, const struct stat *st, stats_answer_fn answer,
      void *ud)
{
    struct stats_server *s = xcalloc(1, sizeof(*s));
    s->path = xstrdup(path);
    s->dev = st->st_dev;
    s->ino = st->st_ino;
    s->answer = answer;
    s->ud = ud;
    snprintf(s->full_warning, sizeof(s->full_warning),
             "%d clients connected: closing idle ones, else refusing new ones", STATS_MAX_CLIENTS);
    const struct sockserv_conf cf = {
        .tag = "stats",
        .name = s->path,
        .full_warning = s->full_warning,
        .max_clients = STATS_MAX_CLIENTS,
        .evict_after = STATS_EVICT_AFTER,
        .timeout = STATS_IDLE_TIMEOUT,
        .data_size = sizeof(struct stats_client),
        .out_keep = STATS_OUT_KEEP,
        .linger_time = STATS_LINGER,
        .linger_max = STATS_LINGER_MAX,
        .readable = client_read,
        .sent = client_pump,
        .expired = client_idle,
        .closing = client_closing,
    };
    s->ss = sockserv_start(loop, fd, &cf, s);
    return s;
}

struct stats_server *
stats_adopt(struct ev_loop *loop, int fd, const char *path, stats_answer_fn answer, void *ud,
            char *err, size_t errlen)
{
    struct sockaddr_un sun;
    socklen_t len = sizeof(sun);
    struct stat st;
    int listening = 0, flags;
    socklen_t optlen = sizeof(listening);

    memset(&sun, 0, sizeof(sun));
    if (getsockname(fd, (struct sockaddr *)&sun, &len) < 0 || sun.sun_family != AF_UNIX ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) < 0 || !listening) {
        snprintf(err, errlen, "inherited fd %d is not a listening unix socket", fd);
        goto fail;
    }
    if (len <= offsetof(struct sockaddr_un, sun_path) ||
        strncmp(sun.sun_path, path, sizeof(sun.sun_path)) != 0) {
        snprintf(err, errlen, "inherited stats socket is not %s", path);
        goto fail;
    }
    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "inherited stats socket %s: the file is gone", path);
        goto fail;
    }
    if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "inherited stats socket: fcntl: %s", strerror(errno));
        goto fail;
    }
    log_debug("stats", "listening on %s (inherited fd %d)", path, fd);
    return serve(loop, fd, path, &st, answer, ud);

fail:
    close(fd);
    return NULL;
}

void
stats_get_counters(const struct stats_server *s, struct stats_server_counters *out)
{
    struct sockserv_counters sc;

    sockserv_get_counters(s->ss, &sc);
    *out = s->ctr;
    out->clients = sc.clients;
    out->clients_total = sc.accepted;
    out->clients_rejected = sc.rejected;
    out->clients_evicted = sc.evicted;
}

void
stats_set_limits(struct stats_server *s, double idle_timeout, double evict_after)
{
    sockserv_set_limits(s->ss, idle_timeout, evict_after);
}

void
stats_close(struct stats_server *s)
{
    struct stat st;

    if (s == NULL)
        return;
    sockserv_free(s->ss);
    if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
    free(s->path);
    free(s);
}
