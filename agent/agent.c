/* agent.c -- the agent context: starting, reloading and stopping everything it owns. */
#include "agent.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "httpmetrics.h"
#include "log.h"
#include "maint.h"
#include "notify.h"
#include "replyobj.h"
#include "report.h"
#include "stats.h"
#include "upgrade.h"
#include "util.h"
#include "zkpub.h"

const double agent_latency_bounds_us[AGENT_LATENCY_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
};

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents);
static void maint_ended(void *ud, const char *name);
static void shutdown_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents);

struct agent *
agent_new(struct ev_loop *loop, struct conf *conf)
{
    struct agent *a = xcalloc(1, sizeof(*a));

    a->loop = loop;
    a->conf = conf;
    TAILQ_INIT(&a->instances);
    TAILQ_INIT(&a->zk_retired);
    inst_agent_init(a);
    ev_signal_init(&a->sigterm, signal_cb, SIGTERM);
    ev_signal_init(&a->sigint, signal_cb, SIGINT);
    ev_signal_init(&a->sighup, signal_cb, SIGHUP);
    a->sigterm.data = a->sigint.data = a->sighup.data = a;
    ev_init(&a->shutdown_timer, shutdown_timeout_cb);
    a->shutdown_timer.data = a;
    ev_set_userdata(loop, a);
    return a;
}

/*
 * The soft limit the agent can raise itself to: the hard one, or when that is unlimited, the
 * kernel's ceiling for one process (fs.nr_open; setrlimit refuses more).
 */
static rlim_t
nofile_ceiling(rlim_t hard)
{
    unsigned long long nr = 1048576;
    FILE *f;

    if (hard != RLIM_INFINITY)
        return hard;
    f = fopen("/proc/sys/fs/nr_open", "re");
    if (f != NULL) {
        if (fscanf(f, "%llu", &nr) != 1)
            nr = 1048576;
        fclose(f);
    }
    return (rlim_t)nr;
}

int
agent_fit_fds(const struct conf *conf, char *err, size_t errlen)
{
    struct rlimit rl;
    unsigned long long need = (unsigned long long)conf->ninstances + AGENT_FDS_RESERVED;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0; /* nothing known to check against */
    rlim_t ceiling = nofile_ceiling(rl.rlim_max);
    if (rl.rlim_cur < ceiling) {
        struct rlimit raised = {ceiling, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = ceiling;
    }
    if (rl.rlim_max != RLIM_INFINITY && need > (unsigned long long)rl.rlim_max) {
        snprintf(err, errlen,
                 "%d instances need %llu open files, more than the hard limit of %llu "
                 "(RLIMIT_NOFILE)",
                 conf->ninstances, need, (unsigned long long)rl.rlim_max);
        return -1;
    }
    return 0;
}

/* First probe of instance I of N: spread evenly over the interval, as a fraction of it. */
static double
spread_phase(int i, int n)
{
    return n > 0 ? (double)i / (double)n : 0.;
}

/* The metrics HTTP server's body: the same exposition as the stats socket's `metrics`. */
static void
metrics_body(void *ud, struct sbuf *out)
{
    report_metrics(ud, out);
}

static struct inst *
add_instance(struct agent *a, const struct conf_instance *ci)
{
    struct inst *inst = inst_new(a, ci);

    TAILQ_INSERT_TAIL(&a->instances, inst, link);
    a->ninstances++;
    return inst;
}

static void
remove_instance(struct agent *a, struct inst *inst)
{
    inst_unpublish(inst);
    TAILQ_REMOVE(&a->instances, inst, link);
    a->ninstances--;
    inst_free(inst);
}

/* ---- the publisher ---- */

/* The [zookeeper] settings and agent name of CONF, as the publisher takes them (borrowed). */
static void
zk_settings(const struct conf *conf, struct zkpub_settings *s)
{
    s->hosts = conf->zk_hosts;
    s->root = conf->zk_root;
    s->auth = conf->zk_auth;
    s->agent_name = conf->name;
    s->session_timeout_ms = conf->zk_session_timeout_ms;
}

/*
 * The agent node's zkpub_render_fn: {"agent","pid","version","started_ms","instances"},
 * rendered whenever the publisher writes it (at its creation, on a new session, and after
 * agent_count_changed() said the instance count moved).
 */
static void
agent_doc(void *ud, struct sbuf *out)
{
    struct agent *a = ud;
    json_t *o = json_pack("{s:s, s:I, s:s, s:I, s:i}", "agent", a->conf->name, "pid",
                          (json_int_t)getpid(), "version", SA_VERSION, "started_ms",
                          (json_int_t)a->started_ms, "instances", a->ninstances);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

    if (s)
        sbuf_adds(out, s);
    free(s);
    json_decref(o);
    a->zk_agent_count = a->ninstances;
}

/* Has the agent node rewritten if its document no longer says how many instances there are. */
static void
agent_count_changed(struct agent *a)
{
    if (a->zk != NULL && a->zk_agent_count != a->ninstances)
        zkpub_node_changed(a->zk, a->zk_agent_node);
}

/*
 * Makes the publisher of the running settings and hands it what there is to publish: the
 * agent node, the instances' containers, and the state of every instance already probed (a
 * publisher made again by a reload takes them over).
 */
static void
publisher_start(struct agent *a)
{
    struct zkpub_settings s;
    struct inst *inst;

    zk_settings(a->conf, &s);
    a->zk = zkpub_new_resumed(a->loop, &s, upgrade_session(a->upgrade));
    zkpub_set_volatile_keys(a->zk, report_volatile_keys);
    a->zk_agent_node = zkpub_node_new(a->zk, "agents", a->conf->name, agent_doc, a);
    zkpub_node_changed(a->zk, a->zk_agent_node);
    TAILQ_FOREACH (inst, &a->instances, link)
        zkpub_add_dir(a->zk, inst->conf->cluster);
    TAILQ_FOREACH (inst, &a->instances, link)
        inst_publish(inst);
}

/* The publisher is being shut down or replaced: the handles of its nodes are no longer ours. */
static void
publisher_forget(struct agent *a)
{
    struct inst *inst;

    TAILQ_FOREACH (inst, &a->instances, link)
        inst->zn = NULL;
    a->zk_agent_node = NULL;
}

int
agent_start(struct agent *a)
{
    char err[256];
    struct conf_instance *ci;
    int i = 0;

    a->started_ms = util_wall_ms();
    a->started_at = ev_now(a->loop);
    srandom((unsigned)getpid() ^ (unsigned)a->started_ms);
    a->maint = maint_new(a->loop, a->conf->state_dir, maint_ended, a);
    maint_load(a->maint, a->conf);
    /* After an upgrade: the listening socket the previous image handed over, never missing. */
    a->stats = upgrade_stats_adopt(a->upgrade, report_answer, a);
    if (a->stats == NULL)
        a->stats = stats_listen(a->loop, a->conf->stats_socket, a->conf->stats_socket_mode,
                                a->conf->stats_socket_gid, report_answer, a, err, sizeof(err));
    if (a->stats == NULL) {
        log_error("stats", "%s", err);
        return -1;
    }
    if (a->conf->metrics_listen != NULL) {
        a->metrics =
            httpmetrics_listen(a->loop, &a->conf->metrics_addr, metrics_body, a, err, sizeof(err));
        if (a->metrics == NULL) {
            log_error("metrics", "%s", err);
            return -1; /* agent_free() closes the stats socket */
        }
    }
    ev_signal_start(a->loop, &a->sigterm);
    ev_signal_start(a->loop, &a->sigint);
    ev_signal_start(a->loop, &a->sighup);

    a->tune.base = ev_now(a->loop);
    inst_plan_rounds(a, a->conf);
    TAILQ_FOREACH (ci, &a->conf->instances, link) {
        struct inst *inst = add_instance(a, ci);
        /* After an upgrade: the health the previous image knew (its first probe is at once). */
        upgrade_restore(a->upgrade, inst);
        inst_start(inst, spread_phase(i++, a->conf->ninstances));
    }
    publisher_start(a);
    upgrade_started(a->upgrade);
    notify_start(a);
    notify_ready(a);
    log_info("agent", "sentinel-agent %s started as %s: %d instance%s, stats socket %s", SA_VERSION,
             a->conf->name, a->ninstances, a->ninstances == 1 ? "" : "s", a->conf->stats_socket);
    return 0;
}

/* ---- reload ---- */

static int
zk_settings_changed(const struct conf *o, const struct conf *n)
{
    struct zkpub_settings os, ns;

    zk_settings(o, &os);
    zk_settings(n, &ns);
    return !zkpub_settings_equal(&os, &ns);
}

static struct inst *
find_inst(struct agent *a, const char *name)
{
    struct inst *inst;

    TAILQ_FOREACH (inst, &a->instances, link)
        if (strcmp(inst->conf->name, name) == 0)
            return inst;
    return NULL;
}

/* Moves the stats socket when its path changed, or fixes its mode. Keeps the old on failure. */
static void
reload_stats_socket(struct agent *a, const struct conf *o, const struct conf *n)
{
    char err[256];

    if (strcmp(o->stats_socket, n->stats_socket) == 0) {
        if (o->stats_socket_mode != n->stats_socket_mode &&
            chmod(n->stats_socket, n->stats_socket_mode) < 0)
            log_warn("stats", "cannot change the mode of %s", n->stats_socket);
        /* No group any more: back to the process's own. */
        gid_t g = n->stats_socket_gid != (gid_t)-1 ? n->stats_socket_gid : getegid();
        if (o->stats_socket_gid != n->stats_socket_gid && chown(n->stats_socket, (uid_t)-1, g) < 0)
            log_warn("stats", "cannot give %s to group %u: %s", n->stats_socket, (unsigned)g,
                     strerror(errno));
        return;
    }
    struct stats_server *s = stats_listen(a->loop, n->stats_socket, n->stats_socket_mode,
                                          n->stats_socket_gid, report_answer, a, err, sizeof(err));
    if (s == NULL) {
        log_error("stats", "%s; still listening on %s", err, o->stats_socket);
        return;
    }
    stats_close(a->stats);
    a->stats = s;
}

/* Moves the metrics listener when metrics_listen changed. Keeps the old one on failure. */
static void
reload_metrics(struct agent *a, const struct conf *o, const struct conf *n)
{
    char err[256];
    struct httpmetrics *h = NULL;

    if (n->metrics_listen != NULL && httpmetrics_is_on(a->metrics, &n->metrics_addr))
        return;
    if (n->metrics_listen != NULL) {
        h = httpmetrics_listen(a->loop, &n->metrics_addr, metrics_body, a, err, sizeof(err));
        if (h == NULL) {
            log_error("metrics", "%s; %s %s", err,
                      a->metrics ? "still serving" : "metrics stay off",
                      a->metrics ? o->metrics_listen : "");
            return;
        }
    }
    httpmetrics_close(a->metrics);
    a->metrics = h;
}

/* The marks' maint_ended_fn on a reload: the instance NAME is gone, and its mark with it. */
static void
maint_dropped(void *ud, const char *name)
{
    char comp[CONF_NAME_MAX + 16];

    (void)ud;
    snprintf(comp, sizeof(comp), "instance %s", name);
    log_info(comp, "maintenance mark dropped: the instance was removed");
}

/*
 * Applies a new valid config as a diff: instances that are gone stop and lose their node,
 * changed ones restart, new ones start, unchanged ones keep their link, state and node.
 * Changed ZooKeeper settings (or agent name) mean a new session.
 */
static void
apply_conf(struct agent *a, struct conf *nc)
{
    struct conf *oc = a->conf;
    struct inst *inst, *next;
    struct conf_instance *ci;
    int added = 0, removed = 0, changed = 0, i = 0;
    int zk_changed = zk_settings_changed(oc, nc);

    if (zk_changed && a->zk != NULL) {
        log_info("zookeeper", "settings changed: opening a new session");
        publisher_forget(a);
        zkpub_retire(a->zk, &a->zk_retired);
        a->zk = NULL;
    }
    for (inst = TAILQ_FIRST(&a->instances); inst != NULL; inst = next) {
        next = TAILQ_NEXT(inst, link);
        const struct conf_instance *nci = conf_find_instance(nc, inst->conf->name);
        if (nci != NULL && conf_instance_equal(nci, inst->conf)) {
            inst_set_conf(inst, nci);
            continue;
        }
        if (nci != NULL)
            changed++;
        else
            removed++;
        log_info(inst->logname, "%s by reload", nci ? "changed" : "removed");
        remove_instance(a, inst);
    }
    reload_stats_socket(a, oc, nc);
    reload_metrics(a, oc, nc);
    if (!a->log_level_forced)
        log_set_level(nc->log_level);
    a->conf = nc;
    conf_free(oc);
    if (a->maint != NULL) {
        maint_set_dir(a->maint, nc->state_dir);
        maint_prune(a->maint, nc, maint_dropped, a);
    }
    inst_plan_rounds(a, nc);

    TAILQ_FOREACH (ci, &nc->instances, link) {
        i++;
        if (find_inst(a, ci->name) != NULL)
            continue;
        inst = add_instance(a, ci);
        inst_start(inst, spread_phase(i, nc->ninstances));
        added++;
    }
    changed = changed < added ? changed : added;
    if (a->zk == NULL)
        publisher_start(a);
    else
        agent_count_changed(a);
    log_info("agent", "configuration reloaded: %d instances (%d added, %d removed, %d changed)",
             a->ninstances, added - changed, removed, changed);
}

void
agent_reload(struct agent *a)
{
    struct conf_errors errs = {0};
    struct conf *nc;
    char err[256];

    if (a->stopping)
        return;
    notify_reloading();
    nc = conf_load(a->conf->path, &errs);
    if (nc == NULL) {
        for (size_t i = 0; i < errs.n; i++)
            log_error("config", "%s", errs.msg[i]);
        log_error("config", "reload refused: %zu error%s, keeping the running configuration",
                  errs.n, errs.n == 1 ? "" : "s");
        a->c.config_reload_failures++;
    } else if (agent_fit_fds(nc, err, sizeof(err)) < 0) {
        /* the limit may have moved since the start (prlimit): checked, and raised, again */
        log_error("config", "%s: error: %s", nc->path, err);
        log_error("config", "reload refused: 1 error, keeping the running configuration");
        a->c.config_reload_failures++;
        conf_free(nc);
    } else {
        apply_conf(a, nc);
        a->c.config_reloads++;
    }
    conf_errors_free(&errs);
    notify_ready(a);
}

/* ---- maintenance ---- */

/* The marks' maint_ended_fn: NAME's mark reached its end time. */
static void
maint_ended(void *ud, const char *name)
{
    struct agent *a = ud;
    struct inst *inst = find_inst(a, name);

    if (inst == NULL)
        return;
    log_info(inst->logname, "maintenance ended");
    if (!a->stopping) /* the publisher is shutting down: nothing more is written */
        inst_publish(inst);
}

int
agent_peer_may_change(const struct stats_peer *peer)
{
    return peer != NULL && peer->known && (peer->uid == 0 || peer->uid == geteuid());
}

int
agent_maint(struct agent *a, const struct stats_peer *peer, const char *args, char *err,
            size_t errlen)
{
    struct maint_cmd cmd;
    struct inst *inst;
    const struct maint_mark *mk;
    char until[64] = "no end";

    if (!agent_peer_may_change(peer)) {
        snprintf(err, errlen, "permission denied");
        return -1;
    }
    if (maint_parse_cmd(args, &cmd, err, errlen) < 0)
        return -1;
    if ((inst = find_inst(a, cmd.name)) == NULL) {
        snprintf(err, errlen, "no such instance: %s", cmd.name);
        return -1;
    }
    if (a->stopping || a->maint == NULL) {
        snprintf(err, errlen, "the agent is stopping");
        return -1;
    }
    if (!cmd.on) {
        if (maint_clear(a->maint, cmd.name)) {
            log_info(inst->logname, "maintenance off by uid %u", (unsigned)peer->uid);
            inst_publish(inst);
        }
        return 0;
    }
    mk = maint_set(a->maint, cmd.name, cmd.duration_ms, cmd.reason, util_wall_ms());
    if (mk->until_ms > 0) {
        time_t t = (time_t)(mk->until_ms / 1000);
        struct tm tm;
        strftime(until, sizeof(until), "until %Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    }
    log_info(inst->logname, "maintenance on (%s, %s) by uid %u", mk->reason, until,
             (unsigned)peer->uid);
    inst_publish(inst);
    return 0;
}

/* ---- shutdown ---- */

/*
 * The one release point of the agent's own watchers and its two servers (the stats socket
 * file is removed here). Idempotent: the graceful shutdown calls it, and agent_free() again.
 */
static void
close_servers(struct agent *a)
{
    ev_timer_stop(a->loop, &a->shutdown_timer);
    ev_signal_stop(a->loop, &a->sigterm);
    ev_signal_stop(a->loop, &a->sigint);
    ev_signal_stop(a->loop, &a->sighup);
    notify_stop(a);
    httpmetrics_close(a->metrics);
    a->metrics = NULL;
    stats_close(a->stats);
    a->stats = NULL;
}

static void
shutdown_finish(void *arg)
{
    struct agent *a = arg;

    close_servers(a);
    log_info("agent", "stopped");
    ev_break(a->loop, EVBREAK_ALL);
}

static void
shutdown_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent *a = w->data;

    (void)loop;
    (void)revents;
    log_warn("agent", "shutdown_timeout reached: exiting without waiting for ZooKeeper");
    shutdown_finish(a);
}

void
agent_stop(struct agent *a)
{
    struct inst *inst;

    if (a->stopping)
        return;
    a->stopping = 1;
    log_info("agent", "stopping");
    upgrade_cancel(a->upgrade);
    notify_stopping(a);
    TAILQ_FOREACH (inst, &a->instances, link)
        inst_stop(inst);
    inst_agent_stop(a);
    ev_timer_set(&a->shutdown_timer, (double)a->conf->shutdown_timeout_ms / 1000.0, 0.);
    ev_timer_start(a->loop, &a->shutdown_timer);
    if (a->zk != NULL) {
        publisher_forget(a);
        zkpub_shutdown(a->zk, (double)a->conf->shutdown_timeout_ms / 1000.0, shutdown_finish, a);
    } else
        shutdown_finish(a);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct agent *a = w->data;

    (void)loop;
    (void)revents;
    if (w->signum == SIGHUP) {
        log_info("agent", "SIGHUP: reloading %s", a->conf->path);
        agent_reload(a);
        return;
    }
    agent_stop(a);
}

/*
 * Releases everything in the reverse order of agent_start()'s creation (chrony's way): the
 * notify timers, the publisher (then the ones reloads retired, waiting for their close), the
 * instances from the last, the signal and shutdown watchers, the metrics server, the stats
 * server, the config. Each step is a no-op for what a graceful shutdown or a failed start
 * already released or never made.
 */
void
agent_free(struct agent *a)
{
    struct zkpub *z;
    struct inst *inst;

    if (a == NULL)
        return;
    upgrade_free(a->upgrade);
    a->upgrade = NULL;
    notify_stop(a);
    publisher_forget(a);
    zkpub_free(a->zk);
    a->zk = NULL;
    while ((z = TAILQ_FIRST(&a->zk_retired)) != NULL)
        zkpub_free(z); /* waits for its close; takes itself off the list */
    while ((inst = TAILQ_LAST(&a->instances, inst_list)) != NULL) {
        TAILQ_REMOVE(&a->instances, inst, link);
        inst_free(inst);
    }
    replyobj_drain(); /* the reply objects the probes' links kept for reuse */
    inst_agent_stop(a);
    ev_timer_stop(a->loop, &a->shutdown_timer);
    ev_signal_stop(a->loop, &a->sighup);
    ev_signal_stop(a->loop, &a->sigint);
    ev_signal_stop(a->loop, &a->sigterm);
    httpmetrics_close(a->metrics);
    a->metrics = NULL;
    stats_close(a->stats);
    a->stats = NULL;
    maint_free(a->maint);
    conf_free(a->conf);
    free(a);
}
