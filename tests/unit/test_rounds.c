/*
 * test_rounds.c -- unit tests of the probe rounds' arithmetic (agent/rounds.c): the width of a
 * round, the delays that land on the grid anchored at the agent's start, and the correction
 * that puts a period back on its own phase after a stall. Pure functions: times in, times out.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rounds.h"

#define EPS 1e-6 /* seconds: far below the 1 ms the rounds care about */

#define assert_near(a, b)                                                                          \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (fabs(a_ - b_) > EPS)                                                                   \
            fail_msg("%s = %.9f, want %.9f", #a, a_, b_);                                          \
    } while (0)

/* Is T on the grid of rounds WIDTH wide anchored at BASE? */
static int
on_grid(double t, double base, double width)
{
    double k = (t - base) / width;

    return fabs(k - floor(k + 0.5)) < 1e-6;
}

/* 100 ms at most; narrower so that a round holds at most half of max_inflight probes. */
static void
test_width(void **state)
{
    (void)state;
    assert_near(rounds_width(10.0, 100), ROUNDS_MAX_S);      /* 10 probes/s: 1 per round */
    assert_near(rounds_width(1000.0, 100), 0.05);            /* 100 a round would be too many */
    assert_near(rounds_width(10000.0, 1000), 0.05);          /* 10,000 at 1 s: 500 a round */
    assert_near(rounds_width(10000.0, 2000), ROUNDS_MAX_S);  /* exactly half: still 100 ms */
    assert_near(rounds_width(0.0, 1), ROUNDS_MAX_S);         /* no instances */
    assert_true(rounds_width(20000.0, 10) * 20000.0 <= 5.0); /* the bound itself */
}

/* The delay lands on the next round of the grid at or after now + after. */
static void
test_delay_lands_on_grid(void **state)
{
    const double base = 1000.0;

    (void)state;
    assert_near(rounds_delay(1.0, 0.1, base, 1000.337, 0.), 0.063);    /* next round: .4 */
    assert_near(rounds_delay(1.0, 0.1, base, 1000.337, 0.5), 0.563);   /* first at >= .837: .9 */
    assert_near(rounds_delay(1.0, 0.1, base, 1000.4, 0.), 0.);         /* on a round: now */
    assert_near(rounds_delay(1.0, 0.1, base, 1000.4, 1.0), 1.0);       /* an interval, not more */
    assert_near(rounds_delay(1.0, 0.1, base, 1000.4 + 1e-12, 0.), 0.); /* float noise: same */
    assert_near(rounds_delay(1.0, 0.1, base, 999.95, 0.), 0.05);       /* before base too */

    /* everywhere: on the grid, at least AFTER away, less than a round more */
    for (int i = 0; i < 1000; i++) {
        double now = base + 0.0137 * i, after = 0.0071 * (i % 300);
        double d = rounds_delay(1.0, 0.1, base, now, after);

        assert_true(d >= after - 1e-9);
        assert_true(d < after + 0.1 + 1e-9);
        assert_true(on_grid(now + d, base, 0.1));
    }
}

/* A round is a whole fraction of the interval, the one nearest the round width asked for. */
static void
test_whole_rounds_per_interval(void **state)
{
    const double base = 50.0;

    (void)state;
    /* 250 ms / 100 ms = 2.5 -> 3 rounds of 83.3 ms */
    double d = rounds_delay(0.25, 0.1, base, 50.01, 0.);
    assert_near(d, 0.25 / 3 - 0.01);
    for (int i = 0; i < 200; i++) {
        double now = base + 0.0131 * i;

        assert_true(on_grid(now + rounds_delay(0.25, 0.1, base, now, 0.), base, 0.25 / 3));
    }
    /* an interval shorter than a round: one round per interval */
    assert_near(rounds_delay(0.03, 0.1, base, 50.01, 0.), 0.02);
    assert_near(rounds_delay(0.05, 0.1, base, 50.01, 0.), 0.04);
    /* narrow rounds: 1 s / 0.05 s = 20 rounds */
    assert_near(rounds_delay(1.0, 0.05, base, 50.01, 0.), 0.04);
}

/* The phase is where in the interval a period falls, from the base. */
static void
test_phase(void **state)
{
    (void)state;
    assert_near(rounds_phase(1.0, 1000.0, 1003.4), 0.4);
    assert_near(rounds_phase(0.5, 10.0, 10.3), 0.3);
    assert_near(rounds_phase(0.5, 10.0, 10.8), 0.3);
    assert_near(rounds_phase(1.0, 1000.0, 1000.0), 0.);
}

/*
 * After a stall libev restarts a late period from "now" (it fires now, and again one interval
 * after this moment): the correction moves it back to its own phase, the last moment on it
 * before libev's choice, or an interval later if that is already past.
 */
static void
test_keep_phase(void **state)
{
    const double base = 0., phase = 0.3;

    (void)state;
    /* on its phase (within 1 ms either way): left exactly as libev has it */
    assert_true(rounds_keep_phase(1.0, base, phase, 57.5, 58.3) == 58.3);
    assert_true(rounds_keep_phase(1.0, base, phase, 57.5, 58.3005) == 58.3005);
    assert_true(rounds_keep_phase(1.0, base, phase, 57.5, 58.2995) == 58.2995);

    /* a stall ended at 57.82: libev's next is now (due again at once) or now + interval */
    assert_near(rounds_keep_phase(1.0, base, phase, 57.82, 57.82), 58.3);
    assert_near(rounds_keep_phase(1.0, base, phase, 57.82, 58.82), 58.3);
    /* its phase is just before now: the next one, never now or the past */
    assert_near(rounds_keep_phase(1.0, base, phase, 57.31, 57.31), 58.3);
    assert_near(rounds_keep_phase(1.0, base, phase, 57.31, 58.31), 58.3);
    /* a base and a phase that make the offset negative before it is wrapped */
    assert_near(rounds_keep_phase(1.0, 10.0, 0.9, 10.4, 10.5), 10.9);

    /* everywhere: on its phase (within 1 ms), not before now, at most an interval away */
    for (int i = 0; i < 1000; i++) {
        double now = 100.0 + 0.0173 * i, next = now + (i % 2 ? 0. : 0.5);
        double at = rounds_keep_phase(0.5, 100.0, 0.12, now, next);

        double off = fmod(at - 100.0 - 0.12 + 0.5, 0.5);

        assert_true(at >= now); /* equal only when libev's "now" was on the phase already */
        assert_true(at <= now + 0.5 + 1e-9);
        assert_true(off <= 0.001 + 1e-9 || off >= 0.5 - 0.001 - 1e-9);
    }
}

/* A period restarted off its grid goes back to its own phase, never sooner than asked. */
static void
test_next_on_phase(void **state)
{
    (void)state;
    /* phase 0.3 of 1 s from base 57: at least 0.5 s after 57.7 is 58.3 (not 58.2, not 59.3) */
    assert_near(rounds_next_on_phase(1.0, 57.0, 0.3, 57.7, 0.5), 58.3);
    /* exactly on the phase counts: after 57.8 + 0.5 */
    assert_near(rounds_next_on_phase(1.0, 57.0, 0.3, 57.8, 0.5), 58.3);
    /* just past it: the next one */
    assert_near(rounds_next_on_phase(1.0, 57.0, 0.3, 57.81, 0.5), 59.3);
    /* many instances woken at one moment keep their different phases */
    for (int i = 0; i < 10; i++) {
        double at = rounds_next_on_phase(1.0, 100.0, 0.1 * i, 123.456, 0.5);
        double off = fmod(at - 100.0, 1.0);

        assert_true(at >= 123.956 - 1e-9 && at < 124.956 + 1e-9);
        assert_true(fabs(off - 0.1 * i) < 1e-6 || fabs(off - 0.1 * i - 1.0) < 1e-6 ||
                    fabs(off - 0.1 * i + 1.0) < 1e-6);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_width),
        cmocka_unit_test(test_delay_lands_on_grid),
        cmocka_unit_test(test_whole_rounds_per_interval),
        cmocka_unit_test(test_phase),
        cmocka_unit_test(test_keep_phase),
        cmocka_unit_test(test_next_on_phase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
