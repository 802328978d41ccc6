/* fuzz_values.c -- libFuzzer target: the value parsers for outside input, durations
 * (conf_parse_duration) and addresses (addr_parse, addr_format, addr_check_hosts,
 * addr_resolve_hosts). Host names are never resolved (see CMakeLists.txt). */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"
#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct addr a, b;
    char err[256], buf[160];
    int64_t ms;

    memcpy(s, data, size);
    s[size] = '\0';

    if (conf_parse_duration(s, &ms) == 0 && (ms < 0 || ms > 24LL * 3600 * 1000))
        abort(); /* the parser promises a bounded, non-negative result */

    err[0] = '\0';
    if (addr_parse(s, 0, &a, err, sizeof(err)) == 0) {
        if (a.family == AF_UNIX) {
            if (a.path[0] != '/' || memchr(a.path, '\0', sizeof(a.path)) == NULL)
                abort();
        } else if (a.family == AF_INET || a.family == AF_INET6) {
            unsigned char bin[16];
            if (a.port < 1 || a.port > 65535 || inet_pton(a.family, a.host, bin) != 1)
                abort(); /* resolved addresses are numeric */
        } else {
            abort();
        }
        addr_format(&a, buf, sizeof(buf));
        addr_format(&a, buf, 5);
        /* what resolves is accepted unresolved too, numeric addresses unchanged */
        if (addr_parse(s, ADDR_NO_RESOLVE, &b, err, sizeof(err)) != 0 ||
            memcmp(&a, &b, sizeof(a)) != 0)
            abort();
    } else if (err[0] == '\0') {
        abort(); /* a refusal says why */
    }
    err[0] = '\0';
    if (addr_parse(s, ADDR_NO_RESOLVE, &b, err, sizeof(err)) == 0) {
        if (b.family == AF_UNSPEC && (b.host[0] != '\0' || b.port < 1 || b.port > 65535))
            abort(); /* a name left unresolved keeps its port and no host */
    } else if (err[0] == '\0') {
        abort();
    }
    err[0] = '\0';
    if (addr_check_hosts(s, err, sizeof(err)) == 0) {
        char *hosts = addr_resolve_hosts(s);
        if (hosts == NULL || hosts[0] == '\0')
            abort(); /* a valid connect string is never emptied */
        free(hosts);
    } else if (err[0] == '\0') {
        abort();
    }
    free(s);
    return 0;
}
