/* httpmetrics.c -- a tiny non-blocking HTTP/1.x server on the loop that serves GET /metrics. */
#include "httpmetrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define HTTP_BACKLOG      64
#define HTTP_ACCEPT_PAUSE 0.5         /* seconds without accepting after EMFILE/ENFILE */
#define HTTP_LINGER       2.0         /* seconds to wait for the client's EOF after the response */
#define HTTP_LINGER_MAX   (64 * 1024) /* bytes discarded before giving up on a clean close */
#define HTTP_METHOD_MAX   16

static const char metrics_type[] = "text/plain; version=0.0.4; charset=utf-8";
static const char plain_type[] = "text/plain; charset=utf-8";

/*
 * One connection, one request. Owner: its server, through the clients list; created by
 * on_accept(), released only by client_close(), which stops the three watchers, closes fd
 * and frees the struct (and out).
 *
 * Phases: reading the head (rd on, one HTTPMETRICS_TIMEOUT deadline for all of it, so a
 * client trickling bytes cannot hold a slot for long); writing the response (wr on while
 * bytes are unsent, the timer re-armed on each write progress); lingering (our side shut
 * down, input discarded until the client's EOF, so that closing never resets a connection
 * whose response the client has not read yet).
 */
struct http_client {
    TAILQ_ENTRY(http_client) link;
    struct httpmetrics *srv; /* not owned */
    int fd;                  /* owned */
    ev_io rd;
    ev_io wr;
    ev_timer timer;
    struct sbuf out;  /* the response; owned */
    size_t outpos;    /* bytes of out already sent */
    int responding;   /* the response is queued: read no more of the request */
    int lingering;    /* our side is shut down; input is discarded until EOF */
    size_t discarded; /* bytes discarded while lingering */
    size_t inlen;     /* bytes in in[] */
    char in[HTTPMETRICS_HEAD_MAX + 1];
};

TAILQ_HEAD(http_client_list, http_client);

/*
 * The server. Owner: the caller of httpmetrics_listen(); released by httpmetrics_close(),
 * which closes every client, then the listener.
 */
struct httpmetrics {
    struct ev_loop *loop;  /* not owned */
    int fd;                /* listening socket, owned */
    struct conf_addr addr; /* what it listens on */
    char name[CONF_HOST_MAX + 16];
    ev_io accept_w;
    ev_timer accept_pause; /* restarts accept_w after running out of file descriptors */
    int fd_warned;         /* fd exhaustion logged; cleared by the next successful accept */
    int full_warned;       /* HTTPMETRICS_MAX_CLIENTS logged; cleared when a slot frees */
    httpmetrics_body_fn body;
    void *ud;
    struct http_client_list clients;
    int nclients;
};

static void
client_close(struct http_client *c, const char *why)
{
    struct httpmetrics *s = c->srv;

    if (why != NULL)
        log_debug("metrics", "closing client fd %d: %s", c->fd, why);
    ev_io_stop(s->loop, &c->rd);
    ev_io_stop(s->loop, &c->wr);
    ev_timer_stop(s->loop, &c->timer);
    close(c->fd);
    sbuf_free(&c->out);
    TAILQ_REMOVE(&s->clients, c, link);
    s->nclients--;
    if (s->nclients < HTTPMETRICS_MAX_CLIENTS)
        s->full_warned = 0;
    free(c);
}

/* The whole response is sent: shut our side down and wait (briefly) for the client's EOF. */
static void
client_linger(struct http_client *c)
{
    struct ev_loop *loop = c->srv->loop;

    ev_io_stop(loop, &c->wr);
    if (shutdown(c->fd, SHUT_WR) < 0) {
        client_close(c, NULL);
        return;
    }
    c->lingering = 1;
    c->timer.repeat = HTTP_LINGER;
    ev_timer_again(loop, &c->timer);
    ev_io_start(loop, &c->rd);
}

/* Discards input from a lingering client; closes it at EOF, on error or past the limit. */
static void
client_discard(struct http_client *c)
{
    char scratch[4096];
    ssize_t n;

    for (int i = 0; i < 16; i++) {
        n = recv(c->fd, scratch, sizeof(scratch), 0);
        if (n > 0) {
            c->discarded += (size_t)n;
            if (c->discarded > HTTP_LINGER_MAX)
                break;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        break;
    }
    if (n > 0 && c->discarded <= HTTP_LINGER_MAX)
        return; /* more next time: do not hog the loop */
    client_close(c, NULL);
}

/* Sends what it can of the response without blocking; lingers once all of it is sent. */
static void
client_flush(struct http_client *c)
{
    struct ev_loop *loop = c->srv->loop;

    while (c->outpos < c->out.len) {
        ssize_t n = send(c->fd, c->out.buf + c->outpos, c->out.len - c->outpos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->outpos += (size_t)n;
            ev_timer_again(loop, &c->timer);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(loop, &c->wr);
            return;
        }
        client_close(c, n < 0 ? strerror(errno) : "short send");
        return;
    }
    client_linger(c);
}

static const char *
status_text(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Internal Server Error";
    }
}

/*
 * Queues the response CODE with BODY (BODYLEN bytes) of type CTYPE, headers only when
 * HEAD_ONLY, and starts sending it. The request is not read any further. May free C.
 */
static void
client_respond(struct http_client *c, int code, const char *ctype, const char *body, size_t bodylen,
               int head_only)
{
    char date[64];
    struct tm tm;
    time_t now = time(NULL);

    if (gmtime_r(&now, &tm) == NULL ||
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        date[0] = '\0';
    c->responding = 1;
    ev_io_stop(c->srv->loop, &c->rd);
    sbuf_printf(&c->out, "HTTP/1.1 %d %s\r\n", code, status_text(code));
    if (date[0] != '\0')
        sbuf_printf(&c->out, "Date: %s\r\n", date);
    sbuf_printf(&c->out, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, bodylen);
    if (code == 405)
        sbuf_adds(&c->out, "Allow: GET, HEAD\r\n");
    sbuf_adds(&c->out, "Cache-Control: no-store\r\nConnection: close\r\n\r\n");
    if (!head_only)
        sbuf_add(&c->out, body, bodylen);
    /* The client's timer now measures write progress, not the head's deadline. */
    c->timer.repeat = HTTPMETRICS_TIMEOUT;
    ev_timer_again(c->srv->loop, &c->timer);
    client_flush(c);
}

/* An error response with a one-line plain-text body. May free C. */
static void
client_error(struct http_client *c, int code, const char *msg)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", code, status_text(code), msg);

    log_debug("metrics", "client fd %d: %d %s", c->fd, code, msg);
    client_respond(c, code, plain_type, body, (size_t)n < sizeof(body) ? (size_t)n : 0, 0);
}

/* RFC 9110 tchar: the characters of a method or a header field name. */
static int
is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/*
 * Returns the length of the request head in IN (through the empty line that ends it, CRLF
 * or bare LF line ends), or 0 while it is incomplete.
 */
static size_t
head_length(const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '\n')
            continue;
        size_t j = i + 1;
        if (j < len && in[j] == '\r')
            j++;
        if (j < len && in[j] == '\n')
            return j + 1;
    }
    return 0;
}

/*
 * Checks the header lines (HEAD, NUL-terminated, each line without its LF) and tells
 * whether a Host field is among them. Returns 0, or -1 when a line is not "NAME: VALUE".
 */
static int
check_headers(char *head, int *has_host)
{
    char *line, *save = NULL;

    *has_host = 0;
    for (line = strtok_r(head, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len == 0)
            break; /* the empty line ending the head */
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line)
            return -1;
        for (char *p = line; p < colon; p++)
            if (!is_tchar((unsigned char)*p))
                return -1;
        for (char *p = colon + 1; *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t')
                return -1;
        if (colon - line == 4 && strncasecmp(line, "host", 4) == 0)
            *has_host = 1;
    }
    return 0;
}

/*
 * Answers the complete request head of LEN bytes in c->in:
 *   1. the request line must be METHOD SP TARGET SP HTTP/1.x, the target in origin form,
 *      and every header line NAME: VALUE (else 400; another HTTP version is 505);
 *   2. HTTP/1.1 needs a Host field (RFC 9112 3.2: else 400);
 *   3. a path other than /metrics is 404; a method other than GET or HEAD is 405;
 *   4. GET /metrics gets the exposition, HEAD /metrics its headers only.
 * A body the client may have sent is not read. May free C.
 */
static void
client_request(struct http_client *c, size_t len)
{
    char method[HTTP_METHOD_MAX + 1];
    char *line = c->in, *eol, *sp1, *sp2, *target, *version, *q;
    int has_host;

    c->in[len] = '\0';
    if (memchr(c->in, '\0', len) != NULL) {
        client_error(c, 400, "NUL byte in the request");
        return;
    }
    eol = strchr(line, '\n');
    *eol = '\0';
    if (eol > line && eol[-1] == '\r')
        eol[-1] = '\0';
    sp1 = strchr(line, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL || strchr(sp2 + 1, ' ') != NULL || sp1 == line ||
        sp1 - line > HTTP_METHOD_MAX || sp2 == sp1 + 1) {
        client_error(c, 400, "malformed request line");
        return;
    }
    memcpy(method, line, (size_t)(sp1 - line));
    method[sp1 - line] = '\0';
    *sp2 = '\0';
    target = sp1 + 1;
    version = sp2 + 1;
    for (const char *p = method; *p; p++)
        if (!is_tchar((unsigned char)*p)) {
            client_error(c, 400, "malformed method");
            return;
        }
    for (const char *p = target; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            client_error(c, 400, "malformed request target");
            return;
        }
    if (strcmp(version, "HTTP/1.0") != 0 && strcmp(version, "HTTP/1.1") != 0) {
        if (strncmp(version, "HTTP/", 5) == 0 && version[5] >= '0' && version[5] <= '9')
            client_error(c, 505, "only HTTP/1.0 and HTTP/1.1 are served");
        else
            client_error(c, 400, "malformed HTTP version");
        return;
    }
    if (target[0] != '/') {
        client_error(c, 400, "the request target must be a path");
        return;
    }
    if (check_headers(eol + 1, &has_host) < 0) {
        client_error(c, 400, "malformed header line");
        return;
    }
    if (!has_host && strcmp(version, "HTTP/1.1") == 0) {
        client_error(c, 400, "HTTP/1.1 request without Host");
        return;
    }
    q = strchr(target, '?');
    if (q != NULL)
        *q = '\0';
    if (strcmp(target, "/metrics") != 0) {
        client_error(c, 404, "the metrics are at /metrics");
        return;
    }
    int head_only = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !head_only) {
        client_error(c, 405, "use GET");
        return;
    }

    struct sbuf body = {0};
    c->srv->body(c->srv->ud, &body);
    log_debug("metrics", "client fd %d: %s /metrics: 200, %zu bytes", c->fd, method, body.len);
    client_respond(c, 200, metrics_type, body.buf ? body.buf : "", body.len, head_only);
    sbuf_free(&body);
}

static void
on_client_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_client *c = w->data;
    ssize_t n;
    size_t len;

    (void)loop;
    (void)revents;
    if (c->lingering) {
        client_discard(c);
        return;
    }
    if (c->responding)
        return;
    /* rd runs only while the head is incomplete and in[] has room. */
    n = recv(c->fd, c->in + c->inlen, HTTPMETRICS_HEAD_MAX - c->inlen, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        client_close(c, strerror(errno));
        return;
    }
    if (n == 0) {
        /* EOF: nothing sent is a plain close (a port check); a partial head is an error. */
        if (c->inlen == 0)
            client_close(c, NULL);
        else
            client_error(c, 400, "incomplete request head");
        return;
    }
    c->inlen += (size_t)n;
    len = head_length(c->in, c->inlen);
    if (len > 0)
        client_request(c, len);
    else if (c->inlen == HTTPMETRICS_HEAD_MAX)
        client_error(c, 431, "request head over 8192 bytes");
}

static void
on_client_write(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_client *c = w->data;

    (void)revents;
    ev_io_stop(loop, w);
    client_flush(c);
}

static void
on_client_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct http_client *c = w->data;

    (void)loop;
    (void)revents;
    client_close(c, c->lingering    ? NULL
                    : c->responding ? "no write progress"
                                    : "request head not complete in time");
}

/* Takes ownership of FD, a connected non-blocking socket, as a new client. */
static void
client_new(struct httpmetrics *s, int fd)
{
    struct http_client *c = xcalloc(1, sizeof(*c));

    c->srv = s;
    c->fd = fd;
    ev_io_init(&c->rd, on_client_read, fd, EV_READ);
    c->rd.data = c;
    ev_io_init(&c->wr, on_client_write, fd, EV_WRITE);
    c->wr.data = c;
    ev_init(&c->timer, on_client_timer);
    c->timer.repeat = HTTPMETRICS_TIMEOUT;
    c->timer.data = c;
    TAILQ_INSERT_TAIL(&s->clients, c, link);
    s->nclients++;
    ev_timer_again(s->loop, &c->timer);
    ev_io_start(s->loop, &c->rd);
}

static void
on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct httpmetrics *s = w->data;

    (void)revents;
    ev_io_start(loop, &s->accept_w);
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpmetrics *s = w->data;

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
            default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM: pause, so the error cannot spin */
                if (!s->fd_warned)
                    log_warn("metrics", "accept on %s: %s; pausing new connections", s->name,
                             strerror(errno));
                s->fd_warned = 1;
                ev_io_stop(loop, &s->accept_w);
                ev_timer_set(&s->accept_pause, HTTP_ACCEPT_PAUSE, 0.0);
                ev_timer_start(loop, &s->accept_pause);
                return;
            }
        }
        s->fd_warned = 0;
        if (s->nclients >= HTTPMETRICS_MAX_CLIENTS) {
            close(fd);
            if (!s->full_warned)
                log_warn("metrics", "%d clients connected to %s: refusing new connections",
                         HTTPMETRICS_MAX_CLIENTS, s->name);
            s->full_warned = 1;
            continue;
        }
        client_new(s, fd);
    }
}

struct httpmetrics *
httpmetrics_listen(struct ev_loop *loop, const struct conf_addr *addr, httpmetrics_body_fn body,
                   void *ud, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char name[CONF_HOST_MAX + 16];
    int fd, one = 1;

    memset(&ss, 0, sizeof(ss));
    conf_addr_format(addr, name, sizeof(name));
    if (addr->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)addr->port);
        if (inet_pton(AF_INET, addr->host, &sin->sin_addr) != 1)
            goto bad_addr;
        sslen = sizeof(*sin);
    } else if (addr->family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)addr->port);
        if (inet_pton(AF_INET6, addr->host, &sin6->sin6_addr) != 1)
            goto bad_addr;
        sslen = sizeof(*sin6);
    } else {
        goto bad_addr;
    }

    fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "metrics_listen %s: socket: %s", name, strerror(errno));
        return NULL;
    }
    /* Rebinding over our own TIME_WAIT connections after a restart is fine; Linux still
     * refuses a port another socket listens on. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "metrics_listen %s: SO_REUSEADDR: %s", name, strerror(errno));
        close(fd);
        return NULL;
    }
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        snprintf(err, errlen, "metrics_listen %s: cannot bind: %s", name, strerror(errno));
        close(fd);
        return NULL;
    }
    if (listen(fd, HTTP_BACKLOG) < 0) {
        snprintf(err, errlen, "metrics_listen %s: cannot listen: %s", name, strerror(errno));
        close(fd);
        return NULL;
    }

    struct httpmetrics *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->fd = fd;
    s->addr = *addr;
    util_strlcpy(s->name, name, sizeof(s->name));
    s->body = body;
    s->ud = ud;
    TAILQ_INIT(&s->clients);
    ev_io_init(&s->accept_w, on_accept, fd, EV_READ);
    s->accept_w.data = s;
    ev_init(&s->accept_pause, on_accept_pause);
    s->accept_pause.data = s;
    ev_io_start(loop, &s->accept_w);
    log_info("metrics", "serving http://%s/metrics", name);
    return s;

bad_addr:
    snprintf(err, errlen, "metrics_listen %s: not a numeric IPv4 or IPv6 address", name);
    return NULL;
}

int
httpmetrics_is_on(const struct httpmetrics *h, const struct conf_addr *addr)
{
    return h != NULL && h->addr.family == addr->family && h->addr.port == addr->port &&
           strcmp(h->addr.host, addr->host) == 0;
}

void
httpmetrics_close(struct httpmetrics *s)
{
    struct http_client *c;

    if (s == NULL)
        return;
    while ((c = TAILQ_FIRST(&s->clients)) != NULL)
        client_close(c, NULL);
    ev_io_stop(s->loop, &s->accept_w);
    ev_timer_stop(s->loop, &s->accept_pause);
    close(s->fd);
    free(s);
}
