/* sockserv.c -- accepts, buffers, times out and closes the clients of a stream server on the loop.
 */
#include "sockserv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define SOCKSERV_ACCEPT_PAUSE 0.5 /* seconds without accepting after EMFILE/ENFILE */

/*
 * One connected client. Owner: its server, through the clients list; created by
 * on_accept(), released only by sockserv_close(), which stops the three watchers, closes fd
 * and frees the struct with out and the protocol's data.
 *
 * While out has unsent bytes, wr runs and rd does not. Once lingering, rd only discards
 * input and the timer is the linger deadline; the protocol is not called any more.
 */
struct sockserv_conn {
    TAILQ_ENTRY(sockserv_conn) link;
    struct sockserv *srv;   /* not owned */
    int fd;                 /* owned */
    ev_io rd;               /* conf.readable, or discarding while lingering */
    ev_io wr;               /* runs only while out has unsent bytes */
    ev_timer timer;         /* conf.timeout (conf.expired), or the linger deadline */
    struct sbuf out;        /* bytes to send; owned */
    size_t outpos;          /* bytes of out already sent */
    ev_tstamp progress;     /* accept, sockserv_touch() or write progress: for eviction */
    int lingering;          /* our side is shut down; input is discarded until EOF */
    size_t discarded;       /* bytes discarded while lingering */
    const char *linger_why; /* logged when the linger ends; static, not owned */
    max_align_t data[];     /* conf.data_size bytes of protocol state */
};

TAILQ_HEAD(sockserv_conn_list, sockserv_conn);

/*
 * The server. Owner: the protocol that called sockserv_start(); released by sockserv_free(),
 * which closes every client first, then stops accept_w and accept_pause, then closes fd.
 */
struct sockserv {
    struct ev_loop *loop; /* not owned */
    int fd;               /* listening socket, owned */
    struct sockserv_conf cf;
    void *ud; /* not owned */
    ev_io accept_w;
    ev_timer accept_pause; /* restarts accept_w after running out of file descriptors */
    int fd_warned;         /* fd exhaustion logged; cleared by the next successful accept */
    int full_warned;       /* cf.full_warning logged; cleared when a slot frees */
    struct sockserv_conn_list clients;
    struct sockserv_counters ctr;
};

void
sockserv_close(struct sockserv_conn *c, const char *why)
{
    struct sockserv *s = c->srv;

    if (why != NULL)
        log_debug(s->cf.tag, "closing client fd %d: %s", c->fd, why);
    if (s->cf.closing != NULL)
        s->cf.closing(c, s->ud);
    ev_io_stop(s->loop, &c->rd);
    ev_io_stop(s->loop, &c->wr);
    ev_timer_stop(s->loop, &c->timer);
    close(c->fd);
    sbuf_free(&c->out);
    TAILQ_REMOVE(&s->clients, c, link);
    s->ctr.clients--;
    if (s->ctr.clients < s->cf.max_clients)
        s->full_warned = 0;
    free(c);
}

/*
 * Closing at once with unread input would make the kernel report a reset to the client, which
 * may then lose the last answer; so shut down our side (the client reads the answer, then EOF)
 * and discard what it still sends until its EOF, within the time and byte limits.
 */
void
sockserv_linger(struct sockserv_conn *c, const char *why)
{
    struct ev_loop *loop = c->srv->loop;

    c->linger_why = why;
    if (shutdown(c->fd, SHUT_WR) < 0) {
        sockserv_close(c, why);
        return;
    }
    c->lingering = 1;
    c->timer.repeat = c->srv->cf.linger_time;
    ev_timer_again(loop, &c->timer);
    ev_io_stop(loop, &c->wr);
    ev_io_start(loop, &c->rd);
}

/* Discards input from a lingering client; closes it at EOF, on error or past the limit. */
static void
conn_discard(struct sockserv_conn *c)
{
    size_t max = c->srv->cf.linger_max;
    char scratch[4096];
    ssize_t n;

    for (int i = 0; i < 16; i++) {
        n = recv(c->fd, scratch, sizeof(scratch), 0);
        if (n > 0) {
            c->discarded += (size_t)n;
            if (c->discarded > max)
                break;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        break;
    }
    if (n > 0 && c->discarded <= max)
        return; /* more next time: do not hog the loop */
    sockserv_close(c, c->linger_why);
}

int
sockserv_flush(struct sockserv_conn *c)
{
    struct ev_loop *loop = c->srv->loop;

    while (c->outpos < c->out.len) {
        ssize_t n = send(c->fd, c->out.buf + c->outpos, c->out.len - c->outpos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->outpos += (size_t)n;
            c->progress = ev_now(loop);
            ev_timer_again(loop, &c->timer);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_stop(loop, &c->rd);
            ev_io_start(loop, &c->wr);
            return 0;
        }
        sockserv_close(c, n < 0 ? strerror(errno) : "short send");
        return -1;
    }
    /* All sent: keep a small buffer for the next answer, give a big one back. */
    ev_io_stop(loop, &c->wr);
    c->outpos = 0;
    if (c->out.cap > c->srv->cf.out_keep)
        sbuf_free(&c->out);
    else
        sbuf_reset(&c->out);
    return 1;
}

ssize_t
sockserv_recv(struct sockserv_conn *c, void *buf, size_t len)
{
    ssize_t n = recv(c->fd, buf, len, 0);

    if (n >= 0)
        return n;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        sockserv_close(c, strerror(errno));
    return -1;
}

void
sockserv_read_start(struct sockserv_conn *c)
{
    ev_io_start(c->srv->loop, &c->rd);
}

void
sockserv_read_stop(struct sockserv_conn *c)
{
    ev_io_stop(c->srv->loop, &c->rd);
}

void
sockserv_touch(struct sockserv_conn *c)
{
    c->progress = ev_now(c->srv->loop);
    ev_timer_again(c->srv->loop, &c->timer);
}

void *
sockserv_data(struct sockserv_conn *c)
{
    return c->data;
}

int
sockserv_fd(const struct sockserv_conn *c)
{
    return c->fd;
}

struct sbuf *
sockserv_out(struct sockserv_conn *c)
{
    return &c->out;
}

static void
on_conn_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sockserv_conn *c = w->data;

    (void)loop;
    (void)revents;
    if (c->lingering)
        conn_discard(c);
    else
        c->srv->cf.readable(c, c->srv->ud);
}

static void
on_conn_write(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sockserv_conn *c = w->data;

    (void)loop;
    (void)revents;
    if (sockserv_flush(c) == 1)
        c->srv->cf.sent(c, c->srv->ud);
}

static void
on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sockserv_conn *c = w->data;

    (void)loop;
    (void)revents;
    if (c->lingering)
        sockserv_close(c, c->linger_why);
    else
        c->srv->cf.expired(c, c->srv->ud);
}

/* Takes ownership of FD, a connected non-blocking socket, as a new client. */
static void
conn_new(struct sockserv *s, int fd)
{
    struct sockserv_conn *c = xcalloc(1, sizeof(*c) + s->cf.data_size);

    c->srv = s;
    c->fd = fd;
    ev_io_init(&c->rd, on_conn_read, fd, EV_READ);
    c->rd.data = c;
    ev_io_init(&c->wr, on_conn_write, fd, EV_WRITE);
    c->wr.data = c;
    ev_init(&c->timer, on_conn_timer);
    c->timer.repeat = s->cf.timeout;
    c->timer.data = c;
    c->progress = ev_now(s->loop);
    TAILQ_INSERT_TAIL(&s->clients, c, link);
    s->ctr.clients++;
    ev_timer_again(s->loop, &c->timer);
    ev_io_start(s->loop, &c->rd);
}

static void
on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sockserv *s = w->data;

    (void)revents;
    ev_io_start(loop, &s->accept_w);
}

/* Stops accepting for a while, so a persistent accept error cannot spin the loop. */
static void
accept_pause(struct sockserv *s, int errnum)
{
    if (!s->fd_warned)
        log_warn(s->cf.tag, "accept on %s: %s; pausing new connections", s->cf.name,
                 strerror(errnum));
    s->fd_warned = 1;
    ev_io_stop(s->loop, &s->accept_w);
    ev_timer_set(&s->accept_pause, SOCKSERV_ACCEPT_PAUSE, 0.0);
    ev_timer_start(s->loop, &s->accept_pause);
}

/*
 * Makes room for a new client when max_clients are connected, by closing the client that
 * has waited longest for input without progress, if that is at least cf.evict_after. Only
 * clients waiting for input are candidates: not one being answered, nor one lingering (it
 * ends soon by itself). So a few hundred clients that connect and dribble (or say nothing)
 * cannot turn away an operator for their whole idle timeout, while a burst of fresh ones
 * cannot push out each other. Returns 1 if a client was closed.
 */
static int
evict_one(struct sockserv *s)
{
    struct sockserv_conn *c, *oldest = NULL;
    ev_tstamp limit = ev_now(s->loop) - s->cf.evict_after;

    if (s->cf.evict_after <= 0)
        return 0;
    TAILQ_FOREACH (c, &s->clients, link) {
        if (c->lingering || c->outpos < c->out.len || c->progress > limit)
            continue;
        if (oldest == NULL || c->progress < oldest->progress)
            oldest = c;
    }
    if (oldest == NULL)
        return 0;
    s->ctr.evicted++;
    sockserv_close(oldest, "no progress, closed to make room for a new client");
    return 1;
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sockserv *s = w->data;

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
        s->ctr.accepted++;
        if (s->ctr.clients >= s->cf.max_clients) {
            int warned = s->full_warned; /* an eviction frees a slot, but still full */
            int evicted = evict_one(s);
            if (!warned)
                log_warn(s->cf.tag, "%s", s->cf.full_warning);
            s->full_warned = 1;
            if (!evicted) {
                close(fd);
                s->ctr.rejected++;
                continue;
            }
        }
        conn_new(s, fd);
    }
}

int
sockserv_listen_fd(const struct sockserv *s)
{
    return s->fd;
}

struct sockserv *
sockserv_start(struct ev_loop *loop, int fd, const struct sockserv_conf *cf, void *ud)
{
    struct sockserv *s = xcalloc(1, sizeof(*s));

    s->loop = loop;
    s->fd = fd;
    s->cf = *cf;
    s->ud = ud;
    TAILQ_INIT(&s->clients);
    ev_io_init(&s->accept_w, on_accept, fd, EV_READ);
    s->accept_w.data = s;
    ev_init(&s->accept_pause, on_accept_pause);
    s->accept_pause.data = s;
    ev_io_start(loop, &s->accept_w);
    return s;
}

void
sockserv_set_limits(struct sockserv *s, double timeout, double evict_after)
{
    s->cf.timeout = timeout;
    s->cf.evict_after = evict_after;
}

void
sockserv_get_counters(const struct sockserv *s, struct sockserv_counters *out)
{
    *out = s->ctr;
}

void
sockserv_free(struct sockserv *s)
{
    struct sockserv_conn *c;

    if (s == NULL)
        return;
    while ((c = TAILQ_FIRST(&s->clients)) != NULL)
        sockserv_close(c, NULL);
    ev_io_stop(s->loop, &s->accept_w);
    ev_timer_stop(s->loop, &s->accept_pause);
    close(s->fd);
    free(s);
}
