/* numeric_gai.c -- for the fuzz targets only: getaddrinfo() restricted to numeric hosts, so that
 * fuzzing the address parser never sends a DNS query nor waits on one. Linked with
 * -Wl,--wrap=getaddrinfo; a name that is not numeric fails as an unknown host would. */
#include <netdb.h>
#include <stddef.h>

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

int
__wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                   struct addrinfo **res)
{
    struct addrinfo h = {0};

    if (hints != NULL)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    return __real_getaddrinfo(node, service, &h, res);
}
