/* rounds.h -- the arithmetic of the probe rounds: their width, the grid of rounds an instance's
 * regular probes fall on, and putting a period back on its phase after a stall. Pure: times in,
 * times out, no loop and no agent (instance.c applies them to its timers). */
#ifndef SA_ROUNDS_H
#define SA_ROUNDS_H

/* The widest round, in seconds (docs/DESIGN.md, "The probe life cycle"). */
#define ROUNDS_MAX_S 0.1

/*
 * The width of a round for instances that probe RATE times a second in all: ROUNDS_MAX_S, or
 * narrower so that a round holds at most half of MAX_INFLIGHT probes.
 */
double rounds_width(double rate, int max_inflight);

/*
 * Seconds from NOW to the first round at least AFTER seconds away (0 if that is now or past),
 * for an instance probed every INTERVAL: its rounds are a whole fraction of INTERVAL, the one
 * nearest ROUND wide (at least one per interval), on a grid anchored at BASE.
 */
double rounds_delay(double interval, double round, double base, double now, double after);

/* Where AT falls in the interval, counted from BASE: the phase of a period that fires at AT. */
double rounds_phase(double interval, double base, double at);

/*
 * The moment a period of INTERVAL on phase PHASE_AT (rounds_phase) should fire next, given that
 * libev has it fire at NEXT: NEXT itself when it is on its phase (within 1 ms), else the last
 * moment on its phase before NEXT, or an interval later if that is not after NOW.
 */
double rounds_keep_phase(double interval, double base, double phase_at, double now, double next);

/*
 * The first moment at least AFTER seconds from NOW that is on phase PHASE_AT of a period of
 * INTERVAL anchored at BASE: where a period restarted off its grid (a probe at once, the end of
 * a down spell) goes back to, so that instances woken together do not end up in one round.
 */
double rounds_next_on_phase(double interval, double base, double phase_at, double now,
                            double after);

#endif
