/* log.h -- one line per event on stderr: "LEVEL component: message", journald-aware. */
#ifndef SA_LOG_H
#define SA_LOG_H

#include <stddef.h>

enum log_level { LOGL_ERROR = 0, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

/* Sets the threshold and detects journald (JOURNAL_STREAM naming our stderr). */
void log_init(enum log_level level);
/* Changes the threshold. */
void log_set_level(enum log_level level);
/* Current threshold. */
enum log_level log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; returns 0, or -1 on anything else. */
int log_level_parse(const char *s, enum log_level *out);
/* The name of LEVEL as it is written in logs and config. */
const char *log_level_name(enum log_level level);
/* Writes one line if LEVEL passes the threshold. COMPONENT is e.g. "probe" or "instance a". */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Seconds during which a repeated text is counted instead of written (log_text_limited). */
#define LOG_REPEAT_WINDOW 60.0

/*
 * Writes LEN bytes of TEXT as one line, unless the same text was written by this function in
 * the last LOG_REPEAT_WINDOW seconds: then it is only counted, and the count of suppressed
 * repeats is appended the next time the text is written. For libraries that repeat
 * themselves on every retry (the ZooKeeper client). Thread-safe.
 */
void log_text_limited(enum log_level level, const char *component, const char *text, size_t len);

/*
 * Writes one line at error and aborts: for a broken invariant or an impossible failure
 * (allocation wrappers, a command that cannot be formatted), never for a peer's input.
 */
void log_fatal(const char *component, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#define fatal(comp, ...) log_fatal(comp, __VA_ARGS__)

#define log_error(comp, ...) log_msg(LOGL_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_msg(LOGL_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_msg(LOGL_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...) log_msg(LOGL_DEBUG, comp, __VA_ARGS__)

#endif
