/* confval.c -- the config's value parsers and checks, pure: they fill the caller's error text. */
#include <grp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "confpriv.h"
#include "log.h"

#define DURATION_MAX_MS (24LL * 3600 * 1000) /* far above every range, far below overflow */

int
confval_uint(const char *s, int64_t max, int64_t *out)
{
    int64_t v = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

const char *
confval_fmt_ms(char *buf, size_t len, int64_t ms)
{
    if (ms > 0 && ms % CONF_MS_MIN == 0)
        snprintf(buf, len, "%lldm", (long long)(ms / CONF_MS_MIN));
    else if (ms > 0 && ms % 1000 == 0)
        snprintf(buf, len, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, len, "%lldms", (long long)ms);
    return buf;
}

bool
confval_name_ok(const char *s)
{
    size_t n = strlen(s);

    /* "." and ".." match the character set but cannot be ZooKeeper node names */
    if (n < 1 || n > CONF_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

const char *
confval_agent_name_problem(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > CONF_AGENT_MAX)
        return "must be 1..255 characters";
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return "must not be \".\" or \"..\"";
    for (; *s; s++) {
        if (*s == '/')
            return "must not contain '/'";
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return "must be printable ASCII";
    }
    return NULL;
}

const char *
confval_zk_root_problem(const char *s)
{
    if (s[0] != '/')
        return "must be an absolute path";
    if (s[1] == '\0')
        return "must not be \"/\"";
    for (const char *c = s; *c; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c > 0x7e)
            return "must be printable ASCII without spaces";
    }
    /* each component starts after a '/' */
    for (const char *c = s; *c; c += 1 + strcspn(c + 1, "/")) {
        size_t n = strcspn(c + 1, "/");
        if (n == 0)
            return c[1] == '\0' ? "must not end with '/'" : "must not contain empty components";
        if ((n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.'))
            return "must not contain \".\" or \"..\" components";
    }
    return NULL;
}

const char *
confval_group(const char *v, int flags, gid_t *gid)
{
    int64_t n;
    struct group *gr;

    if (confval_uint(v, (gid_t)-2, &n) == 0) {
        *gid = (gid_t)n;
        return NULL;
    }
    if (flags & CONF_NO_RESOLVE) {
        *gid = (gid_t)-1;
        return NULL;
    }
    gr = getgrnam(v);
    if (gr == NULL)
        return "no such group";
    *gid = gr->gr_gid;
    return NULL;
}

int
confval_bad(char *err, size_t errlen, const char *key, const char *v, const char *why)
{
    snprintf(err, errlen, "bad %s \"%s\": %s", key, v, why);
    return -1;
}

int
confval_duration(const char *key, const char *v, int64_t min, int64_t max, int64_t *out, char *err,
                 size_t errlen)
{
    char a[32], b[32];
    int64_t ms;

    if (conf_parse_duration(v, &ms) < 0) {
        snprintf(err, errlen, "bad duration \"%s\" for %s (e.g. 500ms, 2s, 1m)", v, key);
        return -1;
    }
    if (ms < min || ms > max) {
        snprintf(err, errlen, "%s \"%s\" out of range (%s..%s)", key, v,
                 confval_fmt_ms(a, sizeof(a), min), confval_fmt_ms(b, sizeof(b), max));
        return -1;
    }
    *out = ms;
    return 0;
}

int
confval_int(const char *key, const char *v, int64_t min, int64_t max, int *out, char *err,
            size_t errlen)
{
    int64_t n;

    if (confval_uint(v, INT_MAX, &n) < 0) {
        snprintf(err, errlen, "bad number \"%s\" for %s", v, key);
        return -1;
    }
    if (n < min || n > max) {
        snprintf(err, errlen, "%s %lld out of range (%lld..%lld)", key, (long long)n,
                 (long long)min, (long long)max);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* Parses an octal file mode of at most MAX. */
static int
parse_mode(const char *s, unsigned max, mode_t *out)
{
    unsigned v = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '7')
            return -1;
        v = v * 8 + (unsigned)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = (mode_t)v;
    return 0;
}

int
confval_mode(const char *key, const char *v, unsigned max, mode_t *out, char *err, size_t errlen)
{
    if (parse_mode(v, max, out) == 0)
        return 0;
    snprintf(err, errlen, "bad %s \"%s\" (expected octal 0..0%llo)", key, v,
             (unsigned long long)max);
    return -1;
}

int
confval_path(const char *key, const char *v, int64_t max, char *err, size_t errlen)
{
    char why[64];

    if (v[0] != '/')
        return confval_bad(err, errlen, key, v, "must be an absolute path");
    if ((int64_t)strlen(v) > max) {
        snprintf(why, sizeof(why), "longer than %lld bytes", (long long)max);
        return confval_bad(err, errlen, key, v, why);
    }
    return 0;
}

int
confval_cluster(const char *v, char *err, size_t errlen)
{
    if (!confval_name_ok(v)) {
        snprintf(err, errlen, "bad cluster name \"%s\" (expected [A-Za-z0-9._-]{1,64})", v);
        return -1;
    }
    if (strcmp(v, "agents") == 0) {
        /* ROOT/agents already holds the agent nodes */
        snprintf(err, errlen, "cluster name \"agents\" is reserved");
        return -1;
    }
    return 0;
}

int
confval_log_level(const char *key, const char *v, enum log_level *out, char *err, size_t errlen)
{
    if (log_level_parse(v, out) == 0)
        return 0;
    snprintf(err, errlen, "bad %s \"%s\" (expected error, warn, info or debug)", key, v);
    return -1;
}

int
confval_auth(const char *key, const char *v, char *err, size_t errlen)
{
    const char *colon = strchr(v, ':');

    if (colon != NULL && colon != v && colon[1] != '\0')
        return 0;
    snprintf(err, errlen, "bad %s: expected user:password, both non-empty", key);
    return -1;
}

int
conf_parse_duration(const char *s, int64_t *ms)
{
    int64_t n, unit;

    if (*s < '0' || *s > '9')
        return -1;
    for (n = 0; *s >= '0' && *s <= '9'; s++) {
        n = n * 10 + (*s - '0');
        if (n > DURATION_MAX_MS)
            return -1;
    }
    if (*s == '\0' || strcmp(s, "ms") == 0)
        unit = 1;
    else if (strcmp(s, "s") == 0)
        unit = 1000;
    else if (strcmp(s, "m") == 0)
        unit = CONF_MS_MIN;
    else if (strcmp(s, "h") == 0)
        unit = CONF_MS_H;
    else
        return -1;
    if (n > DURATION_MAX_MS / unit)
        return -1;
    *ms = n * unit;
    return 0;
}
