/* test_health.c -- the health state machine: first result, rise/fall, conclusive failures, TILT,
 * roles, master and link, agent errors, rising. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "health.h"
#include "probe.h"

static int64_t now = 1000;

static int
feed(struct health *h, enum probe_status st, int rise, int fall, int tilt)
{
    struct probe_result r = {0};
    r.status = st;
    if (st == PROBE_OK) {
        r.latency_us = 250;
    } else {
        strcpy(r.reason, st == PROBE_TIMEOUT      ? "timeout"
                         : st == PROBE_CONCLUSIVE ? "connection refused"
                                                  : "loading");
    }
    now += 1000;
    return health_record(h, &r, rise, fall, tilt, now, NULL);
}

static void
first_result_decides(void **state)
{
    (void)state;
    struct health up = {0}, down = {0};

    assert_int_equal(feed(&up, PROBE_OK, 3, 3, 0), HEALTH_STATE_CHANGED);
    assert_int_equal(up.state, INST_UP);
    assert_int_equal(up.since_ms, now);
    assert_string_equal(up.reason, "");
    assert_int_equal(up.latency_us, 250);

    assert_int_equal(feed(&down, PROBE_TIMEOUT, 3, 3, 0), HEALTH_STATE_CHANGED);
    assert_int_equal(down.state, INST_DOWN);
    assert_string_equal(down.reason, "timeout");
}

static void
fall_needs_consecutive_failures(void **state)
{
    (void)state;
    struct health h = {0};

    feed(&h, PROBE_OK, 2, 3, 0);
    int64_t since = h.since_ms;
    assert_int_equal(feed(&h, PROBE_FAILED, 2, 3, 0), 0);
    assert_int_equal(feed(&h, PROBE_TIMEOUT, 2, 3, 0), 0);
    assert_int_equal(h.state, INST_UP);
    assert_int_equal(h.consecutive_fail, 2);
    assert_string_equal(h.reason, ""); /* the reason stays empty while up */
    /* a success in between resets the count */
    feed(&h, PROBE_OK, 2, 3, 0);
    assert_int_equal(h.consecutive_fail, 0);
    feed(&h, PROBE_FAILED, 2, 3, 0);
    feed(&h, PROBE_FAILED, 2, 3, 0);
    assert_int_equal(h.state, INST_UP);
    assert_int_equal(h.since_ms, since);
    assert_int_equal(feed(&h, PROBE_TIMEOUT, 2, 3, 0), HEALTH_STATE_CHANGED);
    assert_int_equal(h.state, INST_DOWN);
    assert_string_equal(h.reason, "timeout");
    assert_true(h.since_ms > since);
}

static void
rise_needs_consecutive_successes(void **state)
{
    (void)state;
    struct health h = {0};

    feed(&h, PROBE_FAILED, 3, 2, 0);
    assert_int_equal(h.state, INST_DOWN);
    assert_int_equal(feed(&h, PROBE_OK, 3, 2, 0), 0);
    assert_int_equal(feed(&h, PROBE_OK, 3, 2, 0), 0);
    assert_int_equal(h.state, INST_DOWN);
    assert_int_equal(h.consecutive_ok, 2);
    assert_int_equal(feed(&h, PROBE_OK, 3, 2, 0), HEALTH_STATE_CHANGED);
    assert_int_equal(h.state, INST_UP);
    assert_string_equal(h.reason, "");
}

static void
refused_is_conclusive(void **state)
{
    (void)state;
    struct health h = {0};

    feed(&h, PROBE_OK, 2, 5, 0);
    assert_int_equal(feed(&h, PROBE_CONCLUSIVE, 2, 5, 0), HEALTH_STATE_CHANGED);
    assert_int_equal(h.state, INST_DOWN);
    assert_string_equal(h.reason, "connection refused");
    /* and rise still applies on the way back */
    assert_int_equal(feed(&h, PROBE_OK, 2, 5, 0), 0);
    assert_int_equal(feed(&h, PROBE_OK, 2, 5, 0), HEALTH_STATE_CHANGED);
}

static void
tilt_ignores_timeouts_only(void **state)
{
    (void)state;
    struct health h = {0};

    feed(&h, PROBE_OK, 1, 1, 0);
    int64_t checked = h.last_check_ms;
    assert_int_equal(feed(&h, PROBE_TIMEOUT, 1, 1, 1), 0);
    assert_int_equal(h.state, INST_UP);
    assert_int_equal(h.consecutive_fail, 0);
    assert_int_equal(h.last_check_ms, checked);
    /* a refused connection is not a matter of timing: it still counts under TILT */
    assert_int_equal(feed(&h, PROBE_CONCLUSIVE, 1, 1, 1), HEALTH_STATE_CHANGED);
    assert_int_equal(h.state, INST_DOWN);
}

static void
role_follows_state(void **state)
{
    (void)state;
    struct health h = {0};
    struct role_info ri = {.role = ROLE_MASTER, .replicas = 1}, was = {0};
    struct probe_result r = {.status = PROBE_OK, .role = &ri};

    assert_int_equal(health_record(&h, &r, 1, 1, 0, 5, NULL),
                     HEALTH_STATE_CHANGED | HEALTH_ROLE_CHANGED);
    assert_int_equal(h.role.role, ROLE_MASTER);
    int64_t since = h.since_ms;
    /* a role change alone is reported, with the role it had, and since_ms does not move */
    ri.role = ROLE_REPLICA;
    ri.replicas = 0;
    strcpy(ri.master, "10.0.0.1:6379");
    strcpy(ri.link, "connected");
    assert_int_equal(health_record(&h, &r, 1, 1, 0, 6, &was), HEALTH_ROLE_CHANGED);
    assert_int_equal(was.role, ROLE_MASTER);
    assert_int_equal(was.replicas, 1);
    assert_int_equal(h.since_ms, since);
    /* nothing changed: WAS is left alone */
    was.role = ROLE_SENTINEL;
    assert_int_equal(health_record(&h, &r, 1, 1, 0, 6, &was), 0);
    assert_int_equal(was.role, ROLE_SENTINEL);
    /* a failed probe of an instance still up keeps the role */
    struct probe_result lost = {.status = PROBE_FAILED};
    strcpy(lost.reason, "loading");
    assert_int_equal(health_record(&h, &lost, 1, 2, 0, 7, NULL), 0);
    assert_int_equal(h.role.role, ROLE_REPLICA);
    assert_string_equal(h.role.master, "10.0.0.1:6379");
    /* down means unknown, with no master, no link, no replicas */
    struct probe_result f = {.status = PROBE_CONCLUSIVE};
    strcpy(f.reason, "connection refused");
    assert_int_equal(health_record(&h, &f, 1, 1, 0, 8, NULL),
                     HEALTH_STATE_CHANGED | HEALTH_ROLE_CHANGED);
    assert_int_equal(h.role.role, ROLE_UNKNOWN);
    assert_string_equal(h.role.master, "");
    assert_string_equal(h.role.link, "");
    assert_int_equal(h.role.replicas, 0);
    assert_string_equal(health_role_name(h.role.role), "unknown");
    assert_string_equal(health_state_name(h.state), "down");
}

/* What is written at once: role, master and link; not replicas alone. */
static void
change_mask_of_role_master_link(void **state)
{
    (void)state;
    struct health h = {0};
    struct role_info ri = {.role = ROLE_REPLICA}, mi = {.role = ROLE_MASTER, .replicas = 1};
    struct probe_result r = {.status = PROBE_OK, .role = &ri};

    strcpy(ri.master, "10.0.0.1:6379");
    strcpy(ri.link, "connected");
    assert_int_equal(health_record(&h, &r, 1, 1, 0, 5, NULL),
                     HEALTH_STATE_CHANGED | HEALTH_ROLE_CHANGED);
    /* the same again: nothing to write */
    assert_int_equal(health_record(&h, &r, 1, 1, 0, 6, NULL), 0);
    /* the link breaks: written at once */
    strcpy(ri.link, "connect");
    assert_int_equal(health_record(&h, &r, 1, 1, 0, 7, NULL), HEALTH_ROLE_CHANGED);
    assert_string_equal(h.role.link, "connect");
    /* a new master: written at once */
    strcpy(ri.master, "10.0.0.2:6379");
    assert_int_equal(health_record(&h, &r, 1, 1, 0, 8, NULL), HEALTH_ROLE_CHANGED);
    assert_string_equal(h.role.master, "10.0.0.2:6379");
    /* promoted: a master with replicas */
    struct probe_result m = {.status = PROBE_OK, .role = &mi};
    assert_int_equal(health_record(&h, &m, 1, 1, 0, 9, NULL), HEALTH_ROLE_CHANGED);
    assert_string_equal(h.role.master, "");
    /* the replica count (and the latency) alone: kept, not written */
    mi.replicas = 3;
    m.latency_us = 999;
    assert_int_equal(health_record(&h, &m, 1, 1, 0, 10, NULL), 0);
    assert_int_equal(h.role.replicas, 3);
    assert_int_equal(h.latency_us, 999);
    /* while rising (down, fewer than rise successes) the role stays unknown */
    struct health d = {0};
    struct probe_result f = {.status = PROBE_TIMEOUT};
    strcpy(f.reason, "timeout");
    health_record(&d, &f, 2, 2, 0, 11, NULL);
    assert_int_equal(health_record(&d, &m, 2, 2, 0, 12, NULL), 0);
    assert_int_equal(d.role.role, ROLE_UNKNOWN);
    assert_int_equal(health_record(&d, &m, 2, 2, 0, 13, NULL),
                     HEALTH_STATE_CHANGED | HEALTH_ROLE_CHANGED);
    assert_int_equal(d.role.role, ROLE_MASTER);
    assert_int_equal(d.role.replicas, 3);
}

/* A probe the agent itself could not run changes nothing at all. */
static void
agent_errors_are_ignored(void **state)
{
    (void)state;
    struct health h = {0};
    struct probe_result e = {.status = PROBE_AGENT_ERROR};

    strcpy(e.reason, "agent error: Can't create socket: Too many open files");
    /* not even the first verdict */
    assert_int_equal(health_record(&h, &e, 1, 1, 0, 5, NULL), 0);
    assert_int_equal(h.state, INST_UNKNOWN);
    assert_int_equal(h.last_check_ms, 0);
    feed(&h, PROBE_OK, 2, 1, 0);
    struct health before = h;
    for (int i = 0; i < 5; i++)
        assert_int_equal(health_record(&h, &e, 2, 1, 0, 100 + i, NULL), 0);
    assert_memory_equal(&h, &before, sizeof(h));
}

static void
rising_is_down_with_some_successes(void **state)
{
    (void)state;
    struct health h = {0};

    assert_false(health_rising(&h, 3));
    feed(&h, PROBE_CONCLUSIVE, 3, 2, 0);
    assert_false(health_rising(&h, 3)); /* down, no success yet */
    feed(&h, PROBE_OK, 3, 2, 0);
    assert_true(health_rising(&h, 3));
    feed(&h, PROBE_OK, 3, 2, 0);
    assert_true(health_rising(&h, 3));
    feed(&h, PROBE_OK, 3, 2, 0);
    assert_int_equal(h.state, INST_UP);
    assert_false(health_rising(&h, 3));
    /* a failure while rising starts over */
    struct health g = {0};
    feed(&g, PROBE_TIMEOUT, 2, 2, 0);
    feed(&g, PROBE_OK, 2, 2, 0);
    assert_true(health_rising(&g, 2));
    feed(&g, PROBE_FAILED, 2, 2, 0);
    assert_false(health_rising(&g, 2));
    /* rise 1: never rising, up at the first success */
    struct health o = {0};
    feed(&o, PROBE_TIMEOUT, 1, 1, 0);
    feed(&o, PROBE_OK, 1, 1, 0);
    assert_int_equal(o.state, INST_UP);
    assert_false(health_rising(&o, 1));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_result_decides),
        cmocka_unit_test(fall_needs_consecutive_failures),
        cmocka_unit_test(rise_needs_consecutive_successes),
        cmocka_unit_test(refused_is_conclusive),
        cmocka_unit_test(tilt_ignores_timeouts_only),
        cmocka_unit_test(role_follows_state),
        cmocka_unit_test(change_mask_of_role_master_link),
        cmocka_unit_test(agent_errors_are_ignored),
        cmocka_unit_test(rising_is_down_with_some_successes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
