/* test_report.c -- the JSON documents and metrics the agent renders, parsed back with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent.h"
#include "report.h"

static const char conf_text[] = "[agent]\n"
                                "name = host\"01\n"
                                "stats_socket = /tmp/sa-test-report.sock\n"
                                "[zookeeper]\n"
                                "hosts = 127.0.0.1:1\n"
                                "[instance cache-a]\n"
                                "address = 127.0.0.1:6379\n"
                                "cluster = cache\n"
                                "password = hunter2secret\n";

struct fixture {
    struct ev_loop *loop;
    struct agent *a;
    struct inst *inst;
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct conf_errors errs = {0};
    struct conf *conf = conf_load_string("test.conf", conf_text, &errs);

    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    assert_non_null(conf);
    conf_errors_free(&errs);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->a = agent_new(f->loop, conf);
    f->inst = inst_new(f->a, TAILQ_FIRST(&conf->instances));
    TAILQ_INSERT_TAIL(&f->a->instances, f->inst, link);
    f->a->ninstances = 1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    agent_free(f->a);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static json_t *
parse(const struct sbuf *sb)
{
    json_error_t err;
    json_t *j = json_loads(sb->buf, 0, &err);
    if (j == NULL)
        fail_msg("bad JSON: %s in %s", err.text, sb->buf);
    return j;
}

static void
status_doc_escapes_everything(void **state)
{
    struct fixture *f = *state;
    struct sbuf sb = {0};
    struct health *h = &f->inst->health;

    h->state = INST_DOWN;
    h->since_ms = 1700000000123;
    strcpy(h->reason, "error: ERR \"quoted\" \\ back\x01slash");
    report_status_doc(f->inst, "agent\"x\xff", &sb);
    json_t *j = parse(&sb);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "cache-a");
    assert_string_equal(json_string_value(json_object_get(j, "cluster")), "cache");
    assert_string_equal(json_string_value(json_object_get(j, "address")), "127.0.0.1:6379");
    assert_string_equal(json_string_value(json_object_get(j, "agent")), "agent\"x?");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "down");
    assert_string_equal(json_string_value(json_object_get(j, "role")), "unknown");
    assert_int_equal(json_integer_value(json_object_get(j, "since_ms")), 1700000000123);
    assert_non_null(json_object_get(j, "latency_us"));
    assert_string_equal(json_string_value(json_object_get(j, "reason")),
                        "error: ERR \"quoted\" \\ back\x01slash");
    assert_string_equal(json_string_value(json_object_get(j, "master")), "");
    assert_string_equal(json_string_value(json_object_get(j, "link")), "");
    assert_int_equal(json_integer_value(json_object_get(j, "replicas")), 0);
    assert_int_equal(json_object_size(j), 12);
    json_decref(j);
    sbuf_free(&sb);
}

/* A replica's document: its master and link, in SPEC's field order. */
static void
status_doc_of_a_replica(void **state)
{
    static const char *const order[] = {
        "name",   "cluster", "address",  "agent",    "state",      "role",
        "master", "link",    "replicas", "since_ms", "latency_us", "reason",
    };
    struct fixture *f = *state;
    struct sbuf sb = {0};
    struct health *h = &f->inst->health;

    h->state = INST_UP;
    h->role.role = ROLE_REPLICA;
    strcpy(h->role.master, "10.0.0.1:6379");
    strcpy(h->role.link, "connecting");
    report_status_doc(f->inst, "agent-1", &sb);
    json_t *j = parse(&sb);
    assert_string_equal(json_string_value(json_object_get(j, "role")), "replica");
    assert_string_equal(json_string_value(json_object_get(j, "master")), "10.0.0.1:6379");
    assert_string_equal(json_string_value(json_object_get(j, "link")), "connecting");
    assert_int_equal(json_integer_value(json_object_get(j, "replicas")), 0);
    json_decref(j);
    /* the order as written (jansson keeps it when parsing too, but check the text) */
    const char *at = sb.buf;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        char key[32];
        snprintf(key, sizeof(key), "\"%s\":", order[i]);
        const char *k = strstr(sb.buf, key);
        assert_non_null(k);
        assert_true(k >= at);
        at = k;
    }
    sbuf_reset(&sb);
    h->role.role = ROLE_MASTER;
    h->role.master[0] = h->role.link[0] = '\0';
    h->role.replicas = 2;
    report_status_doc(f->inst, "agent-1", &sb);
    j = parse(&sb);
    assert_int_equal(json_integer_value(json_object_get(j, "replicas")), 2);
    json_decref(j);
    sbuf_free(&sb);
}

static void
stats_has_every_field(void **state)
{
    static const char *const fields[] = {
        "version",
        "pid",
        "uptime_s",
        "threads",
        "rss_bytes",
        "heap_bytes",
        "fds",
        "instances",
        "instances_maint",
        "probes_total",
        "probes_ok",
        "probes_failed",
        "probes_timeout",
        "probes_inflight",
        "max_inflight",
        "probes_skipped",
        "probes_agent_errors",
        "zk_state",
        "zk_session_id",
        "zk_writes_ok",
        "zk_writes_failed",
        "zk_pending",
        "zk_watches",
        "zk_reconnects",
        "zk_sessions_expired",
        "config_reloads",
        "config_reload_failures",
    };
    struct fixture *f = *state;
    struct sbuf sb = {0};

    f->a->c.probes_ok = 7;
    f->a->c.probes_failed = 3;
    f->a->c.probes_timeout = 2;
    report_stats_json(f->a, &sb);
    assert_null(strchr(sb.buf, '\n'));
    json_t *j = parse(&sb);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (json_object_get(j, fields[i]) == NULL)
            fail_msg("stats lacks %s", fields[i]);
    assert_int_equal(json_integer_value(json_object_get(j, "probes_total")), 10);
    assert_int_equal(json_integer_value(json_object_get(j, "instances")), 1);
    assert_true(json_integer_value(json_object_get(j, "threads")) >= 1);
    assert_true(json_integer_value(json_object_get(j, "rss_bytes")) > 0);
    assert_true(json_integer_value(json_object_get(j, "fds")) > 0);
    assert_true(json_integer_value(json_object_get(j, "heap_bytes")) > 0);
    assert_string_equal(json_string_value(json_object_get(j, "zk_state")), "closed");
    json_decref(j);
    sbuf_free(&sb);
}

static void
instances_and_no_secrets(void **state)
{
    struct fixture *f = *state;
    struct sbuf sb = {0};

    report_instances_json(f->a, &sb);
    json_t *j = parse(&sb);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 1);
    json_t *o = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "unknown");
    assert_true(json_is_boolean(json_object_get(o, "published")));
    static const char *const fields[] = {
        "name",       "cluster",        "address",          "state",    "role",
        "master",     "link",           "replicas",         "since_ms", "last_check_ms",
        "latency_us", "consecutive_ok", "consecutive_fail", "reason",   "published",
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (json_object_get(o, fields[i]) == NULL)
            fail_msg("instance lacks %s", fields[i]);
    json_decref(j);

    sbuf_reset(&sb);
    report_answer(f->a, NULL, "stats", &sb);
    report_answer(f->a, NULL, "instances", &sb);
    report_answer(f->a, NULL, "metrics", &sb);
    assert_null(strstr(sb.buf, "hunter2secret"));
    sbuf_free(&sb);
}

static void
answers_end_with_empty_line(void **state)
{
    static const char *const cmds[] = {"help", "stats", "instances", "metrics", "bogus \"x\""};
    struct fixture *f = *state;
    struct sbuf sb = {0};

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        sbuf_reset(&sb);
        report_answer(f->a, NULL, cmds[i], &sb);
        assert_true(sb.len >= 2);
        assert_memory_equal(sb.buf + sb.len - 2, "\n\n", 2);
        assert_null(strstr(sb.buf, "\n\n\n"));
        assert_true(strstr(sb.buf, "\n\n") == sb.buf + sb.len - 2);
    }
    sbuf_reset(&sb);
    report_answer(f->a, NULL, "bogus \"x\"", &sb);
    json_t *j = json_loads(sb.buf, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "error")),
                        "unknown command: bogus \"x\"");
    json_decref(j);
    sbuf_free(&sb);
}

static void
metrics_format(void **state)
{
    struct fixture *f = *state;
    struct sbuf sb = {0};

    f->inst->health.state = INST_UP;
    report_metrics(f->a, &sb);
    assert_non_null(strstr(sb.buf, "# TYPE process_resident_memory_bytes gauge\n"));
    assert_non_null(strstr(sb.buf, "# TYPE sentinel_agent_probes_total counter\n"));
    assert_non_null(strstr(sb.buf, "sentinel_agent_instance_up{name=\"cache-a\",cluster=\"cache\","
                                   "address=\"127.0.0.1:6379\"} 1\n"));
    assert_non_null(
        strstr(sb.buf, "sentinel_agent_probe_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
    assert_non_null(strstr(sb.buf, "# TYPE sentinel_agent_probes_agent_errors_total counter\n"
                                   "sentinel_agent_probes_agent_errors_total 0\n"));
    /* every line is a comment or "name[{labels}] value" */
    for (char *line = sb.buf; *line; line = strchr(line, '\n') + 1) {
        if (line[0] == '#')
            continue;
        char *sp = strrchr(strndupa(line, (size_t)(strchr(line, '\n') - line)), ' ');
        assert_non_null(sp);
    }
    sbuf_free(&sb);
}

/* The one line of OUT that starts with PREFIX, or NULL; fails if there are several. */
static const char *
line_with(const char *out, const char *prefix)
{
    const char *found = NULL;
    size_t n = strlen(prefix);

    for (const char *line = out; *line; line = strchr(line, '\n') + 1) {
        if (strncmp(line, prefix, n) == 0) {
            if (found != NULL)
                fail_msg("two lines start with %s", prefix);
            found = line;
        }
        if (strchr(line, '\n') == NULL)
            break;
    }
    return found;
}

/* Whether OUT has the exact line LINE (without its newline). */
static int
has_line(const char *out, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = out; (p = strstr(p, line)) != NULL; p += n)
        if ((p == out || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

/* The per-instance series: labels, the info series, what is absent while down or unknown. */
static void
metrics_instance_series(void **state)
{
    struct fixture *f = *state;
    struct sbuf sb = {0};
    struct health *h = &f->inst->health;

    /* not yet probed: no state, so no last change and no latency */
    report_metrics(f->a, &sb);
    assert_true(has_line(sb.buf, "sentinel_agent_instance_info{name=\"cache-a\",cluster=\"cache\","
                                 "address=\"127.0.0.1:6379\",role=\"unknown\",master=\"\","
                                 "link=\"\"} 1"));
    assert_true(has_line(sb.buf, "sentinel_agent_instance_up{name=\"cache-a\",cluster=\"cache\","
                                 "address=\"127.0.0.1:6379\"} 0"));
    assert_non_null(strstr(sb.buf, "# TYPE sentinel_agent_instance_last_change_timestamp_seconds "
                                   "gauge\n"));
    assert_null(line_with(sb.buf, "sentinel_agent_instance_last_change_timestamp_seconds{"));
    assert_null(line_with(sb.buf, "sentinel_agent_instance_latency_seconds{"));
    assert_null(strstr(sb.buf, "sentinel_agent_instance_role"));
    assert_true(has_line(sb.buf, "sentinel_agent_instance_published{name=\"cache-a\","
                                 "cluster=\"cache\"} 0"));
    assert_true(has_line(sb.buf, "sentinel_agent_instance_maint{name=\"cache-a\","
                                 "cluster=\"cache\"} 0"));
    /* address on the info and up series only */
    for (const char *line = sb.buf; *line; line = strchr(line, '\n') + 1)
        if (strstr(line, "address=") != NULL && strstr(line, "address=") < strchr(line, '\n'))
            assert_true(strncmp(line, "sentinel_agent_instance_info{", 29) == 0 ||
                        strncmp(line, "sentinel_agent_instance_up{", 27) == 0);

    /* up, a replica whose master's name needs escaping */
    sbuf_reset(&sb);
    h->state = INST_UP;
    h->since_ms = 1700000000123;
    h->latency_us = 1500;
    h->role.role = ROLE_REPLICA;
    strcpy(h->role.master, "we\"ird\\host:6379");
    strcpy(h->role.link, "connected");
    report_metrics(f->a, &sb);
    assert_true(has_line(sb.buf, "sentinel_agent_instance_info{name=\"cache-a\",cluster=\"cache\","
                                 "address=\"127.0.0.1:6379\",role=\"replica\","
                                 "master=\"we\\\"ird\\\\host:6379\",link=\"connected\"} 1"));
    assert_true(has_line(sb.buf, "sentinel_agent_instance_last_change_timestamp_seconds{"
                                 "name=\"cache-a\",cluster=\"cache\"} 1700000000.123"));
    assert_true(has_line(sb.buf, "sentinel_agent_instance_latency_seconds{name=\"cache-a\","
                                 "cluster=\"cache\"} 0.001500"));

    /* down: the last change moves, the latency goes away, the role is unknown */
    sbuf_reset(&sb);
    h->state = INST_DOWN;
    h->since_ms = 1700000009000;
    health_role_clear(&h->role);
    report_metrics(f->a, &sb);
    assert_true(has_line(sb.buf, "sentinel_agent_instance_last_change_timestamp_seconds{"
                                 "name=\"cache-a\",cluster=\"cache\"} 1700000009.000"));
    assert_null(line_with(sb.buf, "sentinel_agent_instance_latency_seconds{"));
    assert_non_null(line_with(sb.buf, "sentinel_agent_instance_info{"));
    assert_non_null(strstr(line_with(sb.buf, "sentinel_agent_instance_info{"),
                           "role=\"unknown\",master=\"\",link=\"\"} 1\n"));
    sbuf_free(&sb);
}

/* Failures by class: every class has its series, from the instance's counters. */
static void
metrics_failures_by_class(void **state)
{
    static const char *const classes[] = {"timeout", "refused", "connection", "protocol", "auth",
                                          "loading", "busy",    "masterdown", "error"};
    struct fixture *f = *state;
    struct sbuf sb = {0};
    char want[256];

    f->inst->failures[PROBE_CLASS_REFUSED] = 3;
    f->inst->failures[PROBE_CLASS_PROTOCOL] = 2;
    f->inst->failures[PROBE_CLASS_MASTERDOWN] = 1;
    report_metrics(f->a, &sb);
    assert_non_null(
        strstr(sb.buf, "# TYPE sentinel_agent_instance_probe_failures_total counter\n"));
    assert_int_equal(sizeof(classes) / sizeof(classes[0]), PROBE_CLASSES);
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        snprintf(want, sizeof(want),
                 "sentinel_agent_instance_probe_failures_total{name=\"cache-a\",cluster=\"cache\","
                 "reason=\"%s\"} %d",
                 classes[i],
                 strcmp(classes[i], "refused") == 0      ? 3
                 : strcmp(classes[i], "protocol") == 0   ? 2
                 : strcmp(classes[i], "masterdown") == 0 ? 1
                                                         : 0);
        if (!has_line(sb.buf, want))
            fail_msg("no line %s in\n%s", want, sb.buf);
    }
    sbuf_free(&sb);
}

/* One vocabulary for results: ok, error (and timeout for probes), the probes' not overlapping. */
static void
metrics_result_labels(void **state)
{
    struct fixture *f = *state;
    struct sbuf sb = {0};

    f->a->c.probes_ok = 7;
    f->a->c.probes_failed = 5;
    f->a->c.probes_timeout = 2;
    f->a->c.config_reloads = 4;
    f->a->c.config_reload_failures = 1;
    report_metrics(f->a, &sb);
    assert_true(has_line(sb.buf, "sentinel_agent_probes_total{result=\"ok\"} 7"));
    assert_true(has_line(sb.buf, "sentinel_agent_probes_total{result=\"error\"} 3"));
    assert_true(has_line(sb.buf, "sentinel_agent_probes_total{result=\"timeout\"} 2"));
    assert_true(has_line(sb.buf, "sentinel_agent_zk_writes_total{result=\"ok\"} 0"));
    assert_true(has_line(sb.buf, "sentinel_agent_zk_writes_total{result=\"error\"} 0"));
    assert_true(has_line(sb.buf, "sentinel_agent_config_reloads_total{result=\"ok\"} 4"));
    assert_true(has_line(sb.buf, "sentinel_agent_config_reloads_total{result=\"error\"} 1"));
    assert_null(strstr(sb.buf, "\"failed\""));
    sbuf_free(&sb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(status_doc_escapes_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(status_doc_of_a_replica, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_has_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(instances_and_no_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(answers_end_with_empty_line, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_format, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_instance_series, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_failures_by_class, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_result_labels, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
