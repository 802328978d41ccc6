/* handover.c -- the versioned record one image of the agent hands to the next across execve. */
#include "handover.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/*
 * The record: one header line naming the format and its version, then one JSON object:
 *
 *   sentinel-agent handover 1
 *   {"stats_fd":4,"upgrades":2,"old_version":"0.1.0",
 *    "zk":{"session":"0x...","passwd":"<32 hex digits>"},
 *    "instances":[{"name","address","state","role","master","link","replicas","since_ms",
 *                  "last_check_ms","latency_us","ok","fail","reason"},...]}
 *
 * An instance's health is all of it (struct health, role info included): the new image
 * renders the same document from it, so a node read back is found unchanged, not rewritten.
 *
 * The header is outside the JSON so that a later format need not be JSON at all: an image
 * compares the header first and reads nothing else of a version it does not know.
 */
#define HANDOVER_MAGIC "sentinel-agent handover "
#define HANDOVER_MAX   (256u * 1024 * 1024) /* far above 10,000 instances' ~3 MB */

static const char *const state_names[] = {
    [INST_UNKNOWN] = "unknown", [INST_UP] = "up", [INST_DOWN] = "down"};
static const char *const role_names[] = {[ROLE_UNKNOWN] = "unknown",
                                         [ROLE_MASTER] = "master",
                                         [ROLE_REPLICA] = "replica",
                                         [ROLE_SENTINEL] = "sentinel"};

static int
name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

static void
hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int
hex_decode(const char *s, unsigned char *out, size_t n)
{
    if (s == NULL || strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        int v = s[i] >= '0' && s[i] <= '9'   ? s[i] - '0'
                : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
                                             : -1;
        if (v < 0)
            return -1;
        out[i / 2] = (unsigned char)(i % 2 ? (out[i / 2] << 4) | v : v);
    }
    return 0;
}

static json_t *
inst_json(const struct handover_inst *hi)
{
    const struct health *h = &hi->health;

    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:i, s:i, s:s}", "name",
                     hi->name, "address", hi->address, "state", state_names[h->state], "role",
                     role_names[h->role.role], "master", h->role.master, "link", h->role.link,
                     "replicas", h->role.replicas, "since_ms", (json_int_t)h->since_ms,
                     "last_check_ms", (json_int_t)h->last_check_ms, "latency_us",
                     (json_int_t)h->latency_us, "ok", h->consecutive_ok, "fail",
                     h->consecutive_fail, "reason", h->reason);
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int
handover_write(int fd, const struct handover *h, char *err, size_t errlen)
{
    json_t *o = json_object(), *arr = json_array();
    char sid[32], pw[2 * sizeof(h->session.passwd) + 1];
    char *s;
    int rc = -1;

    json_object_set_new(o, "stats_fd", json_integer(h->stats_fd));
    json_object_set_new(o, "upgrades", json_integer((json_int_t)h->upgrades));
    json_object_set_new(o, "old_version", json_string(h->old_version));
    if (h->has_session) {
        snprintf(sid, sizeof(sid), "0x%" PRIx64, (uint64_t)h->session.id);
        hex_encode((const unsigned char *)h->session.passwd, sizeof(h->session.passwd), pw);
        json_object_set_new(o, "zk", json_pack("{s:s, s:s}", "session", sid, "passwd", pw));
        explicit_bzero(pw, sizeof(pw));
    }
    for (size_t i = 0; i < h->ninst; i++) {
        json_t *j = inst_json(&h->inst[i]);
        if (j == NULL) {
            snprintf(err, errlen, "instance %s cannot be encoded", h->inst[i].name);
            goto out;
        }
        json_array_append_new(arr, j);
    }
    json_object_set_new(o, "instances", arr);
    arr = NULL;
    s = json_dumps(o, JSON_COMPACT);
    if (s == NULL) {
        snprintf(err, errlen, "cannot encode the record");
        goto out;
    }
    {
        char head[64];
        int n = snprintf(head, sizeof(head), HANDOVER_MAGIC "%d\n", HANDOVER_VERSION);
        size_t len = strlen(s);

        if (write_all(fd, head, (size_t)n) < 0 || write_all(fd, s, len) < 0 ||
            lseek(fd, 0, SEEK_SET) < 0)
            snprintf(err, errlen, "cannot write the record: %s", strerror(errno));
        else
            rc = 0;
        explicit_bzero(s, len); /* it holds the session password */
    }
    free(s);
out:
    json_decref(arr);
    json_decref(o);
    return rc;
}

/* The whole content of FD from offset 0, NUL-terminated; NULL with the reason in ERR. */
static char *
read_all(int fd, size_t *lenp, char *err, size_t errlen)
{
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);

    if (lseek(fd, 0, SEEK_SET) < 0 && errno != ESPIPE) {
        snprintf(err, errlen, "cannot rewind fd %d: %s", fd, strerror(errno));
        free(buf);
        return NULL;
    }
    for (;;) {
        if (len + 1 == cap) {
            if (cap >= HANDOVER_MAX) {
                snprintf(err, errlen, "record larger than %u bytes", HANDOVER_MAX);
                explicit_bzero(buf, len);
                free(buf);
                return NULL;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read fd %d: %s", fd, strerror(errno));
            explicit_bzero(buf, len);
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *lenp = len;
    return buf;
}

static const char *
jget_str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int
inst_parse(json_t *j, struct handover_inst *hi)
{
    struct health *h = &hi->health;
    const char *name = jget_str(j, "name"), *addr = jget_str(j, "address");
    const char *reason = jget_str(j, "reason");
    const char *master = jget_str(j, "master"), *link = jget_str(j, "link");
    int st = name_index(state_names, ARRAY_LEN(state_names), jget_str(j, "state"));
    int role = name_index(role_names, ARRAY_LEN(role_names), jget_str(j, "role"));
    json_t *replicas = json_object_get(j, "replicas");

    if (name == NULL || addr == NULL || reason == NULL || master == NULL || link == NULL ||
        st < 0 || role < 0 || !json_is_integer(replicas) ||
        strlen(master) >= sizeof(h->role.master) || strlen(link) >= sizeof(h->role.link))
        return -1;
    hi->name = xstrdup(name);
    hi->address = xstrdup(addr);
    memset(h, 0, sizeof(*h));
    h->state = (enum inst_state)st;
    h->role.role = (enum inst_role)role;
    h->role.replicas = (int)json_integer_value(replicas);
    util_strlcpy(h->role.master, master, sizeof(h->role.master));
    util_strlcpy(h->role.link, link, sizeof(h->role.link));
    h->since_ms = json_integer_value(json_object_get(j, "since_ms"));
    h->last_check_ms = json_integer_value(json_object_get(j, "last_check_ms"));
    h->latency_us = json_integer_value(json_object_get(j, "latency_us"));
    h->consecutive_ok = (int)json_integer_value(json_object_get(j, "ok"));
    h->consecutive_fail = (int)json_integer_value(json_object_get(j, "fail"));
    util_strlcpy(h->reason, reason, sizeof(h->reason));
    return 0;
}

struct handover *
handover_read(int fd, char *err, size_t errlen)
{
    size_t len = 0;
    char *buf = read_all(fd, &len, err, errlen), *nl, *end;
    struct handover *h = NULL;
    json_t *o = NULL, *zk, *arr;
    long version;

    if (buf == NULL)
        return NULL;
    nl = memchr(buf, '\n', len);
    if (nl == NULL || strncmp(buf, HANDOVER_MAGIC, strlen(HANDOVER_MAGIC)) != 0) {
        snprintf(err, errlen, "not a hand-over record");
        goto out;
    }
    *nl = '\0';
    version = strtol(buf + strlen(HANDOVER_MAGIC), &end, 10);
    if (*end != '\0' || version != HANDOVER_VERSION) {
        snprintf(err, errlen,
                 "hand-over record version \"%.16s\" not understood (this image reads %d)",
                 buf + strlen(HANDOVER_MAGIC), HANDOVER_VERSION);
        goto out;
    }
    o = json_loadb(nl + 1, len - (size_t)(nl + 1 - buf), 0, NULL);
    if (!json_is_object(o) || !json_is_integer(json_object_get(o, "stats_fd")) ||
        !json_is_array(arr = json_object_get(o, "instances"))) {
        snprintf(err, errlen, "malformed hand-over record");
        goto out;
    }
    h = xcalloc(1, sizeof(*h));
    h->stats_fd = (int)json_integer_value(json_object_get(o, "stats_fd"));
    h->upgrades = (uint64_t)json_integer_value(json_object_get(o, "upgrades"));
    util_strlcpy(h->old_version, jget_str(o, "old_version") ? jget_str(o, "old_version") : "",
                 sizeof(h->old_version));
    if ((zk = json_object_get(o, "zk")) != NULL) {
        const char *sid = jget_str(zk, "session");
        char *e;

        h->session.id = sid ? (int64_t)strtoull(sid, &e, 16) : 0;
        if (sid == NULL || *e != '\0' || h->session.id == 0 ||
            hex_decode(jget_str(zk, "passwd"), (unsigned char *)h->session.passwd,
                       sizeof(h->session.passwd)) < 0) {
            snprintf(err, errlen, "malformed session in the hand-over record");
            handover_free(h);
            h = NULL;
            goto out;
        }
        h->has_session = 1;
    }
    h->inst = xcalloc(json_array_size(arr) + 1, sizeof(*h->inst));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (inst_parse(json_array_get(arr, i), &h->inst[h->ninst]) < 0) {
            snprintf(err, errlen, "malformed instance %zu in the hand-over record", i);
            handover_free(h);
            h = NULL;
            goto out;
        }
        h->ninst++;
    }
out:
    if (o != NULL && (zk = json_object_get(o, "zk")) != NULL)
        json_object_del(zk, "passwd");
    json_decref(o);
    explicit_bzero(buf, len);
    free(buf);
    return h;
}

const struct handover_inst *
handover_find(const struct handover *h, const char *name, const char *address)
{
    for (size_t i = 0; h != NULL && i < h->ninst; i++)
        if (strcmp(h->inst[i].name, name) == 0 && strcmp(h->inst[i].address, address) == 0)
            return &h->inst[i];
    return NULL;
}

void
handover_free(struct handover *h)
{
    if (h == NULL)
        return;
    explicit_bzero(&h->session, sizeof(h->session));
    for (size_t i = 0; i < h->ninst; i++) {
        free(h->inst[i].name);
        free(h->inst[i].address);
    }
    free(h->inst);
    free(h);
}
