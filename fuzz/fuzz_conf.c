/* fuzz_conf.c -- libFuzzer target: the INI config parser (conf_load_string and conf_load) on
 * arbitrary text, then everything a loaded config is used for: lookups, comparisons, and
 * formatting of the resolved addresses. Host names are never resolved (see CMakeLists.txt). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
use(const struct conf *c, const struct conf_errors *errs)
{
    const struct conf_instance *ci, *prev = NULL;
    char buf[256];

    if (c == NULL) {
        if (errs->n == 0)
            abort(); /* a refused config must say why */
        for (size_t i = 0; i < errs->n; i++)
            if (errs->msg[i] == NULL || strstr(errs->msg[i], ": error: ") == NULL)
                abort(); /* every error is "FILE[:LINE]: error: MESSAGE" */
        return;
    }
    if (errs->n != 0)
        abort(); /* a config is returned only when there was no error */
    TAILQ_FOREACH (ci, &c->instances, link) {
        if (conf_find_instance(c, ci->name) != ci)
            abort();
        if (!conf_instance_equal(ci, ci))
            abort();
        if (prev != NULL)
            (void)conf_instance_equal(prev, ci);
        addr_format(&ci->addr, buf, sizeof(buf));
        addr_format(&ci->addr, buf, 8); /* truncation */
        prev = ci;
    }
    if (c->metrics_listen != NULL)
        addr_format(&c->metrics_addr, buf, sizeof(buf));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conf_errors errs = {0};
    struct conf *c;
    char *text = malloc(size + 1);

    /* 1. from memory: the text ends at its first NUL, as a C string does */
    memcpy(text, data, size);
    text[size] = '\0';
    c = conf_load_string("fuzz.conf", text, &errs);
    use(c, &errs);
    conf_free(c);
    conf_errors_free(&errs);
    free(text);

    /* 2. from a file, NUL bytes and all, through the stdio reader */
    int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        c = conf_load(path, &errs);
        use(c, &errs);
        conf_free(c);
        conf_errors_free(&errs);
    }
    close(fd);
    return 0;
}
