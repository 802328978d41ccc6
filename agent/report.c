/* report.c -- what the agent says about itself: stats socket answers, metrics, status documents. */
#include "report.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "maint.h"
#include "reply.h"
#include "selfstat.h"
#include "stats.h"
#include "upgrade.h"
#include "zkpub.h"

static const char help_text[] = "commands:\n"
                                "help       this list\n"
                                "stats      the agent's counters, one line of JSON\n"
                                "instances  every instance's state, one line of JSON\n"
                                "metrics    Prometheus text exposition (format 0.0.4)\n"
                                "maint NAME on [DURATION] [REASON]\n"
                                "           publish NAME as in maintenance (root or the "
                                "agent's user)\n"
                                "maint NAME off\n"
                                "           end it\n"
                                "upgrade    re-execute the installed binary in place, keeping "
                                "the ZooKeeper session (root or the agent's user)\n";

/*
 * SPEC: changes of replicas or latency_us alone cause no write, so a node read back after an
 * upgrade is not rewritten for them (the agent node is: its started_ms and version are news).
 */
const char *const report_volatile_keys[] = {"latency_us", "replicas", NULL};

/* A JSON string for S; bytes that are not valid UTF-8 or are control characters become '?'. */
static json_t *
jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = xstrdup(s);
    for (unsigned char *p = (unsigned char *)copy; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* Appends J, compact, to OUT and releases J. */
static void
dump_json(json_t *j, struct sbuf *out)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        sbuf_adds(out, s);
        free(s);
    }
    json_decref(j);
}

static void
set(json_t *o, const char *key, json_t *v)
{
    json_object_set_new(o, key, v);
}

/* "role", "master", "link", "replicas", in the order of SPEC's status document. */
static void
set_role(json_t *o, const struct role_info *r)
{
    set(o, "role", json_string(health_role_name(r->role)));
    set(o, "master", jstr(r->master));
    set(o, "link", jstr(r->link));
    set(o, "replicas", json_integer(r->replicas));
}

static struct zkpub_stats
zk_stats(struct agent *a)
{
    struct zkpub_stats zs = {0};

    zs.state = "closed";
    if (a->zk != NULL)
        zkpub_get_stats(a->zk, &zs);
    return zs;
}

void
report_stats_json(struct agent *a, struct sbuf *out)
{
    struct selfstat ss;
    struct zkpub_stats zs = zk_stats(a);
    struct stats_server_counters sc = {0};
    struct agent_counters *c = &a->c;
    char sid[32];
    json_t *o = json_object();

    selfstat_read(&ss);
    if (a->stats != NULL)
        stats_get_counters(a->stats, &sc);
    snprintf(sid, sizeof(sid), "0x%" PRIx64, (uint64_t)zs.session_id);
    set(o, "version", json_string(SA_VERSION));
    set(o, "agent", jstr(a->conf->name));
    set(o, "pid", json_integer(getpid()));
    set(o, "uptime_s", json_integer((json_int_t)(ev_now(a->loop) - a->started_at)));
    set(o, "threads", json_integer(ss.threads));
    set(o, "rss_bytes", json_integer(ss.rss_bytes));
    set(o, "rss_peak_bytes", json_integer(ss.rss_peak_bytes));
    set(o, "heap_bytes", json_integer(ss.heap_bytes));
    set(o, "fds", json_integer(ss.fds));
    set(o, "instances", json_integer(a->ninstances));
    set(o, "instances_maint", json_integer(maint_count(a->maint)));
    set(o, "probes_total", json_integer((json_int_t)(c->probes_ok + c->probes_failed)));
    set(o, "probes_ok", json_integer((json_int_t)c->probes_ok));
    set(o, "probes_failed", json_integer((json_int_t)c->probes_failed));
    set(o, "probes_timeout", json_integer((json_int_t)c->probes_timeout));
    set(o, "probes_inflight", json_integer(a->inflight));
    set(o, "max_inflight", json_integer(a->conf->max_inflight));
    set(o, "probes_skipped", json_integer((json_int_t)c->probes_skipped));
    set(o, "probes_agent_errors", json_integer((json_int_t)c->probes_agent_errors));
    set(o, "probes_tilted", json_integer((json_int_t)c->probes_tilted));
    set(o, "state_changes", json_integer((json_int_t)c->state_changes));
    set(o, "zk_state", json_string(zs.state));
    set(o, "zk_session_id", json_string(sid));
    set(o, "zk_writes_ok", json_integer((json_int_t)zs.writes_ok));
    set(o, "zk_writes_failed", json_integer((json_int_t)zs.writes_failed));
    set(o, "zk_pending", json_integer(zs.pending));
    set(o, "zk_watches", json_integer(zs.watches));
    set(o, "zk_reconnects", json_integer((json_int_t)zs.reconnects));
    set(o, "zk_sessions_expired", json_integer((json_int_t)zs.sessions_expired));
    set(o, "zk_conflicts", json_integer((json_int_t)zs.conflicts));
    set(o, "config_reloads", json_integer((json_int_t)c->config_reloads));
    set(o, "config_reload_failures", json_integer((json_int_t)c->config_reload_failures));
    set(o, "upgrades", json_integer((json_int_t)upgrade_count(a->upgrade)));
    set(o, "upgraded_from", json_string(upgrade_from(a->upgrade)));
    set(o, "zk_session_resumed", json_boolean(zs.resumed));
    set(o, "stats_clients", json_integer(sc.clients));
    set(o, "stats_clients_rejected", json_integer((json_int_t)sc.clients_rejected));
    set(o, "stats_lines_too_long", json_integer((json_int_t)sc.lines_too_long));
    dump_json(o, out);
}

/* An instance's `maint` field: null, or {"until_ms","reason"}. */
static json_t *
maint_json(const struct maint_mark *mk)
{
    if (mk == NULL)
        return json_null();
    json_t *o = json_object();
    set(o, "until_ms", json_integer(mk->until_ms));
    set(o, "reason", jstr(mk->reason));
    return o;
}

void
report_instances_json(struct agent *a, struct sbuf *out)
{
    json_t *arr = json_array();
    struct inst *inst;

    TAILQ_FOREACH (inst, &a->instances, link) {
        const struct health *h = &inst->health;
        json_t *o = json_object();
        set(o, "name", jstr(inst->conf->name));
        set(o, "cluster", jstr(inst->conf->cluster));
        set(o, "address", jstr(inst->conf->address));
        set(o, "state", json_string(health_state_name(h->state)));
        set_role(o, &h->role);
        set(o, "since_ms", json_integer(h->since_ms));
        set(o, "last_check_ms", json_integer(h->last_check_ms));
        set(o, "latency_us", json_integer(h->latency_us));
        set(o, "consecutive_ok", json_integer(h->consecutive_ok));
        set(o, "consecutive_fail", json_integer(h->consecutive_fail));
        set(o, "reason", jstr(h->reason));
        set(o, "maint", maint_json(maint_get(a->maint, inst->conf->name)));
        set(o, "published", json_boolean(zkpub_node_published(inst->zn)));
        set(o, "probes_ok", json_integer((json_int_t)inst->probes_ok));
        set(o, "probes_failed", json_integer((json_int_t)inst->probes_failed));
        set(o, "probes_timeout", json_integer((json_int_t)inst->probes_timeout));
        set(o, "probes_skipped", json_integer((json_int_t)inst->probes_skipped));
        set(o, "probes_agent_errors", json_integer((json_int_t)inst->probes_agent_errors));
        json_array_append_new(arr, o);
    }
    dump_json(arr, out);
}

void
report_status_doc(const struct inst *inst, const char *agent_name, struct sbuf *out)
{
    const struct health *h = &inst->health;
    /* A maintenance mark overrides the probed state, its reason and since (the mark's start). */
    const struct maint_mark *mk = maint_get(inst->agent->maint, inst->conf->name);
    json_t *o = json_object();

    set(o, "name", jstr(inst->conf->name));
    set(o, "cluster", jstr(inst->conf->cluster));
    set(o, "address", jstr(inst->conf->address));
    set(o, "agent", jstr(agent_name));
    set(o, "state", json_string(mk ? "maint" : health_state_name(h->state)));
    set_role(o, &h->role);
    set(o, "since_ms", json_integer(mk ? mk->since_ms : h->since_ms));
    set(o, "latency_us", json_integer(h->latency_us));
    set(o, "reason", jstr(mk ? mk->reason : h->reason));
    dump_json(o, out);
}

/* ---- Prometheus text format 0.0.4 ---- */

/* Appends V as a label value: backslash, double quote and newline escaped. */
static void
label_value(struct sbuf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            sbuf_adds(out, "\\\\");
        else if (*v == '"')
            sbuf_adds(out, "\\\"");
        else if (*v == '\n')
            sbuf_adds(out, "\\n");
        else
            sbuf_add(out, v, 1);
    }
}

static void
family(struct sbuf *out, const char *name, const char *type, const char *help)
{
    sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
metric_u(struct sbuf *out, const char *name, const char *type, const char *help, uint64_t v)
{
    family(out, name, type, help);
    sbuf_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void
metric_d(struct sbuf *out, const char *name, const char *type, const char *help, double v)
{
    family(out, name, type, help);
    sbuf_printf(out, "%s %.17g\n", name, v);
}

/* Appends ",KEY=\"VALUE\"", VALUE escaped. */
static void
label(struct sbuf *out, const char *key, const char *v)
{
    sbuf_printf(out, ",%s=\"", key);
    label_value(out, v);
    sbuf_adds(out, "\"");
}

/*
 * Starts a sample of the per-instance family NAME: `NAME{name="...",cluster="..."`, the
 * labels every per-instance series has. The caller adds its own labels, then "} VALUE\n".
 */
static void
inst_sample(struct sbuf *out, const char *name, const struct inst *inst)
{
    sbuf_printf(out, "%s{name=\"", name);
    label_value(out, inst->conf->name);
    sbuf_adds(out, "\",cluster=\"");
    label_value(out, inst->conf->cluster);
    sbuf_adds(out, "\"");
}

/*
 * The per-instance families. Each series is labelled {name,cluster}; what else describes an
 * instance (address, role, and a replica's master and link) is on the one _info series, and
 * sentinel_agent_instance_up keeps address (SPEC's example), so a query joins on name and
 * cluster instead of every series repeating the rest.
 */
static void
instance_metrics(struct agent *a, struct sbuf *out)
{
    struct inst *inst;

    family(out, "sentinel_agent_instance_info", "gauge",
           "Always 1: the instance's address, and its role, master and link as its last "
           "probe while up saw them (unknown and empty otherwise).");
    TAILQ_FOREACH (inst, &a->instances, link) {
        const struct role_info *r = &inst->health.role;
        inst_sample(out, "sentinel_agent_instance_info", inst);
        label(out, "address", inst->conf->address);
        label(out, "role", health_role_name(r->role));
        label(out, "master", r->master);
        label(out, "link", r->link);
        sbuf_adds(out, "} 1\n");
    }
    family(out, "sentinel_agent_instance_up", "gauge",
           "1 if the instance is up, 0 if down or not yet probed.");
    TAILQ_FOREACH (inst, &a->instances, link) {
        inst_sample(out, "sentinel_agent_instance_up", inst);
        label(out, "address", inst->conf->address);
        sbuf_printf(out, "} %d\n", inst->health.state == INST_UP);
    }
    family(out, "sentinel_agent_instance_last_change_timestamp_seconds", "gauge",
           "When the instance's probed state last changed, since unix epoch in seconds; absent "
           "before its first probe decided a state.");
    TAILQ_FOREACH (inst, &a->instances, link) {
        if (inst->health.state == INST_UNKNOWN || inst->health.since_ms <= 0)
            continue;
        inst_sample(out, "sentinel_agent_instance_last_change_timestamp_seconds", inst);
        sbuf_printf(out, "} %.3f\n", (double)inst->health.since_ms / 1e3);
    }
    family(out, "sentinel_agent_instance_latency_seconds", "gauge",
           "Round trip of the instance's last successful probe; absent while it is not up.");
    TAILQ_FOREACH (inst, &a->instances, link) {
        if (inst->health.state != INST_UP)
            continue;
        inst_sample(out, "sentinel_agent_instance_latency_seconds", inst);
        sbuf_printf(out, "} %.6f\n", (double)inst->health.latency_us / 1e6);
    }
    family(out, "sentinel_agent_instance_published", "gauge",
           "1 when ZooKeeper holds the instance's current state.");
    TAILQ_FOREACH (inst, &a->instances, link) {
        inst_sample(out, "sentinel_agent_instance_published", inst);
        sbuf_printf(out, "} %d\n", zkpub_node_published(inst->zn));
    }
    family(out, "sentinel_agent_instance_maint", "gauge",
           "1 while an operator has the instance in maintenance.");
    TAILQ_FOREACH (inst, &a->instances, link) {
        inst_sample(out, "sentinel_agent_instance_maint", inst);
        sbuf_printf(out, "} %d\n", maint_get(a->maint, inst->conf->name) != NULL);
    }
    family(out, "sentinel_agent_instance_probe_failures_total", "counter",
           "Failed probes of the instance by reason class: timeout, refused (connection "
           "refused, no such socket), connection (other connection errors), protocol, auth, "
           "loading, busy, masterdown, error (other error replies). The agent's own faults "
           "are not counted here.");
    TAILQ_FOREACH (inst, &a->instances, link) {
        for (int i = 0; i < PROBE_CLASSES; i++) {
            inst_sample(out, "sentinel_agent_instance_probe_failures_total", inst);
            label(out, "reason", reply_class_name((enum probe_class)i));
            sbuf_printf(out, "} %" PRIu64 "\n", inst->failures[i]);
        }
    }
}

void
report_metrics(struct agent *a, struct sbuf *out)
{
    static const char *const zk_states[] = {"connected", "connecting", "expired", "closed"};
    struct selfstat ss;
    struct zkpub_stats zs = zk_stats(a);
    struct agent_counters *c = &a->c;

    selfstat_read(&ss);
    /* A reading the kernel would not give (-1) is left out rather than shown as a value. */
    if (ss.cpu_seconds >= 0)
        metric_d(out, "process_cpu_seconds_total", "counter",
                 "Total user and system CPU time spent in seconds.", ss.cpu_seconds);
    if (ss.rss_bytes >= 0)
        metric_u(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                 (uint64_t)ss.rss_bytes);
    if (ss.fds >= 0)
        metric_u(out, "process_open_fds", "gauge", "Number of open file descriptors.",
                 (uint64_t)ss.fds);
    if (ss.start_time >= 0)
        metric_d(out, "process_start_time_seconds", "gauge",
                 "Start time of the process since unix epoch in seconds.", ss.start_time);
    if (ss.threads >= 0)
        metric_u(out, "process_threads", "gauge", "Number of OS threads in the process.",
                 (uint64_t)ss.threads);
    if (ss.heap_bytes >= 0)
        metric_u(out, "sentinel_agent_heap_bytes", "gauge", "Heap bytes in use (malloc).",
                 (uint64_t)ss.heap_bytes);

    family(out, "sentinel_agent_build_info", "gauge", "Build information.");
    sbuf_printf(out, "sentinel_agent_build_info{version=\"%s\"} 1\n", SA_VERSION);
    metric_u(out, "sentinel_agent_instances", "gauge", "Configured Redis instances.",
             (uint64_t)a->ninstances);
    instance_metrics(a, out);

    family(out, "sentinel_agent_probes_total", "counter",
           "Completed probes by result: ok, error (failed other than by timeout), timeout; "
           "the three do not overlap and sum to every completed probe.");
    sbuf_printf(out, "sentinel_agent_probes_total{result=\"ok\"} %" PRIu64 "\n", c->probes_ok);
    sbuf_printf(out, "sentinel_agent_probes_total{result=\"error\"} %" PRIu64 "\n",
                c->probes_failed - c->probes_timeout);
    sbuf_printf(out, "sentinel_agent_probes_total{result=\"timeout\"} %" PRIu64 "\n",
                c->probes_timeout);
    metric_u(out, "sentinel_agent_probes_skipped_total", "counter",
             "Due probes not started: previous still in flight or max_inflight reached.",
             c->probes_skipped);
    metric_u(out, "sentinel_agent_probes_agent_errors_total", "counter",
             "Probes the agent itself could not run (no fd, no memory): no verdict, no state "
             "change.",
             c->probes_agent_errors);
    metric_u(out, "sentinel_agent_probes_inflight", "gauge", "Probes in flight now.",
             (uint64_t)a->inflight);
    metric_u(out, "sentinel_agent_probes_tilted_total", "counter",
             "Timeouts ignored because the event loop ran late.", c->probes_tilted);
    metric_u(out, "sentinel_agent_state_changes_total", "counter",
             "Instance state or role changes.", c->state_changes);

    family(out, "sentinel_agent_probe_duration_seconds", "histogram",
           "Round trip of successful probes.");
    for (int i = 0; i < AGENT_LATENCY_BUCKETS; i++)
        sbuf_printf(out, "sentinel_agent_probe_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                    agent_latency_bounds_us[i] / 1e6, c->latency_bucket[i]);
    sbuf_printf(out, "sentinel_agent_probe_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                c->latency_count);
    sbuf_printf(out, "sentinel_agent_probe_duration_seconds_sum %.6f\n", c->latency_sum_us / 1e6);
    sbuf_printf(out, "sentinel_agent_probe_duration_seconds_count %" PRIu64 "\n", c->latency_count);

    family(out, "sentinel_agent_zk_session_state", "gauge", "ZooKeeper session state (1 for it).");
    for (size_t i = 0; i < ARRAY_LEN(zk_states); i++)
        sbuf_printf(out, "sentinel_agent_zk_session_state{state=\"%s\"} %d\n", zk_states[i],
                    strcmp(zs.state, zk_states[i]) == 0);
    family(out, "sentinel_agent_zk_writes_total", "counter", "ZooKeeper writes by result.");
    sbuf_printf(out, "sentinel_agent_zk_writes_total{result=\"ok\"} %" PRIu64 "\n", zs.writes_ok);
    sbuf_printf(out, "sentinel_agent_zk_writes_total{result=\"error\"} %" PRIu64 "\n",
                zs.writes_failed);
    metric_u(out, "sentinel_agent_zk_pending", "gauge", "ZooKeeper requests in flight.",
             (uint64_t)zs.pending);
    metric_u(out, "sentinel_agent_zk_watches", "gauge", "ZooKeeper watches registered.",
             (uint64_t)zs.watches);
    metric_u(out, "sentinel_agent_zk_reconnects_total", "counter",
             "ZooKeeper connections re-established after a loss.", zs.reconnects);
    metric_u(out, "sentinel_agent_zk_sessions_expired_total", "counter",
             "ZooKeeper sessions that expired.", zs.sessions_expired);
    metric_u(out, "sentinel_agent_zk_conflicts_total", "counter",
             "Nodes found owned by another agent.", zs.conflicts);

    family(out, "sentinel_agent_config_reloads_total", "counter", "Config reloads by result.");
    sbuf_printf(out, "sentinel_agent_config_reloads_total{result=\"ok\"} %" PRIu64 "\n",
                c->config_reloads);
    sbuf_printf(out, "sentinel_agent_config_reloads_total{result=\"error\"} %" PRIu64 "\n",
                c->config_reload_failures);
}

void
report_answer(void *ud, const struct stats_peer *peer, const char *line, struct sbuf *out)
{
    struct agent *a = ud;
    char cmd[STATS_LINE_MAX + 1];
    size_t n;

    /* Surrounding blanks are not part of the command ("stats " is stats). */
    while (*line == ' ' || *line == '\t')
        line++;
    util_strlcpy(cmd, line, sizeof(cmd));
    n = strlen(cmd);
    while (n > 0 && (cmd[n - 1] == ' ' || cmd[n - 1] == '\t'))
        cmd[--n] = '\0';
    if (strcmp(cmd, "help") == 0) {
        sbuf_adds(out, help_text);
        sbuf_adds(out, "\n");
    } else if (strcmp(cmd, "stats") == 0) {
        report_stats_json(a, out);
        sbuf_adds(out, "\n\n");
    } else if (strcmp(cmd, "instances") == 0) {
        report_instances_json(a, out);
        sbuf_adds(out, "\n\n");
    } else if (strcmp(cmd, "metrics") == 0) {
        report_metrics(a, out);
        sbuf_adds(out, "\n");
    } else if (strncmp(cmd, "maint", 5) == 0 && (cmd[5] == ' ' || cmd[5] == '\0')) {
        char err[256];
        json_t *o = json_object();
        if (agent_maint(a, peer, cmd + 5, err, sizeof(err)) == 0)
            set(o, "ok", json_true());
        else
            set(o, "error", jstr(err));
        dump_json(o, out);
        sbuf_adds(out, "\n\n");
    } else if (strcmp(cmd, "upgrade") == 0) {
        upgrade_command(a->upgrade, peer, out);
    } else {
        char msg[128];
        snprintf(msg, sizeof(msg), "unknown command: %.100s", cmd);
        json_t *o = json_object();
        set(o, "error", jstr(msg));
        dump_json(o, out);
        sbuf_adds(out, "\n\n");
    }
}
