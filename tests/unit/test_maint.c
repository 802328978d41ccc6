/* test_maint.c -- unit tests of maint.c: the command's words, the state file, expiry order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "maint.h"

#define ZK "[zookeeper]\nhosts = 127.0.0.1:2181\n"

struct fix {
    struct ev_loop *loop;
    char dir[64];
    char path[128];
    struct maint *m;
    char ended[8][CONF_NAME_MAX + 1];
    int nended;
};

static void
on_ended(void *ud, const char *name)
{
    struct fix *f = ud;

    if (f->nended < 8)
        snprintf(f->ended[f->nended], sizeof(f->ended[0]), "%s", name);
    f->nended++;
}

static int
setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    f->loop = ev_loop_new(EVFLAG_AUTO);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_maint.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/" MAINT_FILE, f->dir);
    f->m = maint_new(f->loop, f->dir, on_ended, f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    maint_free(f->m);
    unlink(f->path);
    rmdir(f->dir);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static struct conf *
conf_of(const char *names)
{
    struct sbuf sb = {0};
    struct conf_errors errs = {0};
    char buf[256], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", names);
    sbuf_adds(&sb, ZK);
    for (char *n = strtok_r(buf, " ", &save); n; n = strtok_r(NULL, " ", &save))
        sbuf_printf(&sb, "[instance %s]\naddress = 127.0.0.1:1\n", n);
    struct conf *c = conf_load_string("t.conf", sb.buf, &errs);
    assert_non_null(c);
    conf_errors_free(&errs);
    sbuf_free(&sb);
    return c;
}

static void
write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static json_t *
read_json(const char *path)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (j == NULL)
        fail_msg("%s: %s", path, err.text);
    return j;
}

static void
test_parse_cmd(void **state)
{
    (void)state;
    struct maint_cmd c;
    char err[256];

    assert_int_equal(maint_parse_cmd(" cache-a on", &c, err, sizeof(err)), 0);
    assert_string_equal(c.name, "cache-a");
    assert_true(c.on);
    assert_int_equal(c.duration_ms, 0);
    assert_string_equal(c.reason, "");

    assert_int_equal(maint_parse_cmd(" a on 2h kernel  upgrade\tnow ", &c, err, sizeof(err)), 0);
    assert_int_equal(c.duration_ms, 2 * 3600 * 1000);
    assert_string_equal(c.reason, "kernel  upgrade now");

    assert_int_equal(maint_parse_cmd(" a on 90s", &c, err, sizeof(err)), 0);
    assert_int_equal(c.duration_ms, 90000);
    assert_int_equal(maint_parse_cmd(" a on 1500", &c, err, sizeof(err)), 0);
    assert_int_equal(c.duration_ms, 1500);
    assert_int_equal(maint_parse_cmd(" a on disk swap", &c, err, sizeof(err)), 0);
    assert_int_equal(c.duration_ms, 0);
    assert_string_equal(c.reason, "disk swap");

    assert_int_equal(maint_parse_cmd(" a off", &c, err, sizeof(err)), 0);
    assert_false(c.on);
    assert_string_equal(c.name, "a");

    static const struct {
        const char *args, *err;
    } bad[] = {
        {"", "usage:"},
        {" a", "usage:"},
        {" a maybe", "usage:"},
        {" a onn", "usage:"},
        {" a off now", "takes nothing more"},
        {" a on 5x", "bad duration \"5x\""},
        {" a on 0", "bad duration \"0\""},
        {" a on 0s", "bad duration \"0s\""},
        {" a on 25h", "bad duration \"25h\""},
        {" a on 1.5h", "bad duration \"1.5h\""},
        {" a on 99999999999999999999999999999999999999999", "bad duration"},
        {" a on 1m x\x01y", "control characters"},
        {" a on 1m \xff\xfe", "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (maint_parse_cmd(bad[i].args, &c, err, sizeof(err)) != -1 ||
            strstr(err, bad[i].err) == NULL)
            fail_msg("\"%s\": expected an error with \"%s\", got \"%s\"", bad[i].args, bad[i].err,
                     err);
    }
    char longr[300];
    memset(longr, 'r', sizeof(longr));
    memcpy(longr, " a on ", 6);
    longr[6 + MAINT_REASON_MAX] = '\0'; /* one byte too many */
    assert_int_equal(maint_parse_cmd(longr, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "reason too long"));
    longr[6 + MAINT_REASON_MAX - 1] = '\0';
    assert_int_equal(maint_parse_cmd(longr, &c, err, sizeof(err)), 0);
}

/* Marks written and read back through the file are the same; a renewal keeps since_ms. */
static void
test_file_round_trip(void **state)
{
    struct fix *f = *state;
    struct conf *c = conf_of("b a c");
    int64_t now = util_wall_ms();
    char err[256];

    maint_load(f->m, c); /* no file yet: no marks, no complaint */
    assert_int_equal(maint_count(f->m), 0);
    maint_set(f->m, "b", 0, "", now - 5000);
    maint_set(f->m, "a", 3600000, "rack \"7\" move", now);
    const struct maint_mark *k = maint_set(f->m, "b", 60000, "again", now);
    assert_int_equal(k->since_ms, now - 5000); /* renewed: same start */
    assert_int_equal(k->until_ms, now + 60000);
    assert_string_equal(k->reason, "again");

    json_t *j = read_json(f->path);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
    json_t *marks = json_object_get(j, "marks");
    assert_int_equal(json_object_size(marks), 2);
    json_t *a = json_object_get(marks, "a");
    assert_int_equal(json_integer_value(json_object_get(a, "until_ms")), now + 3600000);
    assert_int_equal(json_integer_value(json_object_get(a, "since_ms")), now);
    assert_string_equal(json_string_value(json_object_get(a, "reason")), "rack \"7\" move");
    assert_string_equal(json_string_value(json_object_get(json_object_get(marks, "b"), "reason")),
                        "again");
    json_decref(j);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* another store reads what this one wrote */
    struct maint *m2 = maint_new(f->loop, f->dir, on_ended, f);
    maint_load(m2, c);
    assert_int_equal(maint_count(m2), 2);
    assert_string_equal(maint_get(m2, "a")->reason, "rack \"7\" move");
    assert_int_equal(maint_get(m2, "b")->since_ms, now - 5000);
    assert_null(maint_get(m2, "c"));
    maint_free(m2);

    /* dump and parse without a file */
    struct sbuf sb = {0};
    struct maint *m3 = maint_new(f->loop, f->dir, NULL, NULL);
    maint_dump(f->m, &sb);
    assert_int_equal(maint_parse_file(m3, sb.buf, err, sizeof(err)), 0);
    assert_int_equal(maint_count(m3), 2);
    maint_free(m3);
    sbuf_free(&sb);

    assert_int_equal(maint_clear(f->m, "a"), 1);
    assert_int_equal(maint_clear(f->m, "a"), 0);
    j = read_json(f->path);
    assert_int_equal(json_object_size(json_object_get(j, "marks")), 1);
    json_decref(j);
    conf_free(c);
}

/* A corrupt file leaves no marks (and the store works on); marks of unknown names are dropped. */
static void
test_corrupt_files(void **state)
{
    struct fix *f = *state;
    struct conf *c = conf_of("a");
    char err[256];
    static const char *const bad[] = {
        "",
        "{",
        "[]",
        "{\"version\":1}",
        "{\"version\":\"1\",\"marks\":{}}",
        "{\"version\":2,\"marks\":{}}",
        "{\"version\":1,\"marks\":[]}",
        "{\"version\":1,\"marks\":{\"a\":{\"until_ms\":-1,\"reason\":\"x\",\"since_ms\":1}}}",
        "{\"version\":1,\"marks\":{\"a\":{\"until_ms\":0,\"reason\":7,\"since_ms\":1}}}",
        "{\"version\":1,\"marks\":{\"a\":{\"until_ms\":0,\"reason\":\"x\"}}}",
        "{\"version\":1,\"marks\":{\"a/b\":{\"until_ms\":0,\"reason\":\"x\",\"since_ms\":1}}}",
        "{\"version\":1,\"marks\":{\"a\":{\"until_ms\":0,\"reason\":\"x\\u0000y\",\"since_ms\":1}}"
        "}",
        "{\"version\":1,\"marks\":{\"a\":{\"until_ms\":0,\"reason\":\"x\",\"since_ms\":1},"
        "\"a\":{\"until_ms\":0,\"reason\":\"y\",\"since_ms\":1}}}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (maint_parse_file(f->m, bad[i], err, sizeof(err)) != -1 || err[0] == '\0')
            fail_msg("should be refused: %s", bad[i]);
        write_text(f->path, bad[i]);
        maint_load(f->m, c);
        assert_int_equal(maint_count(f->m), 0);
    }
    write_text(f->path, "{\"version\":1,\"marks\":{"
                        "\"gone\":{\"until_ms\":0,\"reason\":\"x\",\"since_ms\":1},"
                        "\"a\":{\"until_ms\":0,\"reason\":\"kept\",\"since_ms\":1}}}");
    maint_load(f->m, c);
    assert_int_equal(maint_count(f->m), 1);
    assert_string_equal(maint_get(f->m, "a")->reason, "kept");
    /* the dropped mark is gone from the file too */
    json_t *j = read_json(f->path);
    assert_null(json_object_get(json_object_get(j, "marks"), "gone"));
    json_decref(j);
    conf_free(c);
}

/* Marks end in the order of their end times, each once, by one watcher. */
static void
test_expiry_order(void **state)
{
    struct fix *f = *state;
    struct conf *c = conf_of("a b c d e");
    int64_t now = util_wall_ms();

    maint_load(f->m, c);
    maint_set(f->m, "a", 150, "", now);
    maint_set(f->m, "b", 30, "", now);
    maint_set(f->m, "c", 0, "", now); /* no end */
    maint_set(f->m, "d", 80, "", now);
    maint_set(f->m, "e", 3600000, "", now);
    for (int i = 0; i < 500 && f->nended < 3; i++) {
        ev_run(f->loop, EVRUN_ONCE);
    }
    assert_int_equal(f->nended, 3);
    assert_string_equal(f->ended[0], "b");
    assert_string_equal(f->ended[1], "d");
    assert_string_equal(f->ended[2], "a");
    assert_true(util_wall_ms() >= now + 150);
    assert_int_equal(maint_count(f->m), 2);
    assert_non_null(maint_get(f->m, "c"));
    assert_non_null(maint_get(f->m, "e"));

    /* a reload that removes e drops its mark and says so */
    struct conf *c2 = conf_of("a b c");
    f->nended = 0;
    maint_prune(f->m, c2, on_ended, f);
    assert_int_equal(f->nended, 1);
    assert_string_equal(f->ended[0], "e");
    assert_int_equal(maint_count(f->m), 1);
    json_t *j = read_json(f->path);
    assert_int_equal(json_object_size(json_object_get(j, "marks")), 1);
    json_decref(j);
    conf_free(c2);
    conf_free(c);
}

/* Without a state_dir the marks live in memory; no file appears anywhere. */
static void
test_missing_dir(void **state)
{
    struct fix *f = *state;
    struct conf *c = conf_of("a");
    char missing[128];

    snprintf(missing, sizeof(missing), "%s/none", f->dir);
    struct maint *m = maint_new(f->loop, missing, NULL, NULL);
    maint_load(m, c);
    maint_set(m, "a", 0, "x", util_wall_ms());
    assert_int_equal(maint_count(m), 1);
    assert_int_equal(access(missing, F_OK), -1);
    maint_free(m);
    assert_null(maint_get(NULL, "a"));
    assert_int_equal(maint_count(NULL), 0);
    maint_free(NULL);
    conf_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_cmd),
        cmocka_unit_test_setup_teardown(test_file_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
    };

    log_init(LOGL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
