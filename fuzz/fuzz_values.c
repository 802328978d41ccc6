/* fuzz_values.c -- libFuzzer target: the value parsers for outside input, durations
 * (conf_parse_duration) and addresses (conf_parse_address, conf_addr_format). Host names are
 * never resolved (see CMakeLists.txt). */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct conf_addr a;
    char err[256], buf[160];
    int64_t ms;

    memcpy(s, data, size);
    s[size] = '\0';

    if (conf_parse_duration(s, &ms) == 0 && (ms < 0 || ms > 24LL * 3600 * 1000))
        abort(); /* the parser promises a bounded, non-negative result */

    err[0] = '\0';
    if (conf_parse_address(s, &a, err, sizeof(err)) == 0) {
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
        conf_addr_format(&a, buf, sizeof(buf));
        conf_addr_format(&a, buf, 5);
    } else if (err[0] == '\0') {
        abort(); /* a refusal says why */
    }
    free(s);
    return 0;
}
