/* confread.c -- the config's line reader (libinih's syntax) and its list of errors by line. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "confpriv.h"
#include "util.h"

#define LINE_MAX_LEN 197 /* libinih's limit, kept (parse_line) */
#define BAD_LINE_MSG "expected '[section]' or 'key = value'"

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

void
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

void
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

void
conf_errors_free(struct conf_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msg[i]);
    free(errs->msg);
    errs->msg = NULL;
    errs->n = 0;
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
    conf_on_section(p, rstrip(inner));
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
    conf_on_key(p, rstrip(s), rstrip(value));
}

int
confread_lines(struct parser *p)
{
    ssize_t n;

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
        return -1;
    }
    return 0;
}
