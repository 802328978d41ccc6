/* addr.c -- parse, resolve and format the addresses the config names (anet's role): no logging. */
#include "addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

/* Parses a decimal port without sign or spaces: 1..65535. */
static int
parse_port(const char *s, size_t len, int *out)
{
    int v = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > 65535)
            return -1;
    }
    if (v < 1)
        return -1;
    *out = v;
    return 0;
}

static int
parse_unix(const char *path, struct addr *a, char *err, size_t errlen)
{
    if (path[0] != '/') {
        snprintf(err, errlen, "unix socket path must be absolute");
        return -1;
    }
    if (strlen(path) >= sizeof(a->path) || strlen(path) >= ADDR_UNIX_MAX) {
        snprintf(err, errlen, "unix socket path longer than %zu bytes", ADDR_UNIX_MAX - 1);
        return -1;
    }
    a->family = AF_UNIX;
    util_strlcpy(a->path, path, sizeof(a->path));
    return 0;
}

/*
 * Resolves HOST into A's numeric host. A numeric address never waits on DNS, so it is tried
 * as one first; a bracketed one must be IPv6.
 */
static int
resolve_host(const char *host, bool bracket, int flags, struct addr *a, char *err, size_t errlen)
{
    struct addrinfo hints, *res;
    const struct addrinfo *pick;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = bracket ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc == EAI_NONAME && !bracket && (flags & ADDR_NO_RESOLVE)) {
        a->family = AF_UNSPEC;
        return 0;
    }
    if (rc == EAI_NONAME && !bracket) {
        hints.ai_flags = 0;
        rc = getaddrinfo(host, NULL, &hints, &res);
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    /*
     * A name with both kinds of address (localhost: ::1 and 127.0.0.1, ::1 usually first)
     * takes the IPv4 one: a Redis bound to 127.0.0.1 only is the common case, and the agent
     * connects to one address, never falling back to the next.
     */
    pick = res;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    a->family = pick->ai_family;
    if (pick->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)pick->ai_addr)->sin_addr, a->host,
                  sizeof(a->host));
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)pick->ai_addr)->sin6_addr, a->host,
                  sizeof(a->host));
    freeaddrinfo(res);
    return 0;
}

int
addr_parse(const char *s, int flags, struct addr *a, char *err, size_t errlen)
{
    char host[256];
    const char *hend, *portstr;
    bool bracket = s[0] == '[';
    size_t hlen;
    int port;

    memset(a, 0, sizeof(*a));
    if (strncmp(s, "unix:", 5) == 0)
        return parse_unix(s + 5, a, err, errlen);

    if (bracket) {
        hend = strchr(s, ']');
        if (hend == NULL) {
            snprintf(err, errlen, "missing ']' after IPv6 address");
            return -1;
        }
        s++;
        if (hend[1] != ':') {
            snprintf(err, errlen, "missing port (expected [IPV6]:PORT)");
            return -1;
        }
        portstr = hend + 2;
    } else {
        hend = strrchr(s, ':');
        if (hend == NULL) {
            snprintf(err, errlen, "missing port (expected HOST:PORT or unix:/PATH)");
            return -1;
        }
        if (memchr(s, ':', (size_t)(hend - s)) != NULL) {
            snprintf(err, errlen, "an IPv6 address must be written [ADDRESS]:PORT");
            return -1;
        }
        portstr = hend + 1;
    }
    hlen = (size_t)(hend - s);
    if (hlen == 0) {
        snprintf(err, errlen, "missing host");
        return -1;
    }
    if (hlen >= sizeof(host)) {
        snprintf(err, errlen, "host name too long");
        return -1;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (*portstr == '\0') {
        snprintf(err, errlen, "missing port");
        return -1;
    }
    if (parse_port(portstr, strlen(portstr), &port) < 0) {
        snprintf(err, errlen, "bad port \"%s\" (expected 1..65535)", portstr);
        return -1;
    }
    if (resolve_host(host, bracket, flags, a, err, errlen) < 0)
        return -1;
    a->port = port;
    return 0;
}

void
addr_format(const struct addr *a, char *buf, size_t len)
{
    if (a->family == AF_UNIX)
        snprintf(buf, len, "unix:%s", a->path);
    else if (a->family == AF_INET6)
        snprintf(buf, len, "[%s]:%d", a->host, a->port);
    else
        snprintf(buf, len, "%s:%d", a->host, a->port);
}

int
addr_check_hosts(const char *hosts, char *err, size_t errlen)
{
    const char *p = hosts;

    for (;;) {
        size_t len = strcspn(p, ",");
        const char *colon = NULL, *why = NULL;
        int port;

        for (size_t i = 0; i < len; i++) {
            if (isspace((unsigned char)p[i]))
                why = "spaces are not allowed";
            if (p[i] == ':')
                colon = p + i;
        }
        if (len == 0)
            why = "empty entry";
        else if (why == NULL && colon == NULL)
            why = "missing port";
        else if (why == NULL && (colon == p || (colon == p + 2 && p[0] == '[' && p[1] == ']')))
            why = "empty host";
        else if (why == NULL) {
            size_t plen = (size_t)(p + len - colon - 1);
            /* at most 7 characters, leading zeros included */
            if (plen >= 8 || parse_port(colon + 1, plen, &port) < 0)
                why = "bad port";
        }
        if (why) {
            snprintf(err, errlen, "bad hosts entry \"%.*s\": %s (expected host:port,...)", (int)len,
                     p, why);
            return -1;
        }
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

char *
addr_resolve_hosts(const char *hosts)
{
    struct sbuf out = {0};
    char *copy = xstrdup(hosts), *save = NULL, *tok;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        struct addrinfo hints = {0}, *res = NULL, *ai;
        size_t before = out.len;

        while (*tok == ' ')
            tok++;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        if (colon && tok[0] != '[') {
            *colon = '\0';
            if (getaddrinfo(tok, NULL, &hints, &res) == 0) {
                for (ai = res; ai; ai = ai->ai_next) {
                    char ip[NI_MAXHOST];

                    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof(ip), NULL, 0,
                                    NI_NUMERICHOST) != 0)
                        continue;
                    sbuf_printf(&out, "%s%s%s%s:%s", out.len ? "," : "",
                                ai->ai_family == AF_INET6 ? "[" : "", ip,
                                ai->ai_family == AF_INET6 ? "]" : "", colon + 1);
                }
                freeaddrinfo(res);
            }
            *colon = ':';
        }
        if (out.len == before)
            sbuf_printf(&out, "%s%s", out.len ? "," : "", tok);
    }
    free(copy);
    if (out.buf == NULL)
        sbuf_adds(&out, hosts);
    return out.buf;
}
