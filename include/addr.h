/* addr.h -- network addresses from outside input: parse, resolve once to numeric form, format. */
#ifndef SA_ADDR_H
#define SA_ADDR_H

#include <stddef.h>
#include <sys/un.h>

#define ADDR_HOST_MAX 46 /* INET6_ADDRSTRLEN */
#define ADDR_UNIX_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

/* addr_parse() flags */
#define ADDR_NO_RESOLVE 0x1 /* check a host name's syntax only; never ask DNS */

/* A Redis (or listener) address, numeric once parsed. */
struct addr {
    int family;               /* AF_INET, AF_INET6 or AF_UNIX; AF_UNSPEC: a name not resolved */
    char host[ADDR_HOST_MAX]; /* numeric IP for AF_INET/AF_INET6 */
    int port;                 /* 1..65535 for AF_INET/AF_INET6 (and AF_UNSPEC) */
    char path[108];           /* socket path for AF_UNIX */
};

/*
 * Parses "HOST:PORT", "[IPV6]:PORT" or "unix:PATH" into A. A host name is resolved once with
 * getaddrinfo() (blocking), the IPv4 address first; with ADDR_NO_RESOLVE it is left as
 * AF_UNSPEC with an empty host. Returns 0, or -1 with the reason in ERR.
 */
int addr_parse(const char *s, int flags, struct addr *a, char *err, size_t errlen);

/* Writes a printable form of A ("127.0.0.1:6379", "[::1]:6379", "unix:/path") into BUF. */
void addr_format(const struct addr *a, char *buf, size_t len);

/* Checks a ZooKeeper connect string "host:port,host:port"; returns 0, or -1 with ERR set. */
int addr_check_hosts(const char *hosts, char *err, size_t errlen);

/*
 * Rewrites the ZooKeeper connect string HOSTS with numeric addresses (every address of each
 * name), so that neither the loop nor a later zookeeper_init() waits on DNS. A name that does
 * not resolve is kept as written. Blocks on DNS; the returned string belongs to the caller.
 */
char *addr_resolve_hosts(const char *hosts);

#endif
