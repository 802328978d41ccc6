/* conf.c -- the config's meaning: the key table and what walks it (values, inheritance, checks). */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "confpriv.h"
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
#define INTERVAL_MIN_MS   100
#define INTERVAL_MAX_MS   CONF_MS_H
#define TIMEOUT_MIN_MS    10
#define DOWNINTER_MIN_MS  50
#define SHUTDOWN_MIN_MS   100
#define SHUTDOWN_MAX_MS   (10 * CONF_MS_MIN)
#define SESSION_MIN_MS    1000
#define SESSION_MAX_MS    (10 * CONF_MS_MIN)
#define COUNT_MAX         100
#define INFLIGHT_MAX      1000000

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

/* What the sections read so far gave (confpriv.h): ours alone, the reader never looks. */
struct pstate {
    enum sect sect; /* the current one */
    int agent_line, zk_line;
    struct keyset agent_ks, zk_ks;
    struct pinst *insts;
    size_t ninsts, capinsts;
    /* index of kept instance names: slot = 1 + index into insts, 0 empty; capacity 2^k */
    size_t *names;
    size_t namecap;
};

/* ---- section headers, seen by the reader ---- */

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
name_slot(struct pstate *st, const char *name)
{
    size_t mask = st->namecap - 1;
    size_t i = name_hash(name) & mask;

    while (st->names[i] != 0 && strcmp(st->insts[st->names[i] - 1].ci->name, name) != 0)
        i = (i + 1) & mask;
    return &st->names[i];
}

/* Adds instance IDX (its name not yet present) to the name index, growing it as needed. */
static void
name_add(struct pstate *st, size_t idx)
{
    if (2 * (st->ninsts + 1) > st->namecap) {
        size_t *old = st->names, oldcap = st->namecap;
        st->namecap = st->namecap ? 2 * st->namecap : 64;
        st->names = xcalloc(st->namecap, sizeof(*st->names));
        for (size_t i = 0; i < oldcap; i++)
            if (old[i] != 0)
                *name_slot(st, st->insts[old[i] - 1].ci->name) = old[i];
        free(old);
    }
    *name_slot(st, st->insts[idx].ci->name) = idx + 1;
}

static void
begin_instance(struct parser *p, const char *name)
{
    struct pstate *st = p->st;
    struct pinst *pi;

    if (st->ninsts == st->capinsts) {
        st->capinsts = st->capinsts ? 2 * st->capinsts : 8;
        st->insts = xrealloc(st->insts, st->capinsts * sizeof(*st->insts));
    }
    pi = &st->insts[st->ninsts++];
    memset(pi, 0, sizeof(*pi));
    pi->ci = xcalloc(1, sizeof(*pi->ci));
    util_strlcpy(pi->ci->name, name, sizeof(pi->ci->name));
    util_strlcpy(pi->ci->cluster, DEF_CLUSTER, sizeof(pi->ci->cluster));
    pi->ci->line = p->lineno;
    st->sect = SECT_INSTANCE;

    if (!confval_name_ok(name)) {
        perr_add(p, p->lineno, "bad instance name \"%s\" (expected [A-Za-z0-9._-]{1,64})", name);
        pi->discard = true;
        return;
    }
    if (st->namecap > 0 && *name_slot(st, name) != 0) {
        const struct pinst *first = &st->insts[*name_slot(st, name) - 1];
        perr_add(p, p->lineno, "duplicate instance \"%s\" (first defined on line %d)", name,
                 first->ci->line);
        pi->discard = true;
        return;
    }
    name_add(st, st->ninsts - 1);
}

void
conf_on_section(struct parser *p, char *inner)
{
    struct pstate *st = p->st;

    if (strcmp(inner, "agent") == 0 || strcmp(inner, "zookeeper") == 0) {
        bool agent = inner[0] == 'a';
        int *first = agent ? &st->agent_line : &st->zk_line;
        st->sect = agent ? SECT_AGENT : SECT_ZK;
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
    st->sect = SECT_SKIP;
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
    struct addr *addr = (struct addr *)(void *)(base + k->aux);
    int aflags = (p->flags & CONF_NO_RESOLVE) ? ADDR_NO_RESOLVE : 0, rc = 0;
    const char *why = NULL;
    char err[CONF_ERR_MAX], aerr[256]; /* addr.c's reasons keep their 256-byte bound */

    switch (k->kind) {
    case K_DURATION:
        rc = confval_duration(k->name, v, k->min, k->max, dst, err, sizeof(err));
        break;
    case K_COUNT:
        rc = confval_int(k->name, v, k->min, k->max, dst, err, sizeof(err));
        break;
    case K_STRING:
        break;
    case K_PATH:
        rc = confval_path(k->name, v, k->max, err, sizeof(err));
        break;
    case K_MODE:
        rc = confval_mode(k->name, v, (unsigned)k->max, dst, err, sizeof(err));
        break;
    case K_LOGLEVEL:
        rc = confval_log_level(k->name, v, dst, err, sizeof(err));
        break;
    case K_ADDRESS:
    case K_LISTEN:
        if (addr_parse(v, aflags, addr, aerr, sizeof(aerr)) < 0)
            why = aerr;
        else if (k->kind == K_LISTEN && addr->family == AF_UNIX)
            why = "must be HOST:PORT, not unix:";
        break;
    case K_HOSTNAME:
        why = confval_agent_name_problem(v);
        break;
    case K_CLUSTER:
        rc = confval_cluster(v, err, sizeof(err));
        break;
    case K_HOSTS:
        /* its reason is the whole message, cut at 256 bytes as addr.c's always were */
        if (addr_check_hosts(v, err, sizeof(aerr)) != 0)
            rc = -1;
        break;
    case K_ZKPATH:
        why = confval_zk_root_problem(v);
        break;
    case K_GROUP:
        why = confval_group(v, p->flags, (gid_t *)(void *)(base + k->aux));
        break;
    case K_AUTH:
        rc = confval_auth(k->name, v, err, sizeof(err));
        break;
    }
    if (why)
        rc = confval_bad(err, sizeof(err), k->name, v, why);
    if (rc < 0) {
        perr_add(p, p->lineno, "%s", err);
        return -1;
    }
    if (scalar_size(k->kind) > 0)
        return 0; /* stored by its parser */
    if (k->kind == K_HOSTNAME || k->kind == K_CLUSTER)
        util_strlcpy(dst, v, (size_t)k->max + 1);
    else
        set_string(dst, v);
    return 0;
}

void
conf_on_key(struct parser *p, const char *name, const char *value)
{
    struct pstate *st = p->st;
    char sectname[CONF_NAME_MAX + 16];
    struct pinst *pi;
    struct keyset *ks;
    char *base;
    unsigned sect;
    size_t off;
    int k;

    switch (st->sect) {
    case SECT_NONE:
        perr_add(p, p->lineno, "key \"%s\" before any section", name);
        return;
    case SECT_SKIP:
        return;
    case SECT_AGENT:
    case SECT_ZK:
        sect = st->sect == SECT_AGENT ? S_AGENT : S_ZK;
        snprintf(sectname, sizeof(sectname), "%s", sect == S_AGENT ? "[agent]" : "[zookeeper]");
        ks = sect == S_AGENT ? &st->agent_ks : &st->zk_ks;
        base = (char *)p->conf;
        break;
    case SECT_INSTANCE:
    default:
        sect = S_INST;
        pi = &st->insts[st->ninsts - 1];
        snprintf(sectname, sizeof(sectname), "[instance %s]", pi->ci->name);
        ks = &pi->ks;
        base = (char *)pi->ci;
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
    const struct pstate *st = p->st;
    struct conf *c = p->conf;
    char host[CONF_AGENT_MAX + 2], a[32], b[32];
    const char *why;
    int line;

    if (!given(&st->agent_ks, "name")) {
        memset(host, 0, sizeof(host));
        if (gethostname(host, sizeof(host) - 1) < 0)
            host[0] = '\0';
        if ((why = confval_agent_name_problem(host)) != NULL)
            perr_add(p, st->agent_line ? st->agent_line : 1,
                     "host name \"%s\" cannot be the agent name (%s): set name in [agent]", host,
                     why);
        else
            util_strlcpy(c->name, host, sizeof(c->name));
    }
    line = given(&st->agent_ks, "downinter");
    if (!line && c->downinter_ms > c->interval_ms)
        c->downinter_ms = c->interval_ms; /* the default: min(250ms, interval) */
    else if (line && !rejected(&st->agent_ks, "downinter") &&
             !rejected(&st->agent_ks, "interval") && c->downinter_ms > c->interval_ms)
        perr_add(p, line, "downinter %s exceeds interval %s",
                 confval_fmt_ms(a, sizeof(a), c->downinter_ms),
                 confval_fmt_ms(b, sizeof(b), c->interval_ms));

    if (rejected(&st->agent_ks, "interval") || rejected(&st->agent_ks, "timeout") ||
        c->timeout_ms <= c->interval_ms)
        return;
    line = given(&st->agent_ks, "timeout");
    perr_add(p, line ? line : st->agent_line, "timeout %s%s exceeds interval %s",
             confval_fmt_ms(a, sizeof(a), c->timeout_ms), line ? "" : " (default)",
             confval_fmt_ms(b, sizeof(b), c->interval_ms));
}

static void
check_zk(struct parser *p)
{
    const struct pstate *st = p->st;

    if (!st->zk_line)
        perr_add(p, 1, "missing section [zookeeper] (hosts is required)");
    else if (!given(&st->zk_ks, "hosts"))
        perr_add(p, st->zk_line, "missing hosts in [zookeeper]");
}

/*
 * Reports the instance's KEY (VAL_MS) above its interval, on the line that gave KEY here (else
 * the section header), naming what it inherited from [agent]. Nothing when either value was
 * refused already: that was reported then.
 */
static void
check_within_interval(struct parser *p, struct pinst *pi, const char *key, int64_t val_ms)
{
    const struct pstate *st = p->st;
    const struct conf_instance *ci = pi->ci;
    const struct keyset *ks = &pi->ks;
    int key_line = given(ks, key), iv_line = given(ks, "interval");
    char a[32], b[32];

    if (rejected(key_line ? ks : &st->agent_ks, key) ||
        rejected(iv_line ? ks : &st->agent_ks, "interval") || val_ms <= ci->interval_ms)
        return;
    perr_add(p, key_line ? key_line : ci->line, "%s %s%s exceeds interval %s%s", key,
             confval_fmt_ms(a, sizeof(a), val_ms), key_line ? "" : " (inherited from [agent])",
             confval_fmt_ms(b, sizeof(b), ci->interval_ms),
             iv_line ? "" : " (inherited from [agent])");
}

/*
 * An instance's downinter: its own, else [agent]'s, at most its interval; when neither sets it,
 * min(250ms, its interval). A value given explicitly (here or in [agent]) above the interval is
 * an error on the line that gave it here, else on the section header.
 */
static void
check_downinter(struct parser *p, struct pinst *pi)
{
    const struct pstate *st = p->st;
    struct conf_instance *ci = pi->ci;
    const struct keyset *ks = &pi->ks;
    int di_line = given(ks, "downinter"), iv_line = given(ks, "interval");
    int agent_di = given(&st->agent_ks, "downinter");

    if (!di_line && !agent_di) {
        ci->downinter_ms = DEF_DOWNINTER_MS < ci->interval_ms ? DEF_DOWNINTER_MS : ci->interval_ms;
        return;
    }
    /* [agent]'s own check reports an [agent] value above [agent]'s interval */
    if (!di_line && !iv_line)
        return;
    check_within_interval(p, pi, "downinter", ci->downinter_ms);
}

/* Copies every [agent] value the instance does not override, then checks the result. */
static void
check_instance(struct parser *p, struct pinst *pi)
{
    struct conf_instance *ci = pi->ci;
    const struct keyset *ks = &pi->ks;
    int iv_line = given(ks, "interval"), to_line = given(ks, "timeout");

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
    check_within_interval(p, pi, "timeout", ci->timeout_ms);
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
    struct pstate st = {.sect = SECT_NONE};

    p->st = &st;
    p->conf = conf_new(p->file);
    if (confread_lines(p) == 0) {
        check_agent(p);
        check_zk(p);
        for (size_t i = 0; i < st.ninsts; i++)
            check_instance(p, &st.insts[i]);
    }
    for (size_t i = 0; i < st.ninsts; i++) {
        struct pinst *pi = &st.insts[i];
        if (pi->discard || p->nerrs) {
            instance_free(pi->ci);
            continue;
        }
        TAILQ_INSERT_TAIL(&p->conf->instances, pi->ci, link);
        p->conf->ninstances++;
    }
    free(st.insts);
    free(st.names);
    p->st = NULL;

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
