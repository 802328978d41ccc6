/* conf.c -- read and check the INI config (own line reader, one key table), every error kept. */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "util.h"

#define DEF_INTERVAL_MS   1000
#define DEF_TIMEOUT_MS    500
#define DEF_DOWNINTER_MS  250
#define DEF_RISE          2
#define DEF_FALL          2
#define DEF_MAX_INFLIGHT  1024
#define DEF_STATS_SOCKET  "/run/sentinel-agent/stats.sock"
#define DEF_STATS_MODE    0660
#define DEF_STATE_DIR     "/var/lib/sentinel-agent"
#define DEF_LOG_LEVEL     LOGL_INFO
#define DEF_SHUTDOWN_MS   5000
#define DEF_ZK_ROOT       "/sentinel-agent"
#define DEF_ZK_SESSION_MS 10000
#define DEF_CLUSTER       "default"
#define DURATION_MAX_MS   (24LL * 3600 * 1000) /* far above every range, far below overflow */
#define MS_MIN            (60LL * 1000)
#define MS_H              (60 * MS_MIN)
#define INTERVAL_MIN_MS   100
#define INTERVAL_MAX_MS   MS_H
#define TIMEOUT_MIN_MS    10
#define DOWNINTER_MIN_MS  50
#define SHUTDOWN_MIN_MS   100
#define SHUTDOWN_MAX_MS   (10 * MS_MIN)
#define SESSION_MIN_MS    1000
#define SESSION_MAX_MS    (10 * MS_MIN)
#define COUNT_MAX         100
#define INFLIGHT_MAX      1000000
#define LINE_MAX_LEN      197 /* libinih's limit, kept (parse_line) */
#define BAD_LINE_MSG      "expected '[section]' or 'key = value'"

enum sect { SECT_NONE, SECT_AGENT, SECT_ZK, SECT_INSTANCE, SECT_SKIP };

/* The sections a key may appear in. */
#define S_AGENT 0x1
#define S_ZK    0x2
#define S_INST  0x4

/* What a value is, how it is checked, and what it is stored as. */
enum kind {
    K_DURATION, /* int64_t ms within min..max (conf_parse_duration) */
    K_COUNT,    /* int within min..max */
    K_STRING,   /* char *, any text */
    K_PATH,     /* char *, an absolute path of at most max bytes */
    K_MODE,     /* mode_t, octal, at most max */
    K_LOGLEVEL, /* enum log_level */
    K_ADDRESS,  /* char * as written, and a struct addr at aux (addr_parse) */
    K_LISTEN,   /* the same, HOST:PORT only */
    K_HOSTNAME, /* char[max + 1]: the agent name, one ZooKeeper node name */
    K_CLUSTER,  /* char[max + 1]: [A-Za-z0-9._-], not "agents" */
    K_HOSTS,    /* char *, a ZooKeeper connect string (addr_check_hosts) */
    K_ZKPATH,   /* char *, an absolute ZooKeeper path */
    K_AUTH,     /* char *, "user:password", never shown in a message */
    K_GROUP,    /* char * as written, and its gid_t at aux (a name resolved at load, or a gid) */
};

/*
 * Every key the config knows, like ntpd's keyword table: adding a key is adding a row (and
 * its field in conf.h). OFF is the field in struct conf for [agent] and [zookeeper], IOFF the
 * one in struct conf_instance for [instance NAME]; a key in both [agent] and [instance] is a
 * per-instance override whose default is the [agent] value (check_instance; such a key holds a
 * number). AUX is a second field in the same struct, for an address's parsed form.
 */
struct key {
    const char *name;
    enum kind kind;
    unsigned sections;
    int64_t min, max;
    size_t off, ioff, aux;
};

#define C(f) offsetof(struct conf, f)
#define I(f) offsetof(struct conf_instance, f)

static const struct key keys[] = {
    {"name", K_HOSTNAME, S_AGENT, 1, CONF_AGENT_MAX, .off = C(name)},
    {"interval", K_DURATION, S_AGENT | S_INST, INTERVAL_MIN_MS, INTERVAL_MAX_MS,
     .off = C(interval_ms), .ioff = I(interval_ms)},
    /* and at most the interval: check_agent(), check_instance() */
    {"timeout", K_DURATION, S_AGENT | S_INST, TIMEOUT_MIN_MS, INTERVAL_MAX_MS, .off = C(timeout_ms),
     .ioff = I(timeout_ms)},
    /* and at most the interval; unset: min(250ms, interval): check_agent(), check_instance() */
    {"downinter", K_DURATION, S_AGENT | S_INST, DOWNINTER_MIN_MS, INTERVAL_MAX_MS,
     .off = C(downinter_ms), .ioff = I(downinter_ms)},
    {"rise", K_COUNT, S_AGENT | S_INST, 1, COUNT_MAX, .off = C(rise), .ioff = I(rise)},
    {"fall", K_COUNT, S_AGENT | S_INST, 1, COUNT_MAX, .off = C(fall), .ioff = I(fall)},
    {"max_inflight", K_COUNT, S_AGENT, 1, INFLIGHT_MAX, .off = C(max_inflight)},
    {"stats_socket", K_PATH, S_AGENT, 1, ADDR_UNIX_MAX - 1, .off = C(stats_socket)},
    {"stats_socket_mode", K_MODE, S_AGENT, 0, 0777, .off = C(stats_socket_mode)},
    {"stats_socket_group", K_GROUP, S_AGENT, 0, 0, .off = C(stats_socket_group),
     .aux = C(stats_socket_gid)},
    {"log_level", K_LOGLEVEL, S_AGENT, 0, 0, .off = C(log_level)},
    {"shutdown_timeout", K_DURATION, S_AGENT, SHUTDOWN_MIN_MS, SHUTDOWN_MAX_MS,
     .off = C(shutdown_timeout_ms)},
    {"metrics_listen", K_LISTEN, S_AGENT, 0, 0, .off = C(metrics_listen), .aux = C(metrics_addr)},
    {"state_dir", K_PATH, S_AGENT, 1, 4095, .off = C(state_dir)},
    {"hosts", K_HOSTS, S_ZK, 0, 0, .off = C(zk_hosts)},
    {"root", K_ZKPATH, S_ZK, 0, 0, .off = C(zk_root)},
    {"session_timeout", K_DURATION, S_ZK, SESSION_MIN_MS, SESSION_MAX_MS,
     .off = C(zk_session_timeout_ms)},
    {"auth", K_AUTH, S_ZK, 0, 0, .off = C(zk_auth)},
    {"address", K_ADDRESS, S_INST, 0, 0, .ioff = I(address), .aux = I(addr)},
    {"cluster", K_CLUSTER, S_INST, 1, CONF_NAME_MAX, .ioff = I(cluster)},
    {"username", K_STRING, S_INST, 0, 0, .ioff = I(username)},
    {"password", K_STRING, S_INST, 0, 0, .ioff = I(password)},
};

#define NKEYS ARRAY_LEN(keys)

/* The size of a value of kind KIND stored as a plain number, 0 for the others. */
static size_t
scalar_size(enum kind kind)
{
    switch (kind) {
    case K_DURATION:
        return sizeof(int64_t);
    case K_COUNT:
        return sizeof(int);
    case K_MODE:
        return sizeof(mode_t);
    case K_LOGLEVEL:
        return sizeof(enum log_level);
    default:
        return 0;
    }
}

/* Whether values of kind KIND are stored as a char * that the config owns. */
static bool
is_string(enum kind kind)
{
    return scalar_size(kind) == 0 && kind != K_HOSTNAME && kind != K_CLUSTER;
}

/* Where each key of a section was given (0: not given) and whether its value was rejected. */
struct keyset {
    int line[NKEYS];
    bool bad[NKEYS];
};

/* An [instance NAME] section while parsing; DISCARD ones are validated, then dropped. */
struct pinst {
    struct conf_instance *ci;
    struct keyset ks;
    bool discard;
};

struct perr {
    int line; /* 0: the file as a whole */
    size_t seq;
    char *msg;
};

/* Everything one load needs. */
struct parser {
    const char *file;
    struct conf *conf;
    struct perr *errs;
    size_t nerrs, caperrs;
    /* input: a FILE or a string, read a whole physical line at a time */
    FILE *fp;
    const char *text;
    size_t pos;
    char *buf;
    size_t bufcap;
    int lineno;
    int read_errno;
    int flags; /* CONF_NO_RESOLVE */
    /* sections */
    enum sect sect;
    int agent_line, zk_line;
    struct keyset agent_ks, zk_ks;
    struct pinst *insts;
    size_t ninsts, capinsts;
    /* index of kept instance names: slot = 1 + index into insts, 0 empty; capacity 2^k */
    size_t *names;
    size_t namecap;
};

static void perr_add(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void key_value(struct parser *p, const char *name, const char *value);

static char *
vstrprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    char *s;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    s = xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static void
perr_add(struct parser *p, int line, const char *fmt, ...)
{
    va_list ap;

    if (p->nerrs == p->caperrs) {
        p->caperrs = p->caperrs ? 2 * p->caperrs : 8;
        p->errs = xrealloc(p->errs, p->caperrs * sizeof(*p->errs));
    }
    va_start(ap, fmt);
    p->errs[p->nerrs].msg = vstrprintf(fmt, ap);
    va_end(ap);
    p->errs[p->nerrs].line = line;
    p->errs[p->nerrs].seq = p->nerrs;
    p->nerrs++;
}

static int
perr_cmp(const void *a, const void *b)
{
    const struct perr *x = a, *y = b;

    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Moves the collected errors, sorted by line, into ERRS as "FILE:LINE: error: MSG". */
static void
perr_flush(struct parser *p, struct conf_errors *errs)
{
    qsort(p->errs, p->nerrs, sizeof(*p->errs), perr_cmp);
    errs->msg = xrealloc(errs->msg, (errs->n + p->nerrs) * sizeof(*errs->msg));
    for (size_t i = 0; i < p->nerrs; i++) {
        struct sbuf sb = {0};
        if (p->errs[i].line > 0)
            sbuf_printf(&sb, "%s:%d: error: %s", p->file, p->errs[i].line, p->errs[i].msg);
        else
            sbuf_printf(&sb, "%s: error: %s", p->file, p->errs[i].msg);
        errs->msg[errs->n++] = sb.buf;
        free(p->errs[i].msg);
    }
    free(p->errs);
    p->errs = NULL;
    p->nerrs = p->caperrs = 0;
}

/* ---- value checks shared by several keys ---- */

/* Parses a decimal integer without sign or spaces, at most MAX. */
static int
parse_uint(const char *s, int64_t max, int64_t *out)
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

static const char *
fmt_ms(char *buf, size_t len, int64_t ms)
{
    if (ms > 0 && ms % MS_MIN == 0)
        snprintf(buf, len, "%lldm", (long long)(ms / MS_MIN));
    else if (ms > 0 && ms % 1000 == 0)
        snprintf(buf, len, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, len, "%lldms", (long long)ms);
    return buf;
}

static bool
valid_name(const char *s)
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

static int
get_duration(struct parser *p, const char *key, const char *v, int64_t min, int64_t max,
             int64_t *out)
{
    char a[32], b[32];
    int64_t ms;

    if (conf_parse_duration(v, &ms) < 0) {
        perr_add(p, p->lineno, "bad duration \"%s\" for %s (e.g. 500ms, 2s, 1m)", v, key);
        return -1;
    }
    if (ms < min || ms > max) {
        perr_add(p, p->lineno, "%s \"%s\" out of range (%s..%s)", key, v, fmt_ms(a, sizeof(a), min),
                 fmt_ms(b, sizeof(b), max));
        return -1;
    }
    *out = ms;
    return 0;
}

static int
get_int(struct parser *p, const char *key, const char *v, int64_t min, int64_t max, int *out)
{
    int64_t n;

    if (parse_uint(v, INT_MAX, &n) < 0) {
        perr_add(p, p->lineno, "bad number \"%s\" for %s", v, key);
        return -1;
    }
    if (n < min || n > max) {
        perr_add(p, p->lineno, "%s %lld out of range (%lld..%lld)", key, (long long)n,
                 (long long)min, (long long)max);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* Checks an agent name: it becomes one ZooKeeper node name. Returns NULL or the reason. */
static const char *
agent_name_problem(const char *s)
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

static const char *
zk_root_problem(const char *s)
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

/*
 * A group for a file we create: a gid, or a name looked up now (local files or NSS, once at
 * load, so the loop never waits on it); with CONF_NO_RESOLVE a name is left unresolved.
 * Returns NULL and sets *GID, or the problem.
 */
static const char *
get_group(const char *v, int flags, gid_t *gid)
{
    int64_t n;
    struct group *gr;

    if (parse_uint(v, (gid_t)-2, &n) == 0) {
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

/* ---- section headers, seen by the reader ---- */

static struct pinst *
cur_inst(struct parser *p)
{
    return &p->insts[p->ninsts - 1];
}

static size_t
name_hash(const char *s)
{
    size_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/*
 * Returns the slot of NAME in the name index: the slot holding it, or the empty one where it
 * would go. The index is open addressing at most half full, so a file of 10,000 instances
 * checks for duplicates in linear time.
 */
static size_t *
name_slot(struct parser *p, const char *name)
{
    size_t mask = p->namecap - 1;
    size_t i = name_hash(name) & mask;

    while (p->names[i] != 0 && strcmp(p->insts[p->names[i] - 1].ci->name, name) != 0)
        i = (i + 1) & mask;
    return &p->names[i];
}

/* Adds instance IDX (its name not yet present) to the name index, growing it as needed. */
static void
name_add(struct parser *p, size_t idx)
{
    if (2 * (p->ninsts + 1) > p->namecap) {
        size_t *old = p->names, oldcap = p->namecap;
        p->namecap = p->namecap ? 2 * p->namecap : 64;
        p->names = xcalloc(p->namecap, sizeof(*p->names));
        for (size_t i = 0; i < oldcap; i++)
            if (old[i] != 0)
                *name_slot(p, p->insts[old[i] - 1].ci->name) = old[i];
        free(old);
    }
    *name_slot(p, p->insts[idx].ci->name) = idx + 1;
}

static void
begin_instance(struct parser *p, const char *name)
{
    struct pinst *pi;

    if (p->ninsts == p->capinsts) {
        p->capinsts = p->capinsts ? 2 * p->capinsts : 8;
        p->insts = xrealloc(p->insts, p->capinsts * sizeof(*p->insts));
    }
    pi = &p->insts[p->ninsts++];
    memset(pi, 0, sizeof(*pi));
    pi->ci = xcalloc(1, sizeof(*pi->ci));
    util_strlcpy(pi->ci->name, name, sizeof(pi->ci->name));
    util_strlcpy(pi->ci->cluster, DEF_CLUSTER, sizeof(pi->ci->cluster));
    pi->ci->line = p->lineno;
    p->sect = SECT_INSTANCE;

    if (!valid_name(name)) {
        perr_add(p, p->lineno, "bad instance name \"%s\" (expected [A-Za-z0-9._-]{1,64})", name);
        pi->discard = true;
        return;
    }
    if (p->namecap > 0 && *name_slot(p, name) != 0) {
        const struct pinst *first = &p->insts[*name_slot(p, name) - 1];
        perr_add(p, p->lineno, "duplicate instance \"%s\" (first defined on line %d)", name,
                 first->ci->line);
        pi->discard = true;
        return;
    }
    name_add(p, p->ninsts - 1);
}

/* INNER is the text between the brackets, already trimmed. */
static void
begin_section(struct parser *p, char *inner)
{
    if (strcmp(inner, "agent") == 0 || strcmp(inner, "zookeeper") == 0) {
        bool agent = inner[0] == 'a';
        int *first = agent ? &p->agent_line : &p->zk_line;
        p->sect = agent ? SECT_AGENT : SECT_ZK;
        if (*first)
            perr_add(p, p->lineno, "duplicate section [%s] (first on line %d)", inner, *first);
        else
            *first = p->lineno;
        return;
    }
    if (strncmp(inner, "instance", 8) == 0 &&
        (inner[8] == '\0' || isspace((unsigned char)inner[8]))) {
        char *name = inner + 8;
        while (isspace((unsigned char)*name))
            name++;
        begin_instance(p, name);
        return;
    }
    perr_add(p, p->lineno,
             "unknown section [%s] (expected [agent], [zookeeper] or [instance NAME])", inner);
    p->sect = SECT_SKIP;
}

/* Stops at one of CHARS, or at an inline ';' comment, which starts only after a blank. */
static char *
scan_to(char *s, const char *chars)
{
    bool was_space = false;

    while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/*
 * Reads the next physical line into p->buf without its line terminator. Returns its length,
 * or -1 at the end of the input or on a read error (then p->read_errno is set).
 */
static ssize_t
next_line(struct parser *p)
{
    ssize_t n;

    if (p->fp) {
        errno = 0;
        n = getline(&p->buf, &p->bufcap, p->fp);
        if (n < 0) {
            if (ferror(p->fp))
                p->read_errno = errno ? errno : EIO;
            return -1;
        }
    } else {
        const char *s = p->text + p->pos, *nl;
        if (*s == '\0')
            return -1;
        nl = strchr(s, '\n');
        n = nl ? nl - s + 1 : (ssize_t)strlen(s);
        if ((size_t)n + 1 > p->bufcap) {
            p->bufcap = (size_t)n + 1;
            p->buf = xrealloc(p->buf, p->bufcap);
        }
        memcpy(p->buf, s, (size_t)n);
        p->buf[n] = '\0';
        p->pos += (size_t)n;
    }
    if (n > 0 && p->buf[n - 1] == '\n')
        p->buf[--n] = '\0';
    if (n > 0 && p->buf[n - 1] == '\r')
        p->buf[--n] = '\0';
    return n;
}

static char *
rstrip(char *s)
{
    char *end = s + strlen(s);

    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* Reads "[section]" at S (the line without its leading blanks); 0, or -1 if malformed. */
static int
section_line(struct parser *p, char *s)
{
    char *end = scan_to(s + 1, "]"), *rest = end + 1, *inner = s + 1;

    if (*end != ']')
        return -1;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest != '\0' && *rest != ';' && *rest != '#')
        return -1;
    *end = '\0';
    while (isspace((unsigned char)*inner))
        inner++;
    begin_section(p, rstrip(inner));
    return 0;
}

/*
 * Handles the physical line in p->buf, N bytes long: a blank or comment line, a section
 * header, or "key = value". The syntax is libinih's, which the agent used to link, so that
 * every file it accepted reads the same: a ';' starts an inline comment only after a blank,
 * a key stops at '=' (':' is refused), and the line limit is inih's 200-byte buffer.
 */
static void
parse_line(struct parser *p, ssize_t n)
{
    char *s = p->buf, *end, *value;

    if (p->lineno == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
        (unsigned char)s[2] == 0xBF)
        s += 3;
    if (strlen(p->buf) != (size_t)n) {
        perr_add(p, p->lineno, "NUL byte in line");
        return;
    }
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0' || *s == ';' || *s == '#')
        return;
    if ((size_t)n > LINE_MAX_LEN) {
        perr_add(p, p->lineno, "line too long (more than %d characters)", LINE_MAX_LEN);
        return;
    }
    if (*s == '[') {
        if (section_line(p, s) < 0)
            perr_add(p, p->lineno, BAD_LINE_MSG);
        return;
    }
    end = scan_to(s, "=:");
    if (*end != '=' || end == s) {
        perr_add(p, p->lineno, BAD_LINE_MSG);
        return;
    }
    *end = '\0';
    value = end + 1;
    *scan_to(value, "") = '\0';
    while (isspace((unsigned char)*value))
        value++;
    key_value(p, rstrip(s), rstrip(value));
}

/* ---- keys, seen by the reader ---- */

static int
key_find(const char *name)
{
    for (size_t k = 0; k < NKEYS; k++) {
        if (strcmp(keys[k].name, name) == 0)
            return (int)k;
    }
    return -1;
}

/* The line where KS was given the key NAME (a name in the table), 0 if not given. */
static int
given(const struct keyset *ks, const char *name)
{
    return ks->line[key_find(name)];
}

/* Whether KS was given the key NAME and its value was rejected. */
static bool
rejected(const struct keyset *ks, const char *name)
{
    return ks->bad[key_find(name)];
}

static void
set_string(char **dst, const char *v)
{
    free(*dst);
    *dst = xstrdup(v);
}

/* Checks V as key K and stores it in the struct at BASE. Returns 0, or -1 once reported. */
static int
set_value(struct parser *p, const struct key *k, char *base, size_t off, const char *v)
{
    void *dst = base + off;
    int aflags = (p->flags & CONF_NO_RESOLVE) ? ADDR_NO_RESOLVE : 0;
    const char *why = NULL, *colon;
    char err[256];

    switch (k->kind) {
    case K_DURATION:
        return get_duration(p, k->name, v, k->min, k->max, dst);
    case K_COUNT:
        return get_int(p, k->name, v, k->min, k->max, dst);
    case K_STRING:
        set_string(dst, v);
        return 0;
    case K_PATH:
        if (v[0] != '/')
            why = "must be an absolute path";
        else if ((int64_t)strlen(v) > k->max) {
            snprintf(err, sizeof(err), "longer than %lld bytes", (long long)k->max);
            why = err;
        }
        break;
    case K_MODE:
        if (parse_mode(v, (unsigned)k->max, dst) == 0)
            return 0;
        perr_add(p, p->lineno, "bad %s \"%s\" (expected octal 0..0%llo)", k->name, v,
                 (unsigned long long)k->max);
        return -1;
    case K_LOGLEVEL:
        if (log_level_parse(v, dst) == 0)
            return 0;
        perr_add(p, p->lineno, "bad %s \"%s\" (expected error, warn, info or debug)", k->name, v);
        return -1;
    case K_ADDRESS:
    case K_LISTEN:
        if (addr_parse(v, aflags, (struct addr *)(void *)(base + k->aux), err, sizeof(err)) < 0)
            why = err;
        else if (k->kind == K_LISTEN && ((struct addr *)(void *)(base + k->aux))->family == AF_UNIX)
            why = "must be HOST:PORT, not unix:";
        break;
    case K_HOSTNAME:
        why = agent_name_problem(v);
        break;
    case K_CLUSTER:
        if (!valid_name(v)) {
            perr_add(p, p->lineno, "bad cluster name \"%s\" (expected [A-Za-z0-9._-]{1,64})", v);
            return -1;
        }
        if (strcmp(v, "agents") == 0) {
            /* ROOT/agents already holds the agent nodes */
            perr_add(p, p->lineno, "cluster name \"agents\" is reserved");
            return -1;
        }
        util_strlcpy(dst, v, (size_t)k->max + 1);
        return 0;
    case K_HOSTS:
        if (addr_check_hosts(v, err, sizeof(err)) == 0)
            break;
        perr_add(p, p->lineno, "%s", err);
        return -1;
    case K_ZKPATH:
        why = zk_root_problem(v);
        break;
    case K_GROUP:
        why = get_group(v, p->flags, (gid_t *)(void *)(base + k->aux));
        break;
    case K_AUTH:
        /* the value is a secret: the message must not show it */
        colon = strchr(v, ':');
        if (colon != NULL && colon != v && colon[1] != '\0')
            break;
        perr_add(p, p->lineno, "bad %s: expected user:password, both non-empty", k->name);
        return -1;
    }
    if (why) {
        perr_add(p, p->lineno, "bad %s \"%s\": %s", k->name, v, why);
        return -1;
    }
    if (k->kind == K_HOSTNAME)
        util_strlcpy(dst, v, (size_t)k->max + 1);
    else
        set_string(dst, v);
    return 0;
}

/* A "key = value" line of the current section. */
static void
key_value(struct parser *p, const char *name, const char *value)
{
    char sectname[CONF_NAME_MAX + 16];
    struct keyset *ks;
    char *base;
    unsigned sect;
    size_t off;
    int k;

    switch (p->sect) {
    case SECT_NONE:
        perr_add(p, p->lineno, "key \"%s\" before any section", name);
        return;
    case SECT_SKIP:
        return;
    case SECT_AGENT:
    case SECT_ZK:
        sect = p->sect == SECT_AGENT ? S_AGENT : S_ZK;
        snprintf(sectname, sizeof(sectname), "%s", sect == S_AGENT ? "[agent]" : "[zookeeper]");
        ks = sect == S_AGENT ? &p->agent_ks : &p->zk_ks;
        base = (char *)p->conf;
        break;
    case SECT_INSTANCE:
    default:
        sect = S_INST;
        snprintf(sectname, sizeof(sectname), "[instance %s]", cur_inst(p)->ci->name);
        ks = &cur_inst(p)->ks;
        base = (char *)cur_inst(p)->ci;
        break;
    }
    k = key_find(name);
    if (k < 0 || !(keys[k].sections & sect)) {
        perr_add(p, p->lineno, "unknown key \"%s\" in %s", name, sectname);
        return;
    }
    if (ks->line[k]) {
        perr_add(p, p->lineno, "duplicate key \"%s\" in %s (first given on line %d)", name,
                 sectname, ks->line[k]);
        return;
    }
    ks->line[k] = p->lineno;
    off = sect == S_INST ? keys[k].ioff : keys[k].off;
    if (*value == '\0') {
        perr_add(p, p->lineno, "empty value for %s", name);
        ks->bad[k] = true;
    } else if (set_value(p, &keys[k], base, off, value) < 0) {
        ks->bad[k] = true;
    }
}

/* ---- checks that need the whole file ---- */

static void
check_agent(struct parser *p)
{
    struct conf *c = p->conf;
    char host[CONF_AGENT_MAX + 2], a[32], b[32];
    const char *why;
    int line;

    if (!given(&p->agent_ks, "name")) {
        memset(host, 0, sizeof(host));
        if (gethostname(host, sizeof(host) - 1) < 0)
            host[0] = '\0';
        if ((why = agent_name_problem(host)) != NULL)
            perr_add(p, p->agent_line ? p->agent_line : 1,
                     "host name \"%s\" cannot be the agent name (%s): set name in [agent]", host,
                     why);
        else
            util_strlcpy(c->name, host, sizeof(c->name));
    }
    line = given(&p->agent_ks, "downinter");
    if (!line && c->downinter_ms > c->interval_ms)
        c->downinter_ms = c->interval_ms; /* the default: min(250ms, interval) */
    else if (line && !rejected(&p->agent_ks, "downinter") && !rejected(&p->agent_ks, "interval") &&
             c->downinter_ms > c->interval_ms)
        perr_add(p, line, "downinter %s exceeds interval %s", fmt_ms(a, sizeof(a), c->downinter_ms),
                 fmt_ms(b, sizeof(b), c->interval_ms));

    if (rejected(&p->agent_ks, "interval") || rejected(&p->agent_ks, "timeout") ||
        c->timeout_ms <= c->interval_ms)
        return;
    line = given(&p->agent_ks, "timeout");
    perr_add(p, line ? line : p->agent_line, "timeout %s%s exceeds interval %s",
             fmt_ms(a, sizeof(a), c->timeout_ms), line ? "" : " (default)",
             fmt_ms(b, sizeof(b), c->interval_ms));
}

static void
check_zk(struct parser *p)
{
    if (!p->zk_line)
        perr_add(p, 1, "missing section [zookeeper] (hosts is required)");
    else if (!given(&p->zk_ks, "hosts"))
        perr_add(p, p->zk_line, "missing hosts in [zookeeper]");
}

/*
 * An instance's downinter: its own, else [agent]'s, at most its interval; when neither sets it,
 * min(250ms, its interval). A value given explicitly (here or in [agent]) above the interval is
 * an error on the line that gave it here, else on the section header.
 */
static void
check_downinter(struct parser *p, struct pinst *pi)
{
    struct conf_instance *ci = pi->ci;
    const struct keyset *ks = &pi->ks;
    int di_line = given(ks, "downinter"), iv_line = given(ks, "interval");
    int agent_di = given(&p->agent_ks, "downinter");
    char a[32], b[32];

    if (!di_line && !agent_di) {
        ci->downinter_ms = DEF_DOWNINTER_MS < ci->interval_ms ? DEF_DOWNINTER_MS : ci->interval_ms;
        return;
    }
    if (rejected(di_line ? ks : &p->agent_ks, "downinter") ||
        rejected(iv_line ? ks : &p->agent_ks, "interval") || ci->downinter_ms <= ci->interval_ms)
        return;
    /* [agent]'s own check reports an [agent] value above [agent]'s interval */
    if (!di_line && !iv_line)
        return;
    perr_add(p, di_line ? di_line : ci->line, "downinter %s%s exceeds interval %s%s",
             fmt_ms(a, sizeof(a), ci->downinter_ms), di_line ? "" : " (inherited from [agent])",
             fmt_ms(b, sizeof(b), ci->interval_ms), iv_line ? "" : " (inherited from [agent])");
}

/* Copies every [agent] value the instance does not override, then checks the result. */
static void
check_instance(struct parser *p, struct pinst *pi)
{
    struct conf_instance *ci = pi->ci;
    const struct keyset *ks = &pi->ks;
    int iv_line = given(ks, "interval"), to_line = given(ks, "timeout");
    bool known_iv, known_to;
    char a[32], b[32];

    for (size_t k = 0; k < NKEYS; k++) {
        if ((keys[k].sections & (S_AGENT | S_INST)) != (S_AGENT | S_INST) || ks->line[k])
            continue;
        memcpy((char *)ci + keys[k].ioff, (char *)p->conf + keys[k].off, scalar_size(keys[k].kind));
    }
    if (!given(ks, "address"))
        perr_add(p, ci->line, "missing address in [instance %s]", ci->name);
    if (given(ks, "username") && !given(ks, "password"))
        perr_add(p, given(ks, "username"), "username without password in [instance %s]", ci->name);
    check_downinter(p, pi);

    /* [agent]'s own check covers an instance that overrides neither */
    if (!iv_line && !to_line)
        return;
    /* a rejected value, here or in [agent], was reported already */
    known_iv = !rejected(iv_line ? ks : &p->agent_ks, "interval");
    known_to = !rejected(to_line ? ks : &p->agent_ks, "timeout");
    if (!known_iv || !known_to || ci->timeout_ms <= ci->interval_ms)
        return;
    perr_add(p, to_line ? to_line : ci->line, "timeout %s%s exceeds interval %s%s",
             fmt_ms(a, sizeof(a), ci->timeout_ms), to_line ? "" : " (inherited from [agent])",
             fmt_ms(b, sizeof(b), ci->interval_ms), iv_line ? "" : " (inherited from [agent])");
}

/*
 * Frees the strings of every key of SECT (S_INST: the struct conf_instance at BASE; else
 * the struct conf). Each is wiped first: passwords and the auth secret are among them.
 */
static void
free_strings(char *base, unsigned sect)
{
    for (size_t k = 0; k < NKEYS; k++) {
        char **sp = (char **)(void *)(base + (sect == S_INST ? keys[k].ioff : keys[k].off));

        if (!(keys[k].sections & sect) || !is_string(keys[k].kind) || *sp == NULL)
            continue;
        explicit_bzero(*sp, strlen(*sp));
        free(*sp);
        *sp = NULL;
    }
}

static void
instance_free(struct conf_instance *ci)
{
    if (ci == NULL)
        return;
    free_strings((char *)ci, S_INST);
    free(ci);
}

static struct conf *
conf_new(const char *path)
{
    struct conf *c = xcalloc(1, sizeof(*c));

    c->path = xstrdup(path);
    c->interval_ms = DEF_INTERVAL_MS;
    c->timeout_ms = DEF_TIMEOUT_MS;
    c->downinter_ms = DEF_DOWNINTER_MS;
    c->rise = DEF_RISE;
    c->fall = DEF_FALL;
    c->max_inflight = DEF_MAX_INFLIGHT;
    c->stats_socket = xstrdup(DEF_STATS_SOCKET);
    c->stats_socket_mode = DEF_STATS_MODE;
    c->stats_socket_gid = (gid_t)-1;
    c->state_dir = xstrdup(DEF_STATE_DIR);
    c->log_level = DEF_LOG_LEVEL;
    c->shutdown_timeout_ms = DEF_SHUTDOWN_MS;
    c->zk_root = xstrdup(DEF_ZK_ROOT);
    c->zk_session_timeout_ms = DEF_ZK_SESSION_MS;
    TAILQ_INIT(&c->instances);
    return c;
}

/* Reads every line, then checks the whole; the config belongs to the caller. */
static struct conf *
conf_parse(struct parser *p, struct conf_errors *errs)
{
    ssize_t n;

    p->conf = conf_new(p->file);
    while ((n = next_line(p)) >= 0) {
        p->lineno++;
        parse_line(p, n);
    }
    if (p->buf) {
        /* the last lines read may have held a password */
        explicit_bzero(p->buf, p->bufcap);
        free(p->buf);
        p->buf = NULL;
    }

    if (p->read_errno) {
        perr_add(p, 0, "cannot read: %s", strerror(p->read_errno));
    } else {
        check_agent(p);
        check_zk(p);
        for (size_t i = 0; i < p->ninsts; i++)
            check_instance(p, &p->insts[i]);
    }
    for (size_t i = 0; i < p->ninsts; i++) {
        struct pinst *pi = &p->insts[i];
        if (pi->discard || p->nerrs) {
            instance_free(pi->ci);
            continue;
        }
        TAILQ_INSERT_TAIL(&p->conf->instances, pi->ci, link);
        p->conf->ninstances++;
    }
    free(p->insts);
    p->insts = NULL;
    free(p->names);
    p->names = NULL;
    p->namecap = 0;

    if (p->nerrs) {
        perr_flush(p, errs);
        conf_free(p->conf);
        return NULL;
    }
    return p->conf;
}

struct conf *
conf_load_flags(const char *path, int flags, struct conf_errors *errs)
{
    struct parser p = {.file = path, .flags = flags};
    struct conf *c;

    p.fp = fopen(path, "re");
    if (p.fp == NULL) {
        perr_add(&p, 0, "cannot open: %s", strerror(errno));
        perr_flush(&p, errs);
        return NULL;
    }
    c = conf_parse(&p, errs);
    fclose(p.fp);
    return c;
}

struct conf *
conf_load(const char *path, struct conf_errors *errs)
{
    return conf_load_flags(path, 0, errs);
}

struct conf *
conf_load_string(const char *name, const char *text, struct conf_errors *errs)
{
    struct parser p = {.file = name, .text = text};

    return conf_parse(&p, errs);
}

void
conf_free(struct conf *conf)
{
    struct conf_instance *ci;

    if (conf == NULL)
        return;
    while ((ci = TAILQ_FIRST(&conf->instances)) != NULL) {
        TAILQ_REMOVE(&conf->instances, ci, link);
        instance_free(ci);
    }
    free_strings((char *)conf, S_AGENT | S_ZK);
    free(conf->path);
    free(conf);
}

void
conf_errors_free(struct conf_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msg[i]);
    free(errs->msg);
    errs->msg = NULL;
    errs->n = 0;
}

const struct conf_instance *
conf_find_instance(const struct conf *conf, const char *name)
{
    const struct conf_instance *ci;

    TAILQ_FOREACH (ci, &conf->instances, link) {
        if (strcmp(ci->name, name) == 0)
            return ci;
    }
    return NULL;
}

static bool
str_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Compares the values of every [instance] key: a new key takes part without more code. */
int
conf_instance_equal(const struct conf_instance *a, const struct conf_instance *b)
{
    for (size_t k = 0; k < NKEYS; k++) {
        const char *x = (const char *)a + keys[k].ioff, *y = (const char *)b + keys[k].ioff;
        const struct addr *xa = (const void *)((const char *)a + keys[k].aux);
        const struct addr *ya = (const void *)((const char *)b + keys[k].aux);
        bool same;

        if (!(keys[k].sections & S_INST))
            continue;
        if (scalar_size(keys[k].kind) > 0)
            same = memcmp(x, y, scalar_size(keys[k].kind)) == 0;
        else if (!is_string(keys[k].kind))
            same = strcmp(x, y) == 0; /* a name kept in an array */
        else
            same = str_equal(*(char *const *)(const void *)x, *(char *const *)(const void *)y);
        if (same && keys[k].kind == K_ADDRESS)
            same = xa->family == ya->family && strcmp(xa->host, ya->host) == 0 &&
                   xa->port == ya->port && strcmp(xa->path, ya->path) == 0;
        if (!same)
            return 0;
    }
    return 1;
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
        unit = MS_MIN;
    else if (strcmp(s, "h") == 0)
        unit = MS_H;
    else
        return -1;
    if (n > DURATION_MAX_MS / unit)
        return -1;
    *ms = n * unit;
    return 0;
}
