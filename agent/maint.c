/* maint.c -- maintenance marks: the set of marks, their expiry, and their file in state_dir. */
#include "maint.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/*
 * The marks. Owner: the agent (a->maint); created by maint_new(), released by maint_free().
 * - marks: sorted by name (bsearch: the `instances` answer looks one up per instance), grown
 *   by doubling; each mark is a value in the array, so a pointer to one lasts only until the
 *   next change.
 * - expiry: one ev_periodic for the earliest end of all marks, not one watcher per mark. A
 *   periodic, not a timer, because an end is a wall-clock time (it survives restarts in the
 *   file): libev re-schedules periodics when the clock jumps. Started by arm(), stopped by
 *   maint_free().
 * - dir, path, tmp: the state file and its temporary neighbour, owned strings.
 * - persist: 0 once state_dir was found missing at load: marks then live in memory only.
 */
struct maint {
    struct ev_loop *loop;
    struct maint_mark *marks;
    size_t n, cap;
    ev_periodic expiry;
    maint_ended_fn ended;
    void *ud;
    char *dir;
    char *path;
    char *tmp;
    int persist;
};

static void expiry_cb(struct ev_loop *loop, ev_periodic *w, int revents);

static void
set_paths(struct maint *m, const char *dir)
{
    struct sbuf sb = {0};

    free(m->dir);
    free(m->path);
    free(m->tmp);
    m->dir = xstrdup(dir);
    sbuf_printf(&sb, "%s/%s", dir, MAINT_FILE);
    m->path = sb.buf;
    sb = (struct sbuf){0};
    sbuf_printf(&sb, "%s/.%s.tmp", dir, MAINT_FILE);
    m->tmp = sb.buf;
}

struct maint *
maint_new(struct ev_loop *loop, const char *state_dir, maint_ended_fn ended, void *ud)
{
    struct maint *m = xcalloc(1, sizeof(*m));

    m->loop = loop;
    m->ended = ended;
    m->ud = ud;
    m->persist = 1;
    set_paths(m, state_dir);
    ev_init(&m->expiry, expiry_cb);
    m->expiry.data = m;
    return m;
}

void
maint_free(struct maint *m)
{
    if (m == NULL)
        return;
    if (m->loop != NULL)
        ev_periodic_stop(m->loop, &m->expiry);
    free(m->marks);
    free(m->dir);
    free(m->path);
    free(m->tmp);
    free(m);
}

/* ---- the set ---- */

static int
mark_cmp(const void *key, const void *elt)
{
    return strcmp(key, ((const struct maint_mark *)elt)->name);
}

/* The index of NAME's mark, or where it would go (*FOUND says which). */
static size_t
find(const struct maint *m, const char *name, int *found)
{
    size_t lo = 0, hi = m->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = mark_cmp(name, &m->marks[mid]);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = 0;
    return lo;
}

static void
remove_at(struct maint *m, size_t i)
{
    memmove(&m->marks[i], &m->marks[i + 1], (m->n - i - 1) * sizeof(*m->marks));
    m->n--;
}

/* Inserts or returns NAME's mark (a new one is zeroed but for its name). */
static struct maint_mark *
get_or_add(struct maint *m, const char *name, int *existed)
{
    size_t i = find(m, name, existed);

    if (*existed)
        return &m->marks[i];
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 8;
        m->marks = xrealloc(m->marks, m->cap * sizeof(*m->marks));
    }
    memmove(&m->marks[i + 1], &m->marks[i], (m->n - i) * sizeof(*m->marks));
    m->n++;
    memset(&m->marks[i], 0, sizeof(m->marks[i]));
    util_strlcpy(m->marks[i].name, name, sizeof(m->marks[i].name));
    return &m->marks[i];
}

const struct maint_mark *
maint_get(const struct maint *m, const char *name)
{
    int found;
    size_t i;

    if (m == NULL || m->n == 0)
        return NULL;
    i = find(m, name, &found);
    return found ? &m->marks[i] : NULL;
}

int
maint_count(const struct maint *m)
{
    return m != NULL ? (int)m->n : 0;
}

/* ---- the file ---- */

void
maint_dump(const struct maint *m, struct sbuf *out)
{
    json_t *marks = json_object();
    json_t *o = json_pack("{s:i, s:o}", "version", MAINT_FILE_VERSION, "marks", marks);

    for (size_t i = 0; i < m->n; i++) {
        const struct maint_mark *k = &m->marks[i];
        json_t *reason = json_string(k->reason);
        if (reason == NULL) /* not UTF-8: the command line held raw bytes */
            reason = json_string(MAINT_DEFAULT_REASON);
        json_object_set_new(marks, k->name,
                            json_pack("{s:I, s:o, s:I}", "until_ms", (json_int_t)k->until_ms,
                                      "reason", reason, "since_ms", (json_int_t)k->since_ms));
    }
    char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        sbuf_adds(out, s);
        sbuf_adds(out, "\n");
    }
    free(s);
    json_decref(o);
}

static int
valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > CONF_NAME_MAX)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

int
maint_parse_file(struct maint *m, const char *text, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr), *marks, *v;
    struct maint tmp = {0};
    const char *name;
    int rc = -1;

    if (root == NULL) {
        snprintf(err, errlen, "not JSON (line %d: %s)", jerr.line, jerr.text);
        return -1;
    }
    if (json_integer_value(json_object_get(root, "version")) != MAINT_FILE_VERSION ||
        !json_is_integer(json_object_get(root, "version"))) {
        snprintf(err, errlen, "no \"version\": %d", MAINT_FILE_VERSION);
        goto out;
    }
    marks = json_object_get(root, "marks");
    if (!json_is_object(marks)) {
        snprintf(err, errlen, "no \"marks\" object");
        goto out;
    }
    json_object_foreach(marks, name, v)
    {
        json_t *until = json_object_get(v, "until_ms"), *since = json_object_get(v, "since_ms");
        json_t *reason = json_object_get(v, "reason");
        int existed;

        if (!valid_name(name)) {
            snprintf(err, errlen, "bad instance name in \"marks\"");
            goto out;
        }
        if (!json_is_integer(until) || json_integer_value(until) < 0 || !json_is_integer(since) ||
            json_integer_value(since) < 0 || !json_is_string(reason) ||
            json_string_length(reason) >= MAINT_REASON_MAX ||
            memchr(json_string_value(reason), '\0', json_string_length(reason)) != NULL) {
            snprintf(err, errlen, "bad mark for %s", name);
            goto out;
        }
        struct maint_mark *k = get_or_add(&tmp, name, &existed);
        k->until_ms = json_integer_value(until);
        k->since_ms = json_integer_value(since);
        util_strlcpy(k->reason, json_string_value(reason), sizeof(k->reason));
    }
    free(m->marks);
    m->marks = tmp.marks;
    m->n = tmp.n;
    m->cap = tmp.cap;
    tmp.marks = NULL;
    rc = 0;
out:
    free(tmp.marks);
    json_decref(root);
    return rc;
}

/*
 * Writes the marks to the state file atomically: a temporary file in the same directory,
 * fsync, rename over the file, fsync of the directory (so the rename itself is durable). On
 * the loop: the file is a few hundred bytes and written only on an operator's command, an
 * expiry or a reload; an fsync on a slow disk delays probing that once (docs/DESIGN.md).
 * Returns 0, or -1 with the reason in ERR (the temporary file removed).
 */
static int
write_file(const struct maint *m, char *err, size_t errlen)
{
    struct sbuf sb = {0};
    int fd, dfd, rc = -1;
    size_t off = 0;

    maint_dump(m, &sb);
    fd = open(m->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", m->tmp, strerror(errno));
        goto out;
    }
    while (off < sb.len) {
        ssize_t n = write(fd, sb.buf + off, sb.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot write %s: %s", m->tmp, n < 0 ? strerror(errno) : "0");
            goto fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0) {
        snprintf(err, errlen, "cannot fsync %s: %s", m->tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        snprintf(err, errlen, "cannot close %s: %s", m->tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(m->tmp, m->path) < 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", m->tmp, m->path, strerror(errno));
        goto fail;
    }
    dfd = open(m->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* best effort: the file is complete either way */
        close(dfd);
    }
    rc = 0;
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    unlink(m->tmp);
out:
    sbuf_free(&sb);
    return rc;
}

/* Writes the file, or says once per failure why not (an operator's action is rare). */
static void
save(struct maint *m)
{
    char err[512];

    if (!m->persist)
        return;
    if (write_file(m, err, sizeof(err)) < 0)
        log_warn("maint", "%s: maintenance marks are kept in memory only", err);
}

/* Reads the whole file at PATH into *TEXT (owned by the caller). Returns 0, -1 (errno). */
static int
read_file(const char *path, char **text)
{
    struct sbuf sb = {0};
    char buf[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return -1;
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || sb.len > 16 * 1024 * 1024) {
            int saved = n < 0 ? errno : EFBIG;
            close(fd);
            sbuf_free(&sb);
            errno = saved;
            return -1;
        }
        sbuf_add(&sb, buf, (size_t)n);
    }
    close(fd);
    sbuf_add(&sb, "", 0); /* NUL-terminated even when empty */
    *text = sb.buf;
    return 0;
}

/* ---- expiry ---- */

/* Points the expiry watcher at the earliest end of M's marks, or stops it if none ends. */
static void
arm(struct maint *m)
{
    int64_t first = 0;

    if (m->loop == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        if (m->marks[i].until_ms > 0 && (first == 0 || m->marks[i].until_ms < first))
            first = m->marks[i].until_ms;
    ev_periodic_stop(m->loop, &m->expiry);
    if (first == 0)
        return;
    ev_periodic_set(&m->expiry, (ev_tstamp)first / 1000.0, 0., NULL);
    ev_periodic_start(m->loop, &m->expiry);
}

/*
 * Removes every mark whose end is at or before NOW_MS, calling FN(UD, NAME) after each is
 * gone. Returns how many went.
 */
static int
expire(struct maint *m, int64_t now_ms, maint_ended_fn fn, void *ud)
{
    char name[CONF_NAME_MAX + 1];
    int gone = 0;

    for (size_t i = 0; i < m->n;) {
        if (m->marks[i].until_ms == 0 || m->marks[i].until_ms > now_ms) {
            i++;
            continue;
        }
        util_strlcpy(name, m->marks[i].name, sizeof(name));
        remove_at(m, i);
        gone++;
        if (fn != NULL)
            fn(ud, name);
    }
    return gone;
}

static void
expiry_cb(struct ev_loop *loop, ev_periodic *w, int revents)
{
    struct maint *m = w->data;

    (void)loop;
    (void)revents;
    /* The periodic fires at the earliest end by libev's clock; the marks compare in whole ms. */
    if (expire(m, util_wall_ms() + 1, m->ended, m->ud) > 0)
        save(m);
    arm(m);
}

/* ---- what the agent calls ---- */

static void
log_ended_while_stopped(void *ud, const char *name)
{
    (void)ud;
    log_info("maint", "the mark of %s ended while the agent was stopped", name);
}

void
maint_load(struct maint *m, const struct conf *conf)
{
    struct stat st;
    char err[256];
    char *text = NULL;
    size_t before;

    if (stat(m->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_warn("maint", "state_dir %s %s: maintenance marks are kept in memory only", m->dir,
                 errno == ENOENT ? "does not exist" : "is not a usable directory");
        m->persist = 0;
        return;
    }
    if (read_file(m->path, &text) < 0) {
        if (errno != ENOENT)
            log_warn("maint", "cannot read %s: %s; starting without maintenance marks", m->path,
                     strerror(errno));
        return;
    }
    if (maint_parse_file(m, text, err, sizeof(err)) < 0)
        log_warn("maint", "%s is corrupt (%s): ignored, starting without maintenance marks",
                 m->path, err);
    free(text);
    before = m->n;
    for (size_t i = 0; i < m->n;) {
        if (conf_find_instance(conf, m->marks[i].name) != NULL) {
            i++;
            continue;
        }
        log_info("maint", "dropping the mark of %s: no such instance", m->marks[i].name);
        remove_at(m, i);
    }
    expire(m, util_wall_ms(), log_ended_while_stopped, NULL);
    if (m->n != before)
        save(m);
    for (size_t i = 0; i < m->n; i++)
        log_info("maint", "%s stays in maintenance (%s)", m->marks[i].name, m->marks[i].reason);
    arm(m);
}

const struct maint_mark *
maint_set(struct maint *m, const char *name, int64_t duration_ms, const char *reason,
          int64_t now_ms)
{
    int existed;
    struct maint_mark *k = get_or_add(m, name, &existed);

    if (!existed)
        k->since_ms = now_ms;
    k->until_ms = duration_ms > 0 ? now_ms + duration_ms : 0;
    util_strlcpy(k->reason, reason[0] != '\0' ? reason : MAINT_DEFAULT_REASON, sizeof(k->reason));
    save(m);
    arm(m);
    return maint_get(m, name);
}

int
maint_clear(struct maint *m, const char *name)
{
    int found;
    size_t i = find(m, name, &found);

    if (!found)
        return 0;
    remove_at(m, i);
    save(m);
    arm(m);
    return 1;
}

void
maint_prune(struct maint *m, const struct conf *conf, maint_ended_fn dropped, void *ud)
{
    char name[CONF_NAME_MAX + 1];
    int gone = 0;

    for (size_t i = 0; i < m->n;) {
        if (conf_find_instance(conf, m->marks[i].name) != NULL) {
            i++;
            continue;
        }
        util_strlcpy(name, m->marks[i].name, sizeof(name));
        if (dropped != NULL)
            dropped(ud, name);
        remove_at(m, i);
        gone++;
    }
    if (gone > 0) {
        save(m);
        arm(m);
    }
}

void
maint_set_dir(struct maint *m, const char *state_dir)
{
    struct stat st;

    if (strcmp(m->dir, state_dir) == 0)
        return;
    set_paths(m, state_dir);
    m->persist = stat(state_dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!m->persist)
        log_warn("maint",
                 "state_dir %s is not a usable directory: maintenance marks are kept "
                 "in memory only",
                 state_dir);
    save(m);
}

/* ---- the command ---- */

int
maint_parse_cmd(const char *args, struct maint_cmd *cmd, char *err, size_t errlen)
{
    const char *p = args, *w;
    size_t n;
    char word[32];

    memset(cmd, 0, sizeof(*cmd));
#define SKIP_BLANKS(q)                                                                             \
    while (*(q) == ' ' || *(q) == '\t')                                                            \
    (q)++
#define WORD_END(q) ((q) + strcspn((q), " \t"))
    SKIP_BLANKS(p);
    w = p;
    p = WORD_END(p);
    n = (size_t)(p - w);
    if (n == 0) {
        snprintf(err, errlen, "usage: maint NAME on [DURATION] [REASON] | maint NAME off");
        return -1;
    }
    if (n > CONF_NAME_MAX) {
        snprintf(err, errlen, "no such instance: %.*s...", 64, w);
        return -1;
    }
    memcpy(cmd->name, w, n);
    SKIP_BLANKS(p);
    w = p;
    p = WORD_END(p);
    n = (size_t)(p - w);
    if (n == 3 && memcmp(w, "off", 3) == 0) {
        SKIP_BLANKS(p);
        if (*p != '\0') {
            snprintf(err, errlen, "maint NAME off takes nothing more");
            return -1;
        }
        return 0;
    }
    if (n != 2 || memcmp(w, "on", 2) != 0) {
        snprintf(err, errlen, "usage: maint NAME on [DURATION] [REASON] | maint NAME off");
        return -1;
    }
    cmd->on = 1;
    SKIP_BLANKS(p);
    w = p;
    p = WORD_END(p);
    n = (size_t)(p - w);
    /* A first word that starts with a digit is meant as the duration: it must be one. */
    if (n > 0 && w[0] >= '0' && w[0] <= '9') {
        int64_t ms = 0;
        if (n < sizeof(word)) {
            memcpy(word, w, n);
            word[n] = '\0';
            if (conf_parse_duration(word, &ms) < 0)
                ms = 0;
        }
        if (ms < 1) {
            snprintf(err, errlen, "bad duration \"%.*s\" (1ms..24h, e.g. 90s, 30m, 2h)",
                     (int)(n < 32 ? n : 32), w);
            return -1;
        }
        cmd->duration_ms = ms;
        SKIP_BLANKS(p);
    } else {
        p = w;
    }
    /* The rest of the line, trailing blanks dropped (report_answer has already). */
    n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n >= MAINT_REASON_MAX) {
        snprintf(err, errlen, "reason too long (at most %d bytes)", MAINT_REASON_MAX - 1);
        return -1;
    }
    memcpy(cmd->reason, p, n);
    cmd->reason[n] = '\0';
    /* It goes into log lines and JSON as it is: printable text only, valid UTF-8. */
    for (char *c = cmd->reason; *c; c++) {
        if (*c == '\t')
            *c = ' ';
        else if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            snprintf(err, errlen, "reason: control characters are not allowed");
            return -1;
        }
    }
    json_t *utf8 = json_string(cmd->reason);
    if (utf8 == NULL) {
        snprintf(err, errlen, "reason: not valid UTF-8");
        return -1;
    }
    json_decref(utf8);
#undef SKIP_BLANKS
#undef WORD_END
    return 0;
}
