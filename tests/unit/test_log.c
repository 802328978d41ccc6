/* test_log.c -- log lines: "LEVEL component: message", journald prefixes, thresholds, repeats. */
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

#include "log.h"

static char path[] = "/tmp/sa-test-log-XXXXXX";

/* Points stderr at a fresh temp file; returns what was logged since on read_log(). */
static int
setup(void **state)
{
    (void)state;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_non_null(freopen(path, "w+", stderr));
    setvbuf(stderr, NULL, _IONBF, 0);
    unsetenv("JOURNAL_STREAM");
    log_init(LOGL_INFO);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    unlink(path);
    strcpy(path, "/tmp/sa-test-log-XXXXXX");
    return 0;
}

static char *
read_log(void)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int
count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void
line_format_and_threshold(void **state)
{
    (void)state;
    log_info("instance cache-a", "up -> down (%s)", "connection refused");
    log_debug("probe", "not shown at info");
    log_warn("stats", "two\nlines folded");
    assert_string_equal(read_log(), "info instance cache-a: up -> down (connection refused)\n"
                                    "warn stats: two lines folded\n");
    log_set_level(LOGL_ERROR);
    log_warn("stats", "hidden");
    log_error("agent", "shown");
    assert_int_equal(count(read_log(), "hidden"), 0);
    assert_int_equal(count(read_log(), "error agent: shown\n"), 1);
}

static void
journald_prefix(void **state)
{
    (void)state;
    struct stat st;
    char js[64];

    assert_int_equal(fstat(2, &st), 0);
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    log_init(LOGL_DEBUG);
    log_error("a", "x");
    log_debug("b", "y");
    assert_string_equal(read_log(), "<3>error a: x\n<7>debug b: y\n");
    /* a JOURNAL_STREAM naming another file is not ours: no prefix */
    setenv("JOURNAL_STREAM", "1:1", 1);
    log_init(LOGL_INFO);
    log_info("c", "z");
    assert_int_equal(count(read_log(), "\ninfo c: z\n"), 1);
}

static void
repeats_are_limited_per_text(void **state)
{
    (void)state;
    static const char a[] = "Socket 127.0.0.1:1 zk retcode=-4: server refused";
    static const char b[] = "Delaying connection after exhaustively trying all servers";

    for (int i = 0; i < 50; i++) {
        /* two texts alternating, as the ZooKeeper client's retries produce them */
        log_text_limited(LOGL_ERROR, "zookeeper client", a, strlen(a));
        log_text_limited(LOGL_WARN, "zookeeper client", b, strlen(b));
    }
    log_text_limited(LOGL_ERROR, "zookeeper client", "something new", 13);
    char *out = read_log();
    assert_int_equal(count(out, a), 1);
    assert_int_equal(count(out, b), 1);
    assert_int_equal(count(out, "error zookeeper client: something new\n"), 1);
    /* below the threshold nothing is written nor counted */
    log_set_level(LOGL_ERROR);
    log_text_limited(LOGL_INFO, "zookeeper client", "quiet", 5);
    assert_int_equal(count(read_log(), "quiet"), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(line_format_and_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(journald_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(repeats_are_limited_per_text, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
