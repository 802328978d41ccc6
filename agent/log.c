/* log.c -- one line per event on stderr, "LEVEL component: message", with <N> prefixes under
 * journald. */
#include "log.h"

#include <stdint.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

void
log_fatal(const char *component, const char *fmt, ...)
{
    char msg[900];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (threshold < LOGL_ERROR)
        threshold = LOGL_ERROR; /* never silenced */
    log_msg(LOGL_ERROR, component, "%s", msg);
    fflush(stderr);
    abort();
}

/*
 * The texts log_text_limited() wrote recently: a hash, when, and how many repeats were held
 * back since. A small table with the oldest entry replaced, so texts that alternate (an
 * error and a warning per retry) are each limited. Guarded by repeat_mu: the callers run on
 * other libraries' threads.
 */
#define REPEAT_SLOTS 16
static struct {
    uint64_t hash;
    double at;
    unsigned suppressed;
} repeats[REPEAT_SLOTS];
static pthread_mutex_t repeat_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t
text_hash(const char *text, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void
log_text_limited(enum log_level level, const char *component, const char *text, size_t len)
{
    struct timespec ts;
    uint64_t h = text_hash(text, len);
    unsigned held = 0;
    int slot = 0, write = 1;

    if (level > threshold)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    pthread_mutex_lock(&repeat_mu);
    for (int i = 0; i < REPEAT_SLOTS; i++) {
        if (repeats[i].hash == h && repeats[i].at > 0) {
            slot = i;
            break;
        }
        if (repeats[i].at < repeats[slot].at)
            slot = i; /* the oldest, if the text is new */
    }
    if (repeats[slot].hash == h && repeats[slot].at > 0 &&
        now - repeats[slot].at < LOG_REPEAT_WINDOW) {
        repeats[slot].suppressed++;
        write = 0;
    } else {
        held = repeats[slot].hash == h ? repeats[slot].suppressed : 0;
        repeats[slot].hash = h;
        repeats[slot].at = now;
        repeats[slot].suppressed = 0;
    }
    pthread_mutex_unlock(&repeat_mu);
    if (!write)
        return;
    if (held > 0)
        log_msg(level, component, "%.*s (and %u times more in the last %.0fs)", (int)len, text,
                held, LOG_REPEAT_WINDOW);
    else
        log_msg(level, component, "%.*s", (int)len, text);
}
