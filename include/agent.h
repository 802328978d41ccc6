/* agent.h -- the agent context: configuration, instances, counters, and its lifecycle. */
#ifndef SA_AGENT_H
#define SA_AGENT_H

#include <ev.h>
#include <stdint.h>

#include "conf.h"
#include "instance.h"
#include "zkpub.h"

/* Upper bounds of the probe latency histogram, in microseconds (Prometheus buckets). */
#define AGENT_LATENCY_BUCKETS 12
extern const double agent_latency_bounds_us[AGENT_LATENCY_BUCKETS];

/* Counters of the whole agent; monotonic unless noted. */
struct agent_counters {
    uint64_t probes_ok;
    uint64_t probes_failed;
    uint64_t probes_timeout; /* part of probes_failed */
    uint64_t probes_skipped;
    uint64_t probes_tilted;       /* timeouts ignored because the loop ran late */
    uint64_t probes_agent_errors; /* probes the agent could not run (EMFILE, ENOMEM...) */
    uint64_t state_changes;
    uint64_t config_reloads;
    uint64_t config_reload_failures;
    uint64_t latency_count;
    double latency_sum_us;
    uint64_t latency_bucket[AGENT_LATENCY_BUCKETS]; /* cumulative per bound, Prometheus-style */
};

struct stats_server;
struct stats_peer;
struct httpmetrics;
struct maint;

/*
 * The one agent context. Owner: main(); created by agent_new(), released by agent_free().
 * It owns conf, every inst in instances, the maintenance marks, the stats server, the metrics
 * HTTP server, the ZooKeeper publisher and its signal and shutdown watchers. Reached from callbacks
 * through inst->agent or ev_userdata(loop).
 */
struct agent {
    struct ev_loop *loop;
    struct conf *conf;
    struct inst_list instances;
    int ninstances;
    int inflight;                  /* probes in flight, <= conf->max_inflight */
    struct inst_list first_probes; /* instances waiting for a slot for their first probe */
    int draining;                  /* instance.c is starting first probes (no re-entry) */
    ev_prepare first_kick;         /* instance.c: starts queued first probes once the loop runs */
    ev_tstamp agent_error_logged;  /* ev_now() of the last warn about the agent's faults */
    struct {
        double probe_rate; /* probes per second of the started instances */
        ev_tstamp collect; /* libev collect interval in force; -1 before the first start */
        int io_on;         /* the I/O collect interval is on (1), off (0), unknown (-1) */
        ev_tstamp round;   /* width of a probe round (inst_plan_rounds) */
        ev_tstamp base;    /* ev_now() at the agent's start: the rounds' origin */
    } tune;                /* instance.c's loop batching (tune_loop) and probe rounds */
    struct agent_counters c;
    int64_t started_ms;   /* wall clock at start */
    ev_tstamp started_at; /* ev_now() at start */
    struct maint *maint;  /* the maintenance marks (maint.c), from agent_start to agent_free */
    struct stats_server *stats;
    struct httpmetrics *metrics;  /* NULL unless metrics_listen is set */
    struct zkpub *zk;             /* the publisher of the running settings */
    struct zknode *zk_agent_node; /* ROOT/agents/NAME in zk; agent.c renders its document */
    int zk_agent_count;           /* the instance count its document last said */
    struct zkpub_list zk_retired; /* publishers of replaced settings, closing (zkpub_retire) */
    struct upgrade *upgrade;      /* SIGUSR2 / `upgrade` (upgrade.c); made by main() */
    ev_signal sigterm;
    ev_signal sigint;
    ev_signal sighup;
    ev_timer shutdown_timer;
    ev_timer watchdog; /* notify.c: WATCHDOG=1 pings, while the loop runs */
    ev_timer status;   /* notify.c: STATUS= refresh */
    char last_status[160];
    int log_level_forced; /* -l given: reloads keep it */
    int stopping;
    int exit_code;
    int tilt_logged;
};

/* Open files the agent keeps for itself beside one link per instance (SPEC: N + 64). */
#define AGENT_FDS_RESERVED 64

/*
 * Raises the soft RLIMIT_NOFILE to the hard one and checks that CONF's instances fit:
 * instances + AGENT_FDS_RESERVED <= the hard limit. Returns 0, or -1 with the reason in ERR
 * (it names the limit). At start (and -t) and at every reload.
 */
int agent_fit_fds(const struct conf *conf, char *err, size_t errlen);

/* Creates the agent for CONF (taking ownership of it) on LOOP. */
struct agent *agent_new(struct ev_loop *loop, struct conf *conf);

/* Opens the stats socket, starts ZooKeeper and every instance. Returns 0, or -1 (logged). */
int agent_start(struct agent *a);

/* Begins a graceful shutdown (as SIGTERM does). */
void agent_stop(struct agent *a);

/* Releases everything the agent owns; the loop must have returned. */
void agent_free(struct agent *a);

/* Re-reads the config file and applies it as a diff (SIGHUP). */
void agent_reload(struct agent *a);

/*
 * Returns 1 if PEER may use the stats socket's commands that change things (`maint`,
 * `upgrade`): root or the agent's own user (SPEC "Stats socket"); 0 otherwise.
 */
int agent_peer_may_change(const struct stats_peer *peer);

/*
 * The stats socket's `maint ARGS` from PEER: puts an instance in maintenance or ends it, and
 * publishes the change. Only root or the agent's own user may. Returns 0, or -1 with the
 * answer's error in ERR.
 */
int agent_maint(struct agent *a, const struct stats_peer *peer, const char *args, char *err,
                size_t errlen);

#endif
