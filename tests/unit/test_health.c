/* test_health.c -- the health state machine: first result, rise/fall, conclusive failures, TILT,
 * roles. */
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
    return health_record(h, &r, rise, fall, tilt, now);
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
    struct probe_result r = {.status = PROBE_OK, .role_known = 1, .role = ROLE_MASTER};

    assert_int_equal(health_record(&h, &r, 1, 1, 0, 5), HEALTH_STATE_CHANGED | HEALTH_ROLE_CHANGED);
    assert_int_equal(h.role, ROLE_MASTER);
    int64_t since = h.since_ms;
    /* a role change alone is reported, and since_ms does not move */
    r.role = ROLE_REPLICA;
    assert_int_equal(health_record(&h, &r, 1, 1, 0, 6), HEALTH_ROLE_CHANGED);
    assert_int_equal(h.since_ms, since);
    /* the role is kept when ROLE was not asked in a probe */
    r.role_known = 0;
    assert_int_equal(health_record(&h, &r, 1, 1, 0, 7), 0);
    assert_int_equal(h.role, ROLE_REPLICA);
    /* down means unknown */
    struct probe_result f = {.status = PROBE_CONCLUSIVE};
    strcpy(f.reason, "connection refused");
    assert_int_equal(health_record(&h, &f, 1, 1, 0, 8), HEALTH_STATE_CHANGED | HEALTH_ROLE_CHANGED);
    assert_int_equal(h.role, ROLE_UNKNOWN);
    assert_string_equal(health_role_name(h.role), "unknown");
    assert_string_equal(health_state_name(h.state), "down");
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
