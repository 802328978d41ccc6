/* reply.c -- classification of Redis replies and connection errors into probe outcomes. */
#include "reply.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* Error prefixes that name a known condition, the reason a consumer sees, and its class. */
static const struct {
    const char *prefix;
    const char *reason;
    enum probe_class cls;
} known_errors[] = {
    {"LOADING", "loading", PROBE_CLASS_LOADING},
    {"BUSY", "busy", PROBE_CLASS_BUSY},
    {"MASTERDOWN", "masterdown", PROBE_CLASS_MASTERDOWN},
    {"NOAUTH", "auth failed", PROBE_CLASS_AUTH},
    {"WRONGPASS", "auth failed", PROBE_CLASS_AUTH},
    {"NOPERM", "auth failed", PROBE_CLASS_AUTH},
};

/* The other reasons this module and the probe module write, by their start, and their class. */
static const struct {
    const char *start;
    enum probe_class cls;
} reason_classes[] = {
    {"timeout", PROBE_CLASS_TIMEOUT},           {"connection refused", PROBE_CLASS_REFUSED},
    {"no such socket", PROBE_CLASS_REFUSED},    {"protocol error", PROBE_CLASS_PROTOCOL},
    {"unexpected reply", PROBE_CLASS_PROTOCOL}, {"error: ", PROBE_CLASS_ERROR},
};

static const char *const class_names[PROBE_CLASSES] = {
    [PROBE_CLASS_TIMEOUT] = "timeout",
    [PROBE_CLASS_REFUSED] = "refused",
    [PROBE_CLASS_CONNECTION] = "connection",
    [PROBE_CLASS_PROTOCOL] = "protocol",
    [PROBE_CLASS_AUTH] = "auth",
    [PROBE_CLASS_LOADING] = "loading",
    [PROBE_CLASS_BUSY] = "busy",
    [PROBE_CLASS_MASTERDOWN] = "masterdown",
    [PROBE_CLASS_ERROR] = "error",
};

enum probe_class
reply_reason_class(enum probe_status status, const char *reason)
{
    if (status == PROBE_TIMEOUT)
        return PROBE_CLASS_TIMEOUT;
    if (status == PROBE_CONCLUSIVE)
        return PROBE_CLASS_REFUSED;
    for (size_t i = 0; i < ARRAY_LEN(known_errors); i++)
        if (strcmp(reason, known_errors[i].reason) == 0)
            return known_errors[i].cls;
    for (size_t i = 0; i < ARRAY_LEN(reason_classes); i++)
        if (strncmp(reason, reason_classes[i].start, strlen(reason_classes[i].start)) == 0)
            return reason_classes[i].cls;
    /* "connection lost", "connection reset", "connection error: ..." and whatever else hiredis
     * may say about the link */
    return PROBE_CLASS_CONNECTION;
}

const char *
reply_class_name(enum probe_class c)
{
    return (unsigned)c < PROBE_CLASSES ? class_names[c] : "error";
}

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

static int
is_text(const redisReply *e)
{
    return e != NULL && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS);
}

static int
text_is(const redisReply *e, const char *word)
{
    size_t n = strlen(word);
    return is_text(e) && e->len == n && memcmp(e->str, word, n) == 0;
}

/* A host name or address as a replica names its master: 1..255 printable bytes, no blanks. */
static int
valid_host(const redisReply *e)
{
    if (!is_text(e) || e->len < 1 || e->len > 255)
        return 0;
    for (size_t i = 0; i < e->len; i++)
        if ((unsigned char)e->str[i] <= 0x20 || (unsigned char)e->str[i] >= 0x7f)
            return 0;
    return 1;
}

/* A link state word ("connected", "connect", ...): lower-case letters, '-' or '_'. */
static int
valid_link(const redisReply *e)
{
    if (!is_text(e) || e->len < 1 || e->len >= HEALTH_LINK_MAX)
        return 0;
    for (size_t i = 0; i < e->len; i++) {
        char c = e->str[i];
        if (!((c >= 'a' && c <= 'z') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* ["slave", host, port, state, offset]: fills OUT's master and link; 0, or -1 if malformed. */
static int
parse_replica(const redisReply *r, struct role_info *out)
{
    const redisReply *host, *port, *link;

    if (r->elements < 4)
        return -1;
    host = r->element[1];
    port = r->element[2];
    link = r->element[3];
    if (!valid_host(host) || port == NULL || port->type != REDIS_REPLY_INTEGER ||
        port->integer < 0 || port->integer > 65535 || !valid_link(link))
        return -1;
    /* an IPv6 literal is bracketed, as in the config's addresses */
    snprintf(out->master, sizeof(out->master),
             memchr(host->str, ':', host->len) ? "[%.*s]:%lld" : "%.*s:%lld", (int)host->len,
             host->str, (long long)port->integer);
    memcpy(out->link, link->str, link->len);
    out->link[link->len] = '\0';
    return 0;
}

int
reply_parse_role(const redisReply *r, struct role_info *out)
{
    const redisReply *e;

    health_role_clear(out);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ERROR)
        return has_word_prefix(r->str, r->len, "NOPERM") ? REPLY_ROLE_NOPERM : -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return -1;
    e = r->element[0];
    if (text_is(e, "master")) {
        /* ["master", offset, [[ip, port, offset], ...]] */
        if (r->elements < 3 || r->element[2] == NULL || r->element[2]->type != REDIS_REPLY_ARRAY)
            return -1;
        out->role = ROLE_MASTER;
        out->replicas = (int)r->element[2]->elements; /* at most REPLY_MAX_ELEMENTS (replyobj.h) */
        return 0;
    }
    if (text_is(e, "slave") || text_is(e, "replica")) {
        if (parse_replica(r, out) < 0) {
            health_role_clear(out);
            return -1;
        }
        out->role = ROLE_REPLICA;
        return 0;
    }
    if (text_is(e, "sentinel")) {
        out->role = ROLE_SENTINEL;
        return 0;
    }
    /* a role of another server (KeyDB's "active-replica"): known form, unknown role */
    return is_text(e) ? 0 : -1;
}

/* PREFIX and the start of ERRSTR, printable, into REASON. */
static void
error_text(const char *errstr, const char *prefix, char *reason, size_t len)
{
    char buf[96];

    util_strlcpy(buf, errstr, sizeof(buf));
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    snprintf(reason, len, "%s%s", prefix, buf);
}

/* The errors of the agent's own resources: they say nothing about the Redis. */
static const int agent_errnos[] = {EMFILE, ENFILE, ENOMEM, ENOBUFS};

/* Whether hiredis's error text ERRSTR ends with the text of one of agent_errnos. */
static int
agent_fault(const char *errstr)
{
    size_t n = strlen(errstr);

    for (size_t i = 0; i < ARRAY_LEN(agent_errnos); i++) {
        const char *t = strerror(agent_errnos[i]);
        size_t tn = strlen(t);
        if (n >= tn && strcmp(errstr + n - tn, t) == 0)
            return 1;
    }
    return 0;
}

enum probe_status
reply_classify_error(int err, const char *errstr, char *reason, size_t len)
{
    if (err == REDIS_ERR_IO && errstr != NULL && agent_fault(errstr)) {
        error_text(errstr, "agent error: ", reason, len);
        return PROBE_AGENT_ERROR;
    }
    if (err == REDIS_ERR_OOM) {
        /* a link refused an oversized reply (redislink.c, replyobj.c) */
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
        error_text(errstr, "connection error: ", reason, len);
        return PROBE_FAILED;
    }
    util_strlcpy(reason, "connection lost", len);
    return PROBE_FAILED;
}
