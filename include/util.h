/* util.h -- allocation wrappers that abort on failure, clocks, and a growable string buffer. */
#ifndef SA_UTIL_H
#define SA_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* SA_VERSION, the one version string, comes from the build (CMakeLists.txt's project()). */
#ifndef SA_VERSION
#error "SA_VERSION must be defined by the build"
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* BSD's safe TAILQ walk (the current element may be removed), missing from glibc's queue.h. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
    for ((var) = TAILQ_FIRST((head)); (var) && ((tvar) = TAILQ_NEXT((var), field), 1);             \
         (var) = (tvar))
#endif

/* malloc/calloc/realloc/strdup that abort the process on exhaustion; never return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Wall-clock time in milliseconds since the Unix epoch. */
int64_t util_wall_ms(void);

/* Copies SRC into DST of size N, always NUL-terminated; returns -1 if it was truncated. */
int util_strlcpy(char *dst, const char *src, size_t n);

/*
 * A growable byte buffer for answers and documents. Owner: whoever embeds it; released by
 * sbuf_free(). The buffer is always NUL-terminated after any append.
 */
struct sbuf {
    char *buf;
    size_t len;
    size_t cap;
};

/* Empties SB, keeping its capacity. */
void sbuf_reset(struct sbuf *sb);
/* Releases SB's memory and empties it. */
void sbuf_free(struct sbuf *sb);
/* Appends N bytes of P. */
void sbuf_add(struct sbuf *sb, const void *p, size_t n);
/* Appends the NUL-terminated string S. */
void sbuf_adds(struct sbuf *sb, const char *s);
/* Appends printf-formatted text. */
void sbuf_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first N bytes (N <= len). */
void sbuf_consume(struct sbuf *sb, size_t n);

#endif
