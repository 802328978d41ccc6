/* reply.c -- classification of Redis replies and connection errors into probe outcomes. */
#include "reply.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* Error prefixes that name a known condition, and the reason a consumer sees. */
static const struct {
    const char *prefix;
    const char *reason;
} known_errors[] = {
    {"LOADING", "loading"},       {"BUSY", "busy"},
    {"MASTERDOWN", "masterdown"}, {"NOAUTH", "auth failed"},
    {"WRONGPASS", "auth failed"}, {"NOPERM", "auth failed"},
};

static int
has_word_prefix(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(s, word, n) == 0 && (len == n || s[n] == ' ');
}

/* Copies an error text for a reason, keeping it short and printable. */
static void
error_reason(const char *text, size_t len, char *reason, size_t rlen)
{
    char clean[96];
    size_t n = 0;

    for (size_t i = 0; i < len && n < sizeof(clean) - 1; i++) {
        unsigned char c = (unsigned char)text[i];
        clean[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    clean[n] = '\0';
    snprintf(reason, rlen, "error: %s", clean);
}

enum probe_status
reply_classify_ping(const redisReply *r, char *reason, size_t len)
{
    if (r == NULL) {
        util_strlcpy(reason, "connection lost", len);
        return PROBE_FAILED;
    }
    if (r->type == REDIS_REPLY_STATUS && r->len == 4 && strncasecmp(r->str, "PONG", 4) == 0) {
        reason[0] = '\0';
        return PROBE_OK;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        for (size_t i = 0; i < ARRAY_LEN(known_errors); i++) {
            if (has_word_prefix(r->str, r->len, known_errors[i].prefix)) {
                util_strlcpy(reason, known_errors[i].reason, len);
                return PROBE_FAILED;
            }
        }
        error_reason(r->str, r->len, reason, len);
        return PROBE_FAILED;
    }
    util_strlcpy(reason, "unexpected reply", len);
    return PROBE_FAILED;
}

int
reply_auth_failed(const redisReply *r)
{
    if (r == NULL)
        return 0; /* the connection went away: PING's callback reports that */
    return !(r->type == REDIS_REPLY_STATUS && r->len == 2 && strncasecmp(r->str, "OK", 2) == 0);
}

enum inst_role
reply_parse_role(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return ROLE_UNKNOWN;
    const redisReply *e = r->element[0];
    if (e == NULL || (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS))
        return ROLE_UNKNOWN;
    if (e->len == 6 && memcmp(e->str, "master", 6) == 0)
        return ROLE_MASTER;
    if (e->len == 5 && memcmp(e->str, "slave", 5) == 0)
        return ROLE_REPLICA;
    if (e->len == 7 && memcmp(e->str, "replica", 7) == 0)
        return ROLE_REPLICA;
    if (e->len == 8 && memcmp(e->str, "sentinel", 8) == 0)
        return ROLE_SENTINEL;
    return ROLE_UNKNOWN;
}

/*
 * hiredis's own object functions, with createArray bounded (filled on first use). This swaps
 * the reader's private function table (r->fn) and relies on 0.14 passing the announced count
 * to createArray before allocating: another hiredis must be checked (1.x has maxelements).
 */
#if HIREDIS_MAJOR != 0 || HIREDIS_MINOR != 14
#error                                                                                             \
    "reply_bound_reader() relies on hiredis 0.14's redisReader internals: check it for this hiredis"
#endif
static redisReplyObjectFunctions bounded_fns;
static void *(*default_create_array)(const redisReadTask *, int);

static void *
bounded_create_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > REPLY_MAX_ELEMENTS)
        return NULL;
    return default_create_array(task, elements);
}

void
reply_bound_reader(redisReader *r)
{
    if (r->fn == &bounded_fns)
        return;
    if (default_create_array == NULL) {
        bounded_fns = *r->fn;
        default_create_array = r->fn->createArray;
        bounded_fns.createArray = bounded_create_array;
    }
    r->fn = &bounded_fns;
}

enum probe_status
reply_classify_error(int err, const char *errstr, char *reason, size_t len)
{
    if (err == REDIS_ERR_OOM) {
        /* a bounded link or reader refused an oversized reply (redislink.c, reply_bound_reader) */
        util_strlcpy(reason, "protocol error: reply too large", len);
        return PROBE_FAILED;
    }
    if (err == REDIS_ERR_PROTOCOL) {
        util_strlcpy(reason, "protocol error", len);
        return PROBE_FAILED;
    }
    if (err == REDIS_ERR_EOF) {
        util_strlcpy(reason, "connection lost", len);
        return PROBE_FAILED;
    }
    if (errstr != NULL && strstr(errstr, "Connection refused") != NULL) {
        util_strlcpy(reason, "connection refused", len);
        return PROBE_CONCLUSIVE;
    }
    if (errstr != NULL && strstr(errstr, "No such file or directory") != NULL) {
        util_strlcpy(reason, "no such socket", len);
        return PROBE_CONCLUSIVE;
    }
    if (errstr != NULL && strstr(errstr, "Connection reset") != NULL) {
        util_strlcpy(reason, "connection reset", len);
        return PROBE_FAILED;
    }
    if (errstr != NULL && errstr[0] != '\0') {
        char buf[96];
        util_strlcpy(buf, errstr, sizeof(buf));
        for (char *p = buf; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        snprintf(reason, len, "connection error: %s", buf);
        return PROBE_FAILED;
    }
    util_strlcpy(reason, "connection lost", len);
    return PROBE_FAILED;
}
