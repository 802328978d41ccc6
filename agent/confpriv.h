/* confpriv.h -- what the config's three files share (conf.c, confread.c, confval.c): the parser
 * state, the reader's calls into conf.c and the value checks. Not for other modules. */
#ifndef SA_CONFPRIV_H
#define SA_CONFPRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "conf.h"

#define CONF_MS_MIN (60LL * 1000)
#define CONF_MS_H   (60 * CONF_MS_MIN)

/*
 * Room for any message of confval.c: the value it quotes is at most one line (197 bytes, the
 * reader's limit) and the rest well under 300, so no message is ever cut.
 */
#define CONF_ERR_MAX 512

/* One error of the list (confread.c's perr_*). */
struct perr {
    int line; /* 0: the file as a whole */
    size_t seq;
    char *msg;
};

/*
 * conf.c's own state while parsing: the sections read so far and what they gave. The reader
 * never looks inside; it is conf.c's, so that a key is still a row of its table and nothing
 * here.
 */
struct pstate;

/* Everything one load needs. Made and released by conf.c's conf_load_flags/conf_load_string. */
struct parser {
    const char *file; /* the name in messages */
    /* the error list: confread.c */
    struct perr *errs;
    size_t nerrs, caperrs;
    /* input, read a whole physical line at a time: confread.c */
    FILE *fp;         /* a file, or else */
    const char *text; /* a string, read from POS */
    size_t pos;
    char *buf;
    size_t bufcap;
    int lineno; /* of the line being handled */
    int read_errno;
    /* the config being built: conf.c */
    int flags; /* CONF_NO_RESOLVE */
    struct conf *conf;
    struct pstate *st;
};

/* ---- confread.c: the line reader and the error list ---- */

/* Adds an error on LINE (0: the file as a whole); kept in the order added within a line. */
void perr_add(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Moves the collected errors, sorted by line, into ERRS as "FILE:LINE: error: MSG"; the
 * caller releases them with conf_errors_free() (confread.c too).
 */
void perr_flush(struct parser *p, struct conf_errors *errs);

/*
 * Reads every line of p->fp or p->text, calling conf_on_section() and conf_on_key() for each
 * header and key, and wipes its line buffer at the end. Returns 0, or -1 after a read error
 * (reported).
 */
int confread_lines(struct parser *p);

/* ---- conf.c: called by the reader ---- */

/* A "[INNER]" header on the current line; INNER is trimmed and may be changed. */
void conf_on_section(struct parser *p, char *inner);

/* A "NAME = VALUE" line, both trimmed (VALUE may be empty). */
void conf_on_key(struct parser *p, const char *name, const char *value);

/*
 * ---- confval.c: value parsers and checks ----
 * Pure: none logs or knows the parser. Those that take ERR fill it (at least CONF_ERR_MAX
 * bytes) with the whole message naming KEY and quoting V, and return -1; the others return
 * NULL or a fixed reason, or -1 alone.
 */

/* Parses a decimal integer without sign or spaces, at most MAX, into *OUT. 0 or -1. */
int confval_uint(const char *s, int64_t max, int64_t *out);

/* Formats MS in the largest whole unit (m, s, else ms) into BUF; returns BUF. */
const char *confval_fmt_ms(char *buf, size_t len, int64_t ms);

/* Whether S is an instance or cluster name: [A-Za-z0-9._-]{1,64}, not "." or "..". */
bool confval_name_ok(const char *s);

/* The reason S cannot be the agent name (one ZooKeeper node name), or NULL. */
const char *confval_agent_name_problem(const char *s);

/* The reason S cannot be the ZooKeeper root path, or NULL. */
const char *confval_zk_root_problem(const char *s);

/*
 * The group for a file we create: a gid, or a name looked up now (local files or NSS, once at
 * load, so the loop never waits on it); with CONF_NO_RESOLVE in FLAGS a name is left
 * unresolved ((gid_t)-1). Returns NULL and sets *GID, or the reason.
 */
const char *confval_group(const char *v, int flags, gid_t *gid);

/* "bad KEY \"V\": WHY" into ERR; returns -1. */
int confval_bad(char *err, size_t errlen, const char *key, const char *v, const char *why);

/* A duration (conf_parse_duration) within MIN..MAX into *OUT. */
int confval_duration(const char *key, const char *v, int64_t min, int64_t max, int64_t *out,
                     char *err, size_t errlen);

/* A decimal int within MIN..MAX into *OUT. */
int confval_int(const char *key, const char *v, int64_t min, int64_t max, int *out, char *err,
                size_t errlen);

/* An octal file mode of at most MAX into *OUT. */
int confval_mode(const char *key, const char *v, unsigned max, mode_t *out, char *err,
                 size_t errlen);

/* An absolute path of at most MAX bytes. */
int confval_path(const char *key, const char *v, int64_t max, char *err, size_t errlen);

/* A cluster name: a name (confval_name_ok), not the reserved "agents". */
int confval_cluster(const char *v, char *err, size_t errlen);

/* A log level: error, warn, info or debug, into *OUT. */
int confval_log_level(const char *key, const char *v, enum log_level *out, char *err,
                      size_t errlen);

/* "user:password", both non-empty; the message never shows V, a secret. */
int confval_auth(const char *key, const char *v, char *err, size_t errlen);

#endif
