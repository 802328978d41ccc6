/* httpmetrics.c -- a tiny non-blocking HTTP/1.x server on the loop that serves GET /metrics. */
#include "httpmetrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sockserv.h"

#define HTTP_LINGER     2.0         /* seconds to wait for the client's EOF after the response */
#define HTTP_LINGER_MAX (64 * 1024) /* bytes discarded before giving up on a clean close */
#define HTTP_METHOD_MAX 16

static const char metrics_type[] = "text/plain; version=0.0.4; charset=utf-8";
static const char plain_type[] = "text/plain; charset=utf-8";

/*
 * One connection's request state, inside its sockserv connection (sockserv_data()), which
 * owns it and frees it with the connection; the connection holds the fd, watchers, timer and
 * the response buffer.
 *
 * Phases: reading the head (one HTTPMETRICS_TIMEOUT deadline for all of it, so a client
 * trickling bytes cannot hold a slot for long); writing the response (the timer re-armed on
 * each write progress); lingering once all is sent (sockserv_linger(), so that closing never
 * resets a connection whose response the client has not read yet).
 */
struct http_client {
    int responding; /* the response is queued: read no more of the request */
    size_t inlen;   /* bytes in in[] */
    char in[HTTPMETRICS_HEAD_MAX + 1];
};

/*
 * The server. Owner: the caller of httpmetrics_listen(); released by httpmetrics_close(),
 * which frees ss: every client, then the listening socket.
 */
struct httpmetrics {
    struct sockserv *ss;                    /* the listener and its clients; owned */
    struct addr addr;                       /* what it listens on */
    char name[ADDR_HOST_MAX + 16];          /* borrowed by ss */
    char full_warning[ADDR_HOST_MAX + 112]; /* borrowed by ss */
    httpmetrics_body_fn body;
    void *ud;
};

/* All of the response is sent: shut our side down and wait (briefly) for the client's EOF. */
static void
client_sent(struct sockserv_conn *c, void *ud)
{
    (void)ud;
    sockserv_linger(c, NULL);
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
client_respond(struct sockserv_conn *c, int code, const char *ctype, const char *body,
               size_t bodylen, int head_only)
{
    struct http_client *hc = sockserv_data(c);
    struct sbuf *out = sockserv_out(c);
    char date[64];
    struct tm tm;
    time_t now = time(NULL);

    if (gmtime_r(&now, &tm) == NULL ||
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        date[0] = '\0';
    hc->responding = 1;
    sockserv_read_stop(c);
    sbuf_printf(out, "HTTP/1.1 %d %s\r\n", code, status_text(code));
    if (date[0] != '\0')
        sbuf_printf(out, "Date: %s\r\n", date);
    sbuf_printf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, bodylen);
    if (code == 405)
        sbuf_adds(out, "Allow: GET, HEAD\r\n");
    sbuf_adds(out, "Cache-Control: no-store\r\nConnection: close\r\n\r\n");
    if (!head_only)
        sbuf_add(out, body, bodylen);
    /* The client's timer now measures write progress, not the head's deadline. */
    sockserv_touch(c);
    if (sockserv_flush(c) == 1)
        client_sent(c, NULL);
}

/* An error response with a one-line plain-text body. May free C. */
static void
client_error(struct sockserv_conn *c, int code, const char *msg)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", code, status_text(code), msg);

    log_debug("metrics", "client fd %d: %d %s", sockserv_fd(c), code, msg);
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
 * Answers the complete request head of LEN bytes in C's in[]:
 *   1. the request line must be METHOD SP TARGET SP HTTP/1.x, the target in origin form,
 *      and every header line NAME: VALUE (else 400; another HTTP version is 505);
 *   2. HTTP/1.1 needs a Host field (RFC 9112 3.2: else 400);
 *   3. a path other than /metrics is 404; a method other than GET or HEAD is 405;
 *   4. GET /metrics gets the exposition, HEAD /metrics its headers only.
 * A body the client may have sent is not read. May free C.
 */
static void
client_request(struct httpmetrics *s, struct sockserv_conn *c, size_t len)
{
    struct http_client *hc = sockserv_data(c);
    char method[HTTP_METHOD_MAX + 1];
    char *line = hc->in, *eol, *sp1, *sp2, *target, *version, *q;
    int has_host;

    hc->in[len] = '\0';
    if (memchr(hc->in, '\0', len) != NULL) {
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
    s->body(s->ud, &body);
    log_debug("metrics", "client fd %d: %s /metrics: 200, %zu bytes", sockserv_fd(c), method,
              body.len);
    client_respond(c, 200, metrics_type, body.buf ? body.buf : "", body.len, head_only);
    sbuf_free(&body);
}

/* Reads the request head; answers it once complete, too long, or cut short by EOF. */
static void
client_read(struct sockserv_conn *c, void *ud)
{
    struct http_client *hc = sockserv_data(c);
    ssize_t n;
    size_t len;

    if (hc->responding)
        return;
    /* The client is read only while the head is incomplete and in[] has room. */
    n = sockserv_recv(c, hc->in + hc->inlen, HTTPMETRICS_HEAD_MAX - hc->inlen);
    if (n < 0)
        return;
    if (n == 0) {
        /* EOF: nothing sent is a plain close (a port check); a partial head is an error. */
        if (hc->inlen == 0)
            sockserv_close(c, NULL);
        else
            client_error(c, 400, "incomplete request head");
        return;
    }
    hc->inlen += (size_t)n;
    len = head_length(hc->in, hc->inlen);
    if (len > 0)
        client_request(ud, c, len);
    else if (hc->inlen == HTTPMETRICS_HEAD_MAX)
        client_error(c, 431, "request head over 8192 bytes");
}

static void
client_expired(struct sockserv_conn *c, void *ud)
{
    struct http_client *hc = sockserv_data(c);

    (void)ud;
    sockserv_close(c, hc->responding ? "no write progress" : "request head not complete in time");
}

struct httpmetrics *
httpmetrics_listen(struct ev_loop *loop, const struct addr *addr, httpmetrics_body_fn body,
                   void *ud, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char name[ADDR_HOST_MAX + 16];
    int fd, one = 1;

    memset(&ss, 0, sizeof(ss));
    addr_format(addr, name, sizeof(name));
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
    if (listen(fd, SOCKSERV_BACKLOG) < 0) {
        snprintf(err, errlen, "metrics_listen %s: cannot listen: %s", name, strerror(errno));
        close(fd);
        return NULL;
    }

    struct httpmetrics *s = xcalloc(1, sizeof(*s));
    s->addr = *addr;
    util_strlcpy(s->name, name, sizeof(s->name));
    snprintf(s->full_warning, sizeof(s->full_warning),
             "%d clients connected to %s: closing idle ones, else refusing new ones",
             HTTPMETRICS_MAX_CLIENTS, name);
    s->body = body;
    s->ud = ud;
    const struct sockserv_conf cf = {
        .tag = "metrics",
        .name = s->name,
        .full_warning = s->full_warning,
        .max_clients = HTTPMETRICS_MAX_CLIENTS,
        .evict_after = HTTPMETRICS_EVICT_AFTER,
        .timeout = HTTPMETRICS_TIMEOUT,
        .data_size = sizeof(struct http_client),
        .out_keep = 0,
        .linger_time = HTTP_LINGER,
        .linger_max = HTTP_LINGER_MAX,
        .readable = client_read,
        .sent = client_sent,
        .expired = client_expired,
    };
    s->ss = sockserv_start(loop, fd, &cf, s);
    log_info("metrics", "serving http://%s/metrics", name);
    return s;

bad_addr:
    snprintf(err, errlen, "metrics_listen %s: not a numeric IPv4 or IPv6 address", name);
    return NULL;
}

int
httpmetrics_is_on(const struct httpmetrics *h, const struct addr *addr)
{
    return h != NULL && h->addr.family == addr->family && h->addr.port == addr->port &&
           strcmp(h->addr.host, addr->host) == 0;
}

void
httpmetrics_set_limits(struct httpmetrics *h, double timeout, double evict_after)
{
    sockserv_set_limits(h->ss, timeout, evict_after);
}

void
httpmetrics_close(struct httpmetrics *s)
{
    if (s == NULL)
        return;
    sockserv_free(s->ss);
    free(s);
}
