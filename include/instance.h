/* instance.h -- one monitored Redis instance: its schedule, its probe link, its health, and the one
 * place its state changes. */
#ifndef SA_INSTANCE_H
#define SA_INSTANCE_H

#include <ev.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conf.h"
#include "health.h"
#include "probe.h"

struct agent;
struct zknode;

/*
 * Runtime of one [instance NAME]. Owner: the agent's instance list; created by inst_new(),
 * released by inst_free() (which stops its timer and frees its probe link).
 * - conf: points into agent->conf; re-pointed by the agent when a reload swaps configs.
 * - period: the probe timer; started by inst_start(), stopped by inst_stop(). On the rounds
 *   (every interval) while up, every downinter after the previous probe while down.
 * - firstq: its place in the agent's queue of first probes (inst_start() to its first probe,
 *   or inst_stop()).
 * - zn: the handle of its ZooKeeper node, or NULL before its first conclusive probe. The node
 *   belongs to the publisher a->zk: inst_publish() registers it, inst_unpublish() gives it up,
 *   and the agent forgets it (sets NULL) when the publisher is shut down or replaced.
 */
struct inst {
    /* what every probe reads or writes, first: a few cache lines at 10,000 instances */
    ev_timer period;
    int down_period; /* the period is downinter (not down: on the rounds) */
    int queued;      /* its first probe waits for a max_inflight slot */
    int role_noperm; /* the last answered ROLE was -NOPERM (warned once) */
    struct agent *agent;
    const struct conf_instance *conf;
    uint64_t probes_ok; /* per-instance counters */
    uint64_t probes_failed;
    uint64_t probes_timeout;
    uint64_t probes_skipped;
    uint64_t probes_agent_errors;
    struct probe probe;
    struct health health;
    /* the rest */
    ev_tstamp phase_at; /* where its probes fall in the interval, from agent->tune.base */
    uint64_t failures[PROBE_CLASSES]; /* failed probes by class (reply_reason_class) */
    TAILQ_ENTRY(inst) link;
    TAILQ_ENTRY(inst) firstq; /* in agent->first_probes while queued */
    ev_tstamp last_eof_probe; /* ev_now() of the last probe triggered by an idle link's EOF */
    struct zknode *zn;
    char logname[CONF_NAME_MAX + 16]; /* "instance NAME", the log component */
};

TAILQ_HEAD(inst_list, inst);

/* Allocates an instance for CONF; it does nothing until inst_start(). */
struct inst *inst_new(struct agent *a, const struct conf_instance *conf);

/* Re-points INST (and its probe) at CONF, an identical section of a reloaded config. */
void inst_set_conf(struct inst *inst, const struct conf_instance *conf);

/*
 * Sizes the probe rounds for the instances of CONF (at start and on every reload): probes fall
 * due together, once per round, instead of each at its own moment.
 */
void inst_plan_rounds(struct agent *a, const struct conf *conf);

/*
 * Prepares the agent's state that instance.c keeps (the queue of first probes and the watcher
 * that starts them, the loop tuning); once, when the agent is made. inst_agent_stop() stops
 * that watcher (shutdown, agent_free).
 */
void inst_agent_init(struct agent *a);
void inst_agent_stop(struct agent *a);

/*
 * Starts probing. The first probe starts at once (or, max_inflight reached, when a slot frees:
 * the agent's queue of first probes), then the regular ones from the first round at least
 * PHASE x interval from now (0 <= PHASE < 1: the agent spreads N instances with it).
 */
void inst_start(struct inst *inst, double phase);

/* Stops probing: timer stopped, in-flight probe cancelled (not counted), link closed. */
void inst_stop(struct inst *inst);

/*
 * Hands INST's state to the publisher a->zk (once it is known: not before the first conclusive
 * probe): its node is registered if need be and rewritten with the current document.
 */
void inst_publish(struct inst *inst);

/* Gives INST's node up (a reload removes INST): the publisher deletes it. */
void inst_unpublish(struct inst *inst);

/* inst_stop() and release of everything INST owns; INST must be unlinked from lists. */
void inst_free(struct inst *inst);

#endif
