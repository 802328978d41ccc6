/* stats.c -- the stats socket: a non-blocking line-oriented unix stream server on the loop. */
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define STATS_BACKLOG      128
#define STATS_ACCEPT_PAUSE 0.5           /* seconds without accepting after EMFILE/ENFILE */
#define STATS_OUT_KEEP     (64 * 1024)   /* output capacity kept by a client between answers */
#define STATS_LINGER       2.0           /* seconds to discard input after a line too long */
#define STATS_LINGER_MAX   (1024 * 1024) /* bytes discarded before giving up on a clean close */

static const char too_long_answer[] = "{\"error\":\"line too long\"}\n\n";

/*
 * One connected client. Owner: its server, through the clients list; created by
 * on_accept(), released only by client_close(), which stops the three watchers, closes fd
 * and frees the struct.
 *
 * Flow control: a line is answered only while out is empty, and the read watcher runs only
 * while out is empty, so a client that pipelines commands and never reads costs at most
 * one answer plus one input buffer.
 */
struct stats_client {
    TAILQ_ENTRY(stats_client) link;
    struct stats_server *srv;    /* not owned */
    int fd;                      /* owned */
    ev_io rd;                    /* runs only while out is empty and the client has not sent EOF */
    ev_io wr;                    /* runs only while out has unsent bytes */
    ev_timer idle;               /* STATS_IDLE_TIMEOUT, re-armed on every byte read or written */
    struct sbuf out;             /* answers not yet sent; owned, freed by client_close() */
    size_t outpos;               /* bytes of out already sent */
    size_t inlen;                /* bytes in in[] */
    int eof;                     /* the client shut down its side: read no more */
    int closing;                 /* linger as soon as out is sent (after a line too long) */
    int lingering;               /* our side is shut down; input is discarded until EOF */
    size_t discarded;            /* bytes discarded while lingering */
    char in[STATS_LINE_MAX + 1]; /* received bytes not yet answered: at most one line and LF */
};

TAILQ_HEAD(stats_client_list, stats_client);

/*
 * The server. Owner: the caller of stats_listen(); released by stats_close(), which closes
 * every client first, then the listener, then removes the socket file it created.
 */
struct stats_server {
    struct ev_loop *loop; /* not owned */
    int fd;               /* listening socket, owned */
    char *path;           /* owned */
    dev_t dev;            /* identity of the socket file we created, so that stats_close() */
    ino_t ino;            /* never removes a file someone else put there meanwhile */
    ev_io accept_w;
    ev_timer accept_pause; /* restarts accept_w after running out of file descriptors */
    int fd_warned;         /* fd exhaustion logged; cleared by the next successful accept */
    int full_warned;       /* STATS_MAX_CLIENTS logged; cleared when a slot frees */
    stats_answer_fn answer;
    void *ud;
    struct stats_client_list clients;
    struct stats_server_counters ctr;
};

static void
client_close(struct stats_client *c, const char *why)
{
    struct stats_server *s = c->srv;

    if (why != NULL)
        log_debug("stats", "closing client fd %d: %s", c->fd, why);
    ev_io_stop(s->loop, &c->rd);
    ev_io_stop(s->loop, &c->wr);
    ev_timer_stop(s->loop, &c->idle);
    close(c->fd);
    sbuf_free(&c->out);
    TAILQ_REMOVE(&s->clients, c, link);
    s->ctr.clients--;
    if (s->ctr.clients < STATS_MAX_CLIENTS)
        s->full_warned = 0;
    free(c);
}

/*
 * Ends a client that sent a line too long once its answer is sent. Closing at once with
 * unread input would make the kernel report a reset to the client, which may then lose the
 * answer; so shut down our side (the client reads the answer, then EOF) and discard what it
 * still sends until its EOF, for at most STATS_LINGER seconds and STATS_LINGER_MAX bytes.
 */
static void
client_linger(struct stats_client *c)
{
    struct ev_loop *loop = c->srv->loop;

    if (shutdown(c->fd, SHUT_WR) < 0) {
        client_close(c, "line too long");
        return;
    }
    c->lingering = 1;
    c->idle.repeat = STATS_LINGER;
    ev_timer_again(loop, &c->idle);
    ev_io_stop(loop, &c->wr);
    ev_io_start(loop, &c->rd);
}

/* Discards input from a lingering client; closes it at EOF, on error or past the limits. */
static void
client_discard(struct stats_client *c)
{
    char scratch[4096];
    ssize_t n;

    for (int i = 0; i < 16; i++) {
        n = recv(c->fd, scratch, sizeof(scratch), 0);
        if (n > 0) {
            c->discarded += (size_t)n;
            if (c->discarded > STATS_LINGER_MAX)
                break;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        break;
    }
    if (n > 0 && c->discarded <= STATS_LINGER_MAX)
        return; /* more next time: do not hog the loop */
    client_close(c, "line too long");
}

/*
 * Sends what it can of out without blocking. Returns 0 (out may still hold bytes), or -1
 * after closing the client on a write error.
 */
static int
client_flush(struct stats_client *c)
{
    while (c->outpos < c->out.len) {
        ssize_t n = send(c->fd, c->out.buf + c->outpos, c->out.len - c->outpos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->outpos += (size_t)n;
            ev_timer_again(c->srv->loop, &c->idle);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        client_close(c, n < 0 ? strerror(errno) : "short send");
        return -1;
    }
    /* All sent: keep a small buffer for the next answer, give a big one back. */
    c->outpos = 0;
    if (c->out.cap > STATS_OUT_KEEP)
        sbuf_free(&c->out);
    else
        sbuf_reset(&c->out);
    return 0;
}

/* Answers LINE (LEN bytes, NUL-terminated at LEN) unless it is empty once a CR is dropped. */
static void
client_answer(struct stats_client *c, char *line, size_t len)
{
    struct stats_server *s = c->srv;

    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if (len == 0)
        return;
    /* A NUL inside the line would cut the command short: make it visible as '?' instead. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\0')
            line[i] = '?';
    s->answer(s->ud, line, &c->out);
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
client_take_line(struct stats_client *c)
{
    char *lf = memchr(c->in, '\n', c->inlen);

    if (lf != NULL) {
        size_t len = (size_t)(lf - c->in);
        *lf = '\0';
        client_answer(c, c->in, len);
        c->inlen -= len + 1;
        memmove(c->in, lf + 1, c->inlen);
        return 1;
    }
    if (c->inlen == sizeof(c->in)) {
        sbuf_add(&c->out, too_long_answer, sizeof(too_long_answer) - 1);
        c->srv->ctr.lines_too_long++;
        c->inlen = 0;
        c->closing = 1;
        return 1;
    }
    if (c->eof && c->inlen > 0) {
        c->in[c->inlen] = '\0'; /* inlen < sizeof(in) here */
        client_answer(c, c->in, c->inlen);
        c->inlen = 0;
        return 1;
    }
    return 0;
}

/*
 * Moves a client forward as far as it can without blocking: send pending output; once it is
 * all sent, answer the next buffered line; when no complete line is left, read again, or
 * close after EOF or a line too long. May free C.
 */
static void
client_pump(struct stats_client *c)
{
    struct ev_loop *loop = c->srv->loop;

    for (;;) {
        if (c->out.len > 0) {
            if (client_flush(c) < 0)
                return;
            if (c->out.len > 0) {
                ev_io_stop(loop, &c->rd);
                ev_io_start(loop, &c->wr);
                return;
            }
        }
        ev_io_stop(loop, &c->wr);
        if (c->closing) {
            client_linger(c);
            return;
        }
        if (client_take_line(c))
            continue;
        if (c->eof) {
            client_close(c, NULL);
            return;
        }
        ev_io_start(loop, &c->rd);
        return;
    }
}

static void
on_client_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct stats_client *c = w->data;
    ssize_t n;

    (void)loop;
    (void)revents;
    if (c->lingering) {
        client_discard(c);
        return;
    }
    /* The read watcher runs only when in[] lacks a complete line, so it is never full. */
    n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
    if (n > 0) {
        c->inlen += (size_t)n;
        ev_timer_again(c->srv->loop, &c->idle);
    } else if (n == 0) {
        c->eof = 1;
        ev_io_stop(c->srv->loop, &c->rd);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
    } else {
        client_close(c, strerror(errno));
        return;
    }
    client_pump(c);
}

static void
on_client_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    client_pump(w->data);
}

static void
on_client_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct stats_client *c = w->data;

    (void)loop;
    (void)revents;
    if (c->lingering) {
        client_close(c, "line too long");
        return;
    }
    c->srv->ctr.idle_closed++;
    client_close(c, "idle");
}

/* Takes ownership of FD, a connected non-blocking socket, as a new client. */
static void
client_new(struct stats_server *s, int fd)
{
    struct stats_client *c = xcalloc(1, sizeof(*c));

    c->srv = s;
    c->fd = fd;
    ev_io_init(&c->rd, on_client_read, fd, EV_READ);
    c->rd.data = c;
    ev_io_init(&c->wr, on_client_write, fd, EV_WRITE);
    c->wr.data = c;
    ev_init(&c->idle, on_client_idle);
    c->idle.repeat = STATS_IDLE_TIMEOUT;
    c->idle.data = c;
    TAILQ_INSERT_TAIL(&s->clients, c, link);
    s->ctr.clients++;
    ev_timer_again(s->loop, &c->idle);
    ev_io_start(s->loop, &c->rd);
}

static void
on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct stats_server *s = w->data;

    (void)revents;
    ev_io_start(loop, &s->accept_w);
}

/* Stops accepting for STATS_ACCEPT_PAUSE, so a persistent accept error cannot spin the loop. */
static void
accept_pause(struct stats_server *s, int errnum)
{
    if (!s->fd_warned)
        log_warn("stats", "accept on %s: %s; pausing new connections", s->path, strerror(errnum));
    s->fd_warned = 1;
    ev_io_stop(s->loop, &s->accept_w);
    ev_timer_set(&s->accept_pause, STATS_ACCEPT_PAUSE, 0.0);
    ev_timer_start(s->loop, &s->accept_pause);
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct stats_server *s = w->data;

    (void)loop;
    (void)revents;
    for (;;) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
#if EAGAIN != EWOULDBLOCK
            case EWOULDBLOCK:
#endif
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                continue;
            default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, or worse */
                accept_pause(s, errno);
                return;
            }
        }
        s->fd_warned = 0;
        s->ctr.clients_total++;
        if (s->ctr.clients >= STATS_MAX_CLIENTS) {
            close(fd);
            s->ctr.clients_rejected++;
            if (!s->full_warned)
                log_warn("stats", "%d clients connected: refusing new connections",
                         STATS_MAX_CLIENTS);
            s->full_warned = 1;
            continue;
        }
        client_new(s, fd);
    }
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
stats_listen(struct ev_loop *loop, const char *path, mode_t mode, stats_answer_fn answer, void *ud,
             char *err, size_t errlen)
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
    if (lstat(path, &st) < 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    if (listen(fd, STATS_BACKLOG) < 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        goto fail_unlink;
    }

    struct stats_server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->fd = fd;
    s->path = xstrdup(path);
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->answer = answer;
    s->ud = ud;
    TAILQ_INIT(&s->clients);
    ev_io_init(&s->accept_w, on_accept, fd, EV_READ);
    s->accept_w.data = s;
    ev_init(&s->accept_pause, on_accept_pause);
    s->accept_pause.data = s;
    ev_io_start(loop, &s->accept_w);
    log_debug("stats", "listening on %s mode %04o", path, (unsigned)mode);
    return s;

fail_unlink:
    unlink(path);
fail_close:
    close(fd);
    return NULL;
}

void
stats_get_counters(const struct stats_server *s, struct stats_server_counters *out)
{
    *out = s->ctr;
}

void
stats_close(struct stats_server *s)
{
    struct stats_client *c;
    struct stat st;

    if (s == NULL)
        return;
    while ((c = TAILQ_FIRST(&s->clients)) != NULL)
        client_close(c, NULL);
    ev_io_stop(s->loop, &s->accept_w);
    ev_timer_stop(s->loop, &s->accept_pause);
    close(s->fd);
    if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
    free(s->path);
    free(s);
}
