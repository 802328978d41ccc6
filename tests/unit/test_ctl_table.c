/* test_ctl_table.c -- sentinel-agentctl's table rendering: alignment, cuts, human cells. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "table.h"

static void
test_align_no_trailing_blanks(void **state)
{
    static const char *const head[] = {"A", "BB", "C"};
    static const char *const r1[] = {"xxxx", "y", "z"};
    static const char *const r2[] = {"x", "", NULL};
    struct table *t = table_new(3, head);
    struct sbuf out = {0};

    (void)state;
    table_add_row(t, r1);
    table_add_row(t, r2);
    assert_int_equal(table_rows(t), 2);
    table_render(t, 0, &out);
    assert_string_equal(out.buf, "A     BB  C\n"
                                 "xxxx  y   z\n"
                                 "x     -   -\n");
    sbuf_free(&out);
    table_free(t);
}

static void
test_flex_column_cut_with_ellipsis(void **state)
{
    static const char *const head[] = {"NAME", "REASON", "X"};
    static const char *const r1[] = {"a", "a very long reason that goes on and on", "yes"};
    struct table *t = table_new(3, head);
    struct sbuf out = {0};

    (void)state;
    table_add_row(t, r1);
    table_set_flex(t, 1);
    table_render(t, 25, &out);
    /* 4 + 2 + 14 + 2 + 3 = 25: REASON keeps 13 characters and the ellipsis. */
    assert_string_equal(out.buf, "NAME  REASON          X\n"
                                 "a     a very long r\xe2\x80\xa6  yes\n");
    sbuf_reset(&out);
    table_render(t, 0, &out); /* no width: nothing cut */
    assert_non_null(strstr(out.buf, "on and on"));
    sbuf_free(&out);
    table_free(t);
}

static void
test_control_characters_replaced(void **state)
{
    static const char *const r1[] = {"k", "a\x1b[31mb\n"};
    struct table *t = table_new(2, NULL);
    struct sbuf out = {0};

    (void)state;
    table_add_row(t, r1);
    table_render(t, 0, &out);
    assert_string_equal(out.buf, "k  a?[31mb?\n");
    sbuf_free(&out);
    table_free(t);
}

static void
test_since(void **state)
{
    char b[64];

    (void)state;
    table_since(0, 1000, b, sizeof(b));
    assert_string_equal(b, "-");
    table_since(1000, 46000, b, sizeof(b));
    assert_string_equal(b, "45s ago");
    table_since(1000, 1000 + 192000, b, sizeof(b));
    assert_string_equal(b, "3m12s ago");
    table_since(1000, 1000 + 7500000, b, sizeof(b));
    assert_string_equal(b, "2h05m ago");
    table_since(1000, 1000 + 273600000, b, sizeof(b));
    assert_string_equal(b, "3d04h ago");
    table_since(5000, 1000, b, sizeof(b)); /* clocks apart: never negative */
    assert_string_equal(b, "0s ago");
}

static void
test_stats_in_agent_order(void **state)
{
    struct sbuf out = {0};

    (void)state;
    assert_int_equal(table_stats("{\"version\":\"0.1.0\",\"rss_bytes\":3145728,\"uptime_s\":90061,"
                                 "\"zk_session_id\":null}",
                                 &out),
                     0);
    assert_string_equal(out.buf, "version        0.1.0\n"
                                 "rss_bytes      3145728 (3.0 MiB)\n"
                                 "uptime_s       90061 (1d01h)\n"
                                 "zk_session_id  -\n");
    sbuf_free(&out);
    assert_int_equal(table_stats("[1,2]", &out), -1);
    assert_int_equal(table_stats("not json", &out), -1);
    assert_int_equal(out.len, 0);
}

static void
test_instances_missing_fields_and_maint(void **state)
{
    struct sbuf out = {0};

    (void)state;
    assert_int_equal(
        table_instances("[{\"name\":\"a\",\"state\":\"up\",\"since_ms\":1000,\"latency_us\":2500,"
                        "\"reason\":\"\",\"maint\":{\"until_ms\":0,\"reason\":\"kernel\"},"
                        "\"published\":true}]",
                        61000, 0, &out),
        0);
    assert_string_equal(out.buf, "NAME  CLUSTER  ADDRESS  STATE     ROLE  MASTER  LINK  SINCE"
                                 "      LATENCY  REASON         PUBLISHED\n"
                                 "a     -        -        up+maint  -     -       -     1m00s ago"
                                 "  2.5ms    maint: kernel  yes\n");
    sbuf_free(&out);
    assert_int_equal(table_instances("{}", 0, 0, &out), -1);
    assert_int_equal(table_instances("[1]", 0, 0, &out), -1);
}

static void
test_cluster_view(void **state)
{
    json_t *docs =
        json_loads("[{\"name\":\"m\",\"cluster\":\"c1\",\"address\":\"10.0.0.1:6379\","
                   "\"agent\":\"h1\",\"state\":\"up\",\"role\":\"master\",\"master\":\"\","
                   "\"link\":\"\",\"since_ms\":1000,\"reason\":\"\"},"
                   "{\"name\":\"r\",\"cluster\":\"c1\",\"address\":\"10.0.0.2:6379\","
                   "\"agent\":\"h2\",\"state\":\"down\",\"role\":\"unknown\","
                   "\"since_ms\":1000,\"reason\":\"connection refused\"}]",
                   0, NULL);
    struct sbuf out = {0};

    (void)state;
    assert_int_equal(table_cluster(docs, 11000, 0, &out), 0);
    assert_string_equal(out.buf,
                        "CLUSTER  NAME  ADDRESS        AGENT  STATE  ROLE     MASTER  LINK  SINCE"
                        "    REASON\n"
                        "c1       m     10.0.0.1:6379  h1     up     master   -       -     10s ago"
                        "  -\n"
                        "c1       r     10.0.0.2:6379  h2     down   unknown  -       -     10s ago"
                        "  connection refused\n");
    sbuf_free(&out);
    json_decref(docs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_align_no_trailing_blanks),
        cmocka_unit_test(test_flex_column_cut_with_ellipsis),
        cmocka_unit_test(test_control_characters_replaced),
        cmocka_unit_test(test_since),
        cmocka_unit_test(test_stats_in_agent_order),
        cmocka_unit_test(test_instances_missing_fields_and_maint),
        cmocka_unit_test(test_cluster_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
