/* instance.c -- one monitored Redis instance: when it is probed, and the one place its state
 * changes. */
#include "instance.h"

#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "log.h"
#include "reply.h"
#include "report.h"
#include "rounds.h"
#include "util.h"
#include "zkpub.h"

static void period_cb(struct ev_loop *loop, ev_timer *w, int revents);

/*
 * Probe rounds. Each instance's probes fall on a grid of rounds, tune.round wide (a whole
 * fraction of its interval) and anchored at the agent's start, so instances with the same
 * interval are probed together, round by round (like Sentinel's 10 Hz cron), rather than each
 * at its own moment. One loop wake-up then sends a round's probes and a few more read their
 * replies, instead of a wake-up per probe and per reply, and on a VM a wake-up costs more CPU
 * than a probe's own work (the figures: docs/performance.md).
 * A round is at most ROUNDS_MAX_S, and narrower when needed to keep its probes within half
 * of max_inflight. Each instance is still probed once per interval, and the deadlines, the
 * fastinter re-probe and the EOF path are not aligned to rounds: the rounds only choose the
 * phase of the regular probes. The arithmetic is rounds.c's.
 */
#define INST_AGENT_ERROR_LOG_S 60.0 /* at most one warn line a minute for the agent's faults */

void
inst_plan_rounds(struct agent *a, const struct conf *conf)
{
    const struct conf_instance *ci;
    double rate = 0.;

    TAILQ_FOREACH (ci, &conf->instances, link)
        rate += 1000.0 / (double)ci->interval_ms;
    a->tune.round = rounds_width(rate, conf->max_inflight);
}

/* Seconds from now to INST's first round at least AFTER seconds away. */
static ev_tstamp
round_delay(const struct inst *inst, ev_tstamp after)
{
    const struct agent *a = inst->agent;

    return rounds_delay((double)inst->conf->interval_ms / 1000.0, a->tune.round, a->tune.base,
                        ev_now(a->loop), after);
}

/* (Re)starts INST's period at its first round at least AFTER seconds from now. */
static void
period_start(struct inst *inst, ev_tstamp after)
{
    struct agent *a = inst->agent;
    double interval = (double)inst->conf->interval_ms / 1000.0;
    ev_tstamp delay = round_delay(inst, after);

    inst->phase_at = rounds_phase(interval, a->tune.base, ev_now(a->loop) + delay);
    inst->down_period = 0;
    ev_timer_stop(a->loop, &inst->period);
    ev_timer_set(&inst->period, delay, interval);
    ev_timer_start(a->loop, &inst->period);
}

/*
 * Puts INST's period back on its own phase (phase_at), at least AFTER seconds from now. A
 * probe made at once (fastinter, the EOF path, a late reply, the end of a down spell) must not
 * move the instance's regular probes to wherever that moment falls: instances woken together
 * (a stall's late replies) would share one round from then on.
 */
static void
period_resume(struct inst *inst, ev_tstamp after)
{
    struct agent *a = inst->agent;
    double interval = (double)inst->conf->interval_ms / 1000.0;
    ev_tstamp now = ev_now(a->loop);
    ev_tstamp at = rounds_next_on_phase(interval, a->tune.base, inst->phase_at, now, after);

    inst->down_period = 0;
    ev_timer_stop(a->loop, &inst->period);
    ev_timer_set(&inst->period, at - now, interval);
    ev_timer_start(a->loop, &inst->period);
}

/*
 * After a stall (SIGSTOP, suspend) longer than an interval libev restarts every late periodic
 * timer from the same "now", which would leave all of them in one round from then on. Moves
 * INST's period, which has just fired, back to its own phase.
 */
static void
period_keep_phase(struct inst *inst)
{
    struct agent *a = inst->agent;
    double interval = (double)inst->conf->interval_ms / 1000.0;
    ev_tstamp now = ev_now(a->loop);
    ev_tstamp left = ev_timer_remaining(a->loop, &inst->period);
    /*
     * libev keeps a repeating timer on its grid unless it fell a whole repeat behind, when it
     * restarts it from now (left is then 0): only then can the phase be lost.
     */
    if (left > 0.001)
        return;
    ev_tstamp next = now + left;
    ev_tstamp at = rounds_keep_phase(interval, a->tune.base, inst->phase_at, now, next);

    if (at == next)
        return; /* on its phase: left alone */
    ev_timer_stop(a->loop, &inst->period);
    ev_timer_set(&inst->period, at - now, interval);
    ev_timer_start(a->loop, &inst->period);
}

/*
 * While an instance is down (or still unknown after a probe the agent itself failed) it is
 * probed every downinter, counted from the end of the previous probe, not on the rounds: the
 * next probe is downinter after this moment. The repeat is only a fallback for a start that
 * max_inflight prevented; it is long enough never to fall while a probe is in flight.
 */
static void
period_down(struct inst *inst)
{
    struct agent *a = inst->agent;
    double downinter = (double)inst->conf->downinter_ms / 1000.0;
    double timeout = (double)inst->conf->timeout_ms / 1000.0;

    inst->down_period = 1;
    ev_timer_stop(a->loop, &inst->period);
    ev_timer_set(&inst->period, downinter, downinter + timeout);
    ev_timer_start(a->loop, &inst->period);
}

/*
 * Probes again right away: the period restarts (on the instance's own phase at least half an
 * interval from now, or downinter from now while down), and the period callback is made pending in
 * the current loop iteration (ev_feed_event) instead of through a zero-delay timer, which would
 * wait for the next iteration -- up to a collect interval later. It never runs inside the hiredis
 * callback that led here: libev invokes it after the current callback returns. Bounded:
 * fastinter re-probes only while up (at most fall - 1 times in a row), rising ones only while
 * rising (at most rise - 1), the EOF path at most once per interval, and a late reply comes
 * only after a probe timed out.
 */
static void
schedule_now(struct inst *inst)
{
    double interval = (double)inst->conf->interval_ms / 1000.0;

    if (inst->health.state == INST_UP)
        period_resume(inst, interval / 2.);
    else
        period_down(inst);
    ev_feed_event(inst->agent->loop, &inst->period, EV_TIMER);
}

/* Takes INST off the queue of first probes, if it is on it. */
static void
first_dequeue(struct inst *inst)
{
    if (!inst->queued)
        return;
    TAILQ_REMOVE(&inst->agent->first_probes, inst, firstq);
    inst->queued = 0;
}

static void collect_apply(struct agent *a);

/* Counts a probe in or out of flight: the I/O collect interval applies while any is. */
static void
inflight_add(struct agent *a, int d)
{
    int was = a->inflight;

    a->inflight += d;
    if ((was == 0) != (a->inflight == 0))
        collect_apply(a);
}

static void
probe_now(struct inst *inst)
{
    first_dequeue(inst);
    inflight_add(inst->agent, 1);
    probe_start(&inst->probe);
}

/*
 * Starts the first probes waiting in A's queue while max_inflight allows. A probe may
 * complete inside probe_start() (a refused connect) and its inst_record() come back here:
 * the loop that is already running goes on instead, so the stack stays flat.
 */
static void
first_probes_drain(struct agent *a)
{
    struct inst *inst;

    if (a->draining)
        return;
    a->draining = 1;
    while (a->inflight < a->conf->max_inflight && (inst = TAILQ_FIRST(&a->first_probes)) != NULL)
        probe_now(inst);
    a->draining = 0;
}

/*
 * The first probes of instances just started go out when the loop next runs, before it waits,
 * not inside inst_start(): starting 10,000 of them (as many connects) inside agent_start()
 * would hold READY and the stats socket back by more than a second.
 */
static void
first_kick_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    ev_prepare_stop(loop, w);
    first_probes_drain(w->data);
}

void
inst_agent_init(struct agent *a)
{
    TAILQ_INIT(&a->first_probes);
    ev_prepare_init(&a->first_kick, first_kick_cb);
    a->first_kick.data = a;
    a->tune.collect = -1.;
    a->tune.io_on = -1;
}

void
inst_agent_stop(struct agent *a)
{
    ev_prepare_stop(a->loop, &a->first_kick);
}

/*
 * A probe is due. At most one in flight per instance and at most max_inflight overall; a due
 * probe that cannot start is counted as skipped and waits for the next period.
 */
static void
period_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct inst *inst = w->data;
    struct agent *a = inst->agent;

    (void)loop;
    (void)revents;
    if (!inst->down_period)
        period_keep_phase(inst);
    if (inst->probe.inflight || a->inflight >= a->conf->max_inflight) {
        inst->probes_skipped++;
        a->c.probes_skipped++;
        return;
    }
    probe_now(inst);
}

static void
count_latency(struct agent_counters *c, int64_t us)
{
    c->latency_count++;
    c->latency_sum_us += (double)us;
    for (int i = 0; i < AGENT_LATENCY_BUCKETS; i++)
        if ((double)us <= agent_latency_bounds_us[i])
            c->latency_bucket[i]++;
}

/* "master", "sentinel", "unknown", or "replica of HOST:PORT (link STATE)", for log lines. */
static const char *
role_desc(const struct role_info *r, char *buf, size_t len)
{
    if (r->role != ROLE_REPLICA)
        return health_role_name(r->role);
    snprintf(buf, len, "replica of %s (link %s)", r->master, r->link);
    return buf;
}

/*
 * A probe the agent itself could not run (no fd, no memory): no verdict on the Redis. Counted
 * apart, logged at warn at most once a minute for the whole agent.
 */
static void
agent_error(struct inst *inst, const struct probe_result *r)
{
    struct agent *a = inst->agent;
    ev_tstamp now = ev_now(a->loop);

    inst->probes_agent_errors++;
    a->c.probes_agent_errors++;
    if (a->agent_error_logged == 0. || now - a->agent_error_logged >= INST_AGENT_ERROR_LOG_S) {
        a->agent_error_logged = now;
        log_warn("agent",
                 "cannot probe instance %s: %s (the agent's own limit, not a verdict "
                 "on the Redis; %llu such probes so far)",
                 inst->conf->name, r->reason, (unsigned long long)a->c.probes_agent_errors);
    }
    if (inst->health.state == INST_UNKNOWN)
        period_down(inst); /* try again soon: its first verdict is still to come */
}

/* ROLE refused with -NOPERM: one warn line when it starts, one info line when it ends. */
static void
role_noperm_edge(struct inst *inst, const struct probe_result *r)
{
    if (r->status != PROBE_OK || r->role_noperm == inst->role_noperm)
        return;
    inst->role_noperm = r->role_noperm;
    if (r->role_noperm)
        log_warn(inst->logname, "ROLE refused (NOPERM): the user needs +role; role unknown");
    else
        log_info(inst->logname, "ROLE answered again");
}

/*
 * The one path of a probe's result (INST's probe_done_fn, possibly called from inside
 * probe_start()): the counters, TILT, the health state machine, and on an edge the one log
 * line, state_changes and the publication; then when to probe next.
 */
static void
inst_record(void *ud, const struct probe_result *r, int tilt)
{
    struct inst *inst = ud;
    struct agent *a = inst->agent;
    int64_t now = util_wall_ms();

    inflight_add(a, -1);
    if (r->status == PROBE_AGENT_ERROR) {
        agent_error(inst, r);
        first_probes_drain(a);
        return;
    }
    if (r->status == PROBE_OK) {
        inst->probes_ok++;
        a->c.probes_ok++;
        count_latency(&a->c, r->latency_us);
    } else {
        inst->probes_failed++;
        inst->failures[reply_reason_class(r->status, r->reason)]++;
        a->c.probes_failed++;
        if (r->status == PROBE_TIMEOUT) {
            inst->probes_timeout++;
            a->c.probes_timeout++;
        }
    }
    if (tilt && r->status == PROBE_TIMEOUT) {
        a->c.probes_tilted++;
        if (!a->tilt_logged) {
            log_warn("agent", "the event loop ran late (stall or suspend): ignoring timeouts "
                              "judged on that timing");
            a->tilt_logged = 1;
        }
    } else if (r->status == PROBE_TIMEOUT) {
        a->tilt_logged = 0;
    }
    role_noperm_edge(inst, r);

    enum inst_state old_state = inst->health.state;
    struct role_info old_role; /* filled when the role changed */
    int what =
        health_record(&inst->health, r, inst->conf->rise, inst->conf->fall, tilt, now, &old_role);
    if (what & HEALTH_STATE_CHANGED) {
        /*
         * A new state: the next EOF of an idle link is news again (a Redis killed soon after
         * it came back up). The limiter below still stops a spin: each state change takes
         * rise or fall probes.
         */
        inst->last_eof_probe = 0.;
        if (inst->health.state == INST_DOWN)
            log_info(inst->logname, "%s -> down (%s)", health_state_name(old_state),
                     inst->health.reason);
        else
            log_info(inst->logname, "%s -> %s", health_state_name(old_state),
                     health_state_name(inst->health.state));
    }
    if ((what & HEALTH_ROLE_CHANGED) && old_state == INST_UP && inst->health.state == INST_UP) {
        char was[HEALTH_MASTER_MAX + 48], is[HEALTH_MASTER_MAX + 48];
        log_info(inst->logname, "role %s -> %s", role_desc(&old_role, was, sizeof(was)),
                 role_desc(&inst->health.role, is, sizeof(is)));
    }
    if (what) {
        a->c.state_changes++;
        inst_publish(inst);
    }

    /*
     * When to probe next:
     * 1. Rising (down, fewer than rise successes): the confirming probe follows at once.
     * 2. A failure of an instance still up is re-checked at once instead of a whole interval
     *    later (HAProxy's fastinter): detection costs fall x timeout, not fall x interval; the
     *    re-check after a timeout is also the fresh-connect check (probe.c).
     * 3. Down: downinter after this probe.
     * 4. Just up: back on its own phase in the rounds, at least half an interval from now.
     */
    if (health_rising(&inst->health, inst->conf->rise) ||
        (r->status != PROBE_OK && inst->health.state == INST_UP))
        schedule_now(inst);
    else if (inst->health.state == INST_DOWN)
        period_down(inst);
    else if (inst->health.state == INST_UP && inst->down_period)
        period_resume(inst, (double)inst->conf->interval_ms / 1000.0 / 2.);
    first_probes_drain(a);
}

/*
 * An idle link hit EOF: the Redis process likely died. Probe at once to learn it, but at most
 * once per interval in one state, so a server that closes every connection it accepts cannot
 * make us spin.
 */
static void
inst_link_eof(void *ud)
{
    struct inst *inst = ud;
    ev_tstamp now = ev_now(inst->agent->loop);

    if (now - inst->last_eof_probe < (double)inst->conf->interval_ms / 1000.0) {
        log_debug(inst->logname, "connection closed by the server again");
        return;
    }
    inst->last_eof_probe = now;
    log_debug(inst->logname, "connection closed by the server, probing at once");
    schedule_now(inst);
}

/* A late reply on a stale link: the server is back from a hang. Probe at once. */
static void
inst_link_wake(void *ud)
{
    struct inst *inst = ud;

    log_debug(inst->logname, "late reply: the server answers again, probing at once");
    schedule_now(inst);
}

struct inst *
inst_new(struct agent *a, const struct conf_instance *conf)
{
    struct inst *inst = xcalloc(1, sizeof(*inst));

    inst->agent = a;
    inst->conf = conf;
    snprintf(inst->logname, sizeof(inst->logname), "instance %s", conf->name);
    ev_init(&inst->period, period_cb);
    inst->period.data = inst;
    probe_init(&inst->probe, a->loop, conf, inst_record, inst_link_eof, inst_link_wake, inst);
    return inst;
}

/* INST's node's zkpub_render_fn: the status document, rendered when the node is written. */
static void
inst_render(void *ud, struct sbuf *out)
{
    struct inst *inst = ud;

    report_status_doc(inst, inst->agent->conf->name, out);
}

void
inst_publish(struct inst *inst)
{
    struct zkpub *z = inst->agent->zk;

    if (z == NULL || inst->health.state == INST_UNKNOWN)
        return;
    if (inst->zn == NULL)
        inst->zn = zkpub_node_new(z, inst->conf->cluster, inst->conf->name, inst_render, inst);
    zkpub_node_changed(z, inst->zn);
}

void
inst_unpublish(struct inst *inst)
{
    zkpub_node_remove(inst->agent->zk, inst->zn);
    inst->zn = NULL;
}

void
inst_set_conf(struct inst *inst, const struct conf_instance *conf)
{
    inst->conf = conf;
    inst->probe.conf = conf;
}

/*
 * Loop batching. Left alone, the loop sleeps and wakes once for every probe's timer and once
 * more for every reply -- two wake-ups per probe, each costing more CPU (scheduler, and on a
 * VM the hypervisor) than the probe's own work. libev's collect intervals batch them:
 * - the timeout collect interval lets timers that fall due within it fire together (at most
 *   that late); it never adds a wake-up, so it is always on;
 * - the I/O collect interval makes each iteration sleep first and then take every reply and
 *   timer that came due meanwhile: at most 1/collect iterations a second whatever N. But an
 *   iteration that finds nothing after its sleep blocks again, so it pays only when several
 *   probes fall in one interval: it is on only while the instances probe at least
 *   INST_COLLECT_MIN_EVENTS times per collect interval (N >= 400 at interval 1 s), and only
 *   while probes are in flight: once a round's replies are all in, the loop blocks until the
 *   next round at once instead of sleeping first (a wake-up less per round).
 * The interval is 1 % of the shortest probe timeout and at most 5 ms, so a timeout's precision
 * and the detection latency (the EOF path is a single loop hop, see schedule_now) move by a
 * few milliseconds only.
 */
#define INST_COLLECT_MAX_S      0.005
#define INST_COLLECT_OF_TIMEOUT 0.01
#define INST_COLLECT_MIN_EVENTS 2.0

/*
 * Re-tunes A's loop after an instance started (TIMEOUT_MS: its timeout) or stopped
 * (TIMEOUT_MS 0); a->tune.probe_rate has already been updated.
 */
static void
tune_loop(struct agent *a, int timeout_ms)
{
    ev_tstamp want = (double)timeout_ms / 1000.0 * INST_COLLECT_OF_TIMEOUT;

    if (want > INST_COLLECT_MAX_S)
        want = INST_COLLECT_MAX_S;
    if (timeout_ms > 0 && (a->tune.collect < 0. || want < a->tune.collect)) {
        a->tune.collect = want;
        ev_set_timeout_collect_interval(a->loop, want);
        a->tune.io_on = -1;
    }
    if (a->tune.collect < 0.)
        return;
    int on = a->tune.probe_rate * a->tune.collect >= INST_COLLECT_MIN_EVENTS;
    if (on != a->tune.io_on) {
        a->tune.io_on = on;
        collect_apply(a);
    }
}

/* Sets the loop's I/O collect interval: tune_loop's, while probes are in flight. */
static void
collect_apply(struct agent *a)
{
    ev_set_io_collect_interval(a->loop,
                               a->tune.io_on == 1 && a->inflight > 0 ? a->tune.collect : 0.);
}

void
inst_start(struct inst *inst, double phase)
{
    struct agent *a = inst->agent;
    double interval = (double)inst->conf->interval_ms / 1000.0;

    if (!ev_is_active(&inst->period))
        a->tune.probe_rate += 1000.0 / (double)inst->conf->interval_ms;
    tune_loop(a, inst->conf->timeout_ms);
    /*
     * From the real time, not the loop's cached one: starting 10,000 instances (and
     * everything before the loop first runs) takes long enough that a stale base would put
     * every instance whose phase has already passed into the first round.
     */
    ev_now_update(a->loop);
    /* the regular probes from its phase on (the first one at once, below: not at 0 too) */
    period_start(inst, (phase > 0. ? phase : 1.) * interval);
    /* the first probe at once, max_inflight allowing; else in the queue's order */
    inst->queued = 1;
    TAILQ_INSERT_TAIL(&a->first_probes, inst, firstq);
    ev_prepare_start(a->loop, &a->first_kick);
}

void
inst_stop(struct inst *inst)
{
    if (ev_is_active(&inst->period)) {
        inst->agent->tune.probe_rate -= 1000.0 / (double)inst->conf->interval_ms;
        tune_loop(inst->agent, 0);
    }
    ev_timer_stop(inst->agent->loop, &inst->period);
    first_dequeue(inst);
    if (inst->probe.inflight)
        inflight_add(inst->agent, -1);
    probe_close(&inst->probe);
}

void
inst_free(struct inst *inst)
{
    if (inst == NULL)
        return;
    inst_stop(inst);
    probe_free(&inst->probe);
    free(inst);
}
