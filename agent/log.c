/* log.c -- one line per event on stderr, "LEVEL component: message", with <N> prefixes under
 * journald. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static enum log_level threshold = LOGL_INFO;
static int journal; /* stderr is a journald stream: prefix lines with <N> */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int level_prio[] = {3, 4, 6, 7}; /* syslog priorities */

void
log_init(enum log_level level)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    threshold = level;
    journal = 0;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
        journal = 1;
}

void
log_set_level(enum log_level level)
{
    threshold = level;
}

enum log_level
log_get_level(void)
{
    return threshold;
}

int
log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *
log_level_name(enum log_level level)
{
    return level_names[level];
}

void
log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
    char line[1024];
    int n = 0;
    va_list ap;

    if (level > threshold)
        return;
    if (journal)
        n = snprintf(line, sizeof(line), "<%d>", level_prio[level]);
    n += snprintf(line + n, sizeof(line) - (size_t)n, "%s %s: ", level_names[level], component);
    va_start(ap, fmt);
    if ((size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line, newlines inside a message folded so a line stays one event. */
    size_t len = strnlen(line, sizeof(line) - 2);
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
