/* table.c -- renders the agent's JSON answers and ZooKeeper's status documents as aligned tables.
 */
#include "table.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_SEP      2  /* blanks between columns */
#define TABLE_FLEX_MIN 12 /* a cut column keeps at least this many characters */

struct table {
    size_t ncols;
    int has_header;
    int flex;     /* column cut to fit a width, or -1 */
    char **cells; /* (nrows + 1) * ncols, row 0 the header (unused without one) */
    size_t nrows; /* rows of data */
    size_t cap;   /* rows allocated, header included */
};

/* Display width of a UTF-8 string: one per code point (no wide characters in our data). */
static size_t
u8_width(const char *s)
{
    size_t w = 0;

    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

/* Byte length of the first N code points of S. */
static size_t
u8_prefix(const char *s, size_t n)
{
    size_t i = 0;

    for (; s[i] != '\0'; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (n == 0)
                break;
            n--;
        }
    }
    return i;
}

/* A copy of S fit for a terminal: control characters (a peer's text) become '?'. */
static char *
cell_dup(const char *s)
{
    char *c = xstrdup(s != NULL && s[0] != '\0' ? s : "-");

    for (char *p = c; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return c;
}

struct table *
table_new(size_t ncols, const char *const *headers)
{
    struct table *t = xcalloc(1, sizeof(*t));

    t->ncols = ncols;
    t->flex = -1;
    t->cap = 16;
    t->cells = xcalloc(t->cap * ncols, sizeof(char *));
    if (headers != NULL) {
        t->has_header = 1;
        for (size_t c = 0; c < ncols; c++)
            t->cells[c] = cell_dup(headers[c]);
    }
    return t;
}

void
table_free(struct table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

void
table_add_row(struct table *t, const char *const *cells)
{
    if (t->nrows + 2 > t->cap) {
        size_t old = t->cap;
        t->cap *= 2;
        t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof(char *));
        memset(t->cells + old * t->ncols, 0, (t->cap - old) * t->ncols * sizeof(char *));
    }
    t->nrows++;
    for (size_t c = 0; c < t->ncols; c++)
        t->cells[t->nrows * t->ncols + c] = cell_dup(cells[c]);
}

size_t
table_rows(const struct table *t)
{
    return t->nrows;
}

void
table_set_flex(struct table *t, int col)
{
    t->flex = col >= 0 && (size_t)col < t->ncols ? col : -1;
}

void
table_render(const struct table *t, int width, struct sbuf *out)
{
    size_t *w = xcalloc(t->ncols, sizeof(size_t));
    size_t first = t->has_header ? 0 : 1;
    size_t total = 0, cut = 0;

    for (size_t r = first; r <= t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t cw = u8_width(t->cells[r * t->ncols + c]);
            if (cw > w[c])
                w[c] = cw;
        }
    for (size_t c = 0; c < t->ncols; c++)
        total += w[c] + (c > 0 ? TABLE_SEP : 0);
    if (width > 0 && t->flex >= 0 && total > (size_t)width) {
        size_t others = total - w[t->flex];
        cut = (size_t)width > others + TABLE_FLEX_MIN ? (size_t)width - others : TABLE_FLEX_MIN;
        if (cut < w[t->flex])
            w[t->flex] = cut;
        else
            cut = 0;
    }
    for (size_t r = first; r <= t->nrows; r++) {
        size_t pending = 0; /* blanks owed before the next non-empty text */
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t sw = u8_width(s), len = strlen(s);
            if (c > 0)
                pending += TABLE_SEP;
            for (; pending > 0; pending--)
                sbuf_add(out, " ", 1);
            if (cut > 0 && (int)c == t->flex && sw > cut) {
                sbuf_add(out, s, u8_prefix(s, cut - 1));
                sbuf_adds(out, "\xe2\x80\xa6"); /* U+2026 HORIZONTAL ELLIPSIS */
                sw = cut;
            } else {
                sbuf_add(out, s, len);
            }
            pending = w[c] - sw;
        }
        sbuf_add(out, "\n", 1);
    }
    free(w);
}

/* Writes S seconds in two units at most: "45s", "3m12s", "2h05m", "3d04h". */
static void
human_duration(int64_t s, char *buf, size_t n)
{
    if (s < 60)
        snprintf(buf, n, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(buf, n, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, n, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, n, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
}

void
table_since(int64_t since_ms, int64_t now_ms, char *buf, size_t n)
{
    char d[48];

    if (since_ms <= 0) {
        snprintf(buf, n, "-");
        return;
    }
    human_duration(now_ms > since_ms ? (now_ms - since_ms) / 1000 : 0, d, sizeof(d));
    snprintf(buf, n, "%s ago", d);
}

/* Writes a JSON scalar as a cell: strings as they are, null or missing as "-", a nested value
 * compactly. */
static void
cell_of(const json_t *v, char *buf, size_t n)
{
    char *d;

    switch (v == NULL ? JSON_NULL : json_typeof(v)) {
    case JSON_STRING:
        snprintf(buf, n, "%s", json_string_value(v));
        break;
    case JSON_INTEGER:
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, n, "%g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(buf, n, "true");
        break;
    case JSON_FALSE:
        snprintf(buf, n, "false");
        break;
    case JSON_NULL:
        snprintf(buf, n, "-");
        break;
    default:
        d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(buf, n, "%s", d != NULL ? d : "?");
        free(d);
        break;
    }
}

/* The value of KEY in OBJ as a cell (see cell_of). */
static void
field(const json_t *obj, const char *key, char *buf, size_t n)
{
    cell_of(json_object_get(obj, key), buf, n);
}

/* Appends a human size to a byte count: "52428800 (50.0 MiB)". */
static void
human_bytes(json_int_t b, char *buf, size_t n)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    size_t u = 0;

    if (b < 1024) {
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, b);
        return;
    }
    v /= 1024;
    while (v >= 1024 && u + 1 < ARRAY_LEN(unit)) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, "%" JSON_INTEGER_FORMAT " (%.1f %s)", b, v, unit[u]);
}

/* Returns 1 if KEY ends with SUFFIX. */
static int
ends_with(const char *key, const char *suffix)
{
    size_t k = strlen(key), s = strlen(suffix);

    return k >= s && strcmp(key + k - s, suffix) == 0;
}

int
table_stats(const char *json, struct sbuf *out)
{
    json_t *root = json_loads(json, JSON_DECODE_ANY, NULL);
    struct table *t;
    const char *key;
    json_t *v;

    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    t = table_new(2, NULL);
    json_object_foreach(root, key, v)
    {
        char val[512];
        const char *row[2] = {key, val};
        if (json_is_integer(v) && ends_with(key, "_bytes")) {
            human_bytes(json_integer_value(v), val, sizeof(val));
        } else if (json_is_integer(v) && strcmp(key, "uptime_s") == 0) {
            char d[48];
            human_duration(json_integer_value(v), d, sizeof(d));
            snprintf(val, sizeof(val), "%" JSON_INTEGER_FORMAT " (%s)", json_integer_value(v), d);
        } else {
            cell_of(v, val, sizeof(val));
        }
        table_add_row(t, row);
    }
    table_render(t, 0, out);
    table_free(t);
    json_decref(root);
    return 0;
}

/* The LATENCY cell from a round trip in microseconds: "312us", "1.2ms", "1.50s". */
static void
latency_cell(const json_t *v, char *buf, size_t n)
{
    json_int_t us;

    if (!json_is_integer(v)) {
        cell_of(v, buf, n);
        return;
    }
    us = json_integer_value(v);
    if (us < 1000)
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT "us", us);
    else if (us < 1000000)
        snprintf(buf, n, "%.1fms", (double)us / 1000);
    else
        snprintf(buf, n, "%.2fs", (double)us / 1000000);
}

/* The SINCE cell from a document's since_ms. */
static void
since_cell(const json_t *obj, int64_t now_ms, char *buf, size_t n)
{
    const json_t *v = json_object_get(obj, "since_ms");

    if (json_is_integer(v))
        table_since(json_integer_value(v), now_ms, buf, n);
    else
        cell_of(v, buf, n);
}

int
table_instances(const char *json, int64_t now_ms, int width, struct sbuf *out)
{
    static const char *const head[] = {"NAME", "CLUSTER", "ADDRESS", "STATE",  "ROLE",     "MASTER",
                                       "LINK", "SINCE",   "LATENCY", "REASON", "PUBLISHED"};
    json_t *root = json_loads(json, JSON_DECODE_ANY, NULL);
    struct table *t;
    size_t i;
    json_t *o;

    if (root == NULL || !json_is_array(root)) {
        json_decref(root);
        return -1;
    }
    json_array_foreach(root, i, o)
    {
        if (!json_is_object(o)) {
            json_decref(root);
            return -1;
        }
    }
    t = table_new(ARRAY_LEN(head), head);
    table_set_flex(t, 9);
    json_array_foreach(root, i, o)
    {
        char name[128], cluster[128], address[256], state[64], role[64], master[256], link[64],
            since[64], latency[64], reason[512], published[16];
        const char *row[] = {name, cluster, address, state,  role,     master,
                             link, since,   latency, reason, published};
        const json_t *maint = json_object_get(o, "maint");
        const json_t *pub = json_object_get(o, "published");

        field(o, "name", name, sizeof(name));
        field(o, "cluster", cluster, sizeof(cluster));
        field(o, "address", address, sizeof(address));
        field(o, "state", state, sizeof(state));
        field(o, "role", role, sizeof(role));
        field(o, "master", master, sizeof(master));
        field(o, "link", link, sizeof(link));
        since_cell(o, now_ms, since, sizeof(since));
        latency_cell(json_object_get(o, "latency_us"), latency, sizeof(latency));
        field(o, "reason", reason, sizeof(reason));
        /* In maintenance: the probed state stays visible, the mark is added to it. */
        if (json_is_object(maint)) {
            const char *why = json_string_value(json_object_get(maint, "reason"));
            size_t l = strlen(state);
            snprintf(state + l, sizeof(state) - l, "+maint");
            if ((reason[0] == '\0' || strcmp(reason, "-") == 0) && why != NULL && why[0] != '\0')
                snprintf(reason, sizeof(reason), "maint: %s", why);
        }
        snprintf(published, sizeof(published), "%s",
                 json_is_boolean(pub) ? (json_is_true(pub) ? "yes" : "no") : "-");
        table_add_row(t, row);
    }
    table_render(t, width, out);
    table_free(t);
    json_decref(root);
    return 0;
}

int
table_cluster(const json_t *docs, int64_t now_ms, int width, struct sbuf *out)
{
    static const char *const head[] = {"CLUSTER", "NAME",   "ADDRESS", "AGENT", "STATE",
                                       "ROLE",    "MASTER", "LINK",    "SINCE", "REASON"};
    struct table *t;
    size_t i;
    const json_t *o;

    if (!json_is_array(docs))
        return -1;
    t = table_new(ARRAY_LEN(head), head);
    table_set_flex(t, 9);
    json_array_foreach(docs, i, o)
    {
        char cluster[128], name[128], address[256], agent[300], state[64], role[64], master[256],
            link[64], since[64], reason[512];
        const char *row[] = {cluster, name,   address, agent, state,
                             role,    master, link,    since, reason};

        field(o, "cluster", cluster, sizeof(cluster));
        field(o, "name", name, sizeof(name));
        field(o, "address", address, sizeof(address));
        field(o, "agent", agent, sizeof(agent));
        field(o, "state", state, sizeof(state));
        field(o, "role", role, sizeof(role));
        field(o, "master", master, sizeof(master));
        field(o, "link", link, sizeof(link));
        since_cell(o, now_ms, since, sizeof(since));
        field(o, "reason", reason, sizeof(reason));
        table_add_row(t, row);
    }
    table_render(t, width, out);
    table_free(t);
    return 0;
}
