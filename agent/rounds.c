/* rounds.c -- the arithmetic of the probe rounds: their width, the grid of rounds an instance's
 * regular probes fall on, and putting a period back on its phase after a stall. */
#include "rounds.h"

#include <math.h>

double
rounds_width(double rate, int max_inflight)
{
    double width = ROUNDS_MAX_S;

    if (rate * width > (double)max_inflight / 2.0)
        width = (double)max_inflight / 2.0 / rate;
    return width;
}

double
rounds_delay(double interval, double round, double base, double now, double after)
{
    double per = floor(interval / round + 0.5);
    double width = interval / (per < 1. ? 1. : per); /* whole rounds per interval */
    double at = base + ceil((now + after - base) / width - 1e-9) * width;

    return at > now ? at - now : 0.;
}

double
rounds_phase(double interval, double base, double at)
{
    return fmod(at - base, interval);
}

double
rounds_keep_phase(double interval, double base, double phase_at, double now, double next)
{
    double off = fmod(next - base - phase_at, interval);

    if (off < 0.)
        off += interval;
    if (off < 0.001 || off > interval - 0.001)
        return next;
    next -= off; /* its own phase, before the late restart */
    if (next <= now)
        next += interval;
    return next;
}

double
rounds_next_on_phase(double interval, double base, double phase_at, double now, double after)
{
    double k = ceil((now + after - base - phase_at) / interval - 1e-9);

    return base + phase_at + k * interval;
}
