/* cluster.c -- `sentinel-agentctl cluster`: reads every agent's status documents from ZooKeeper
 * (synchronous calls of the mt client) and prints them once, or again on every change. */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include "table.h"
#include "util.h"

#define CLUSTER_DOC_MAX    65536 /* a status document is a few hundred bytes */
#define CLUSTER_RETRY_MS   1000  /* --watch: pause between reads while ZooKeeper fails */
#define CLUSTER_SETTLE_MS  50    /* --watch: changes this close together make one view */
#define CLUSTER_AGENTS_DIR "agents"

/* One run of the command: the handle, and the pipe its watcher thread wakes us through. */
struct view {
    const struct cluster_opts *o;
    zhandle_t *zh;
    int wake[2]; /* written by on_event (the client's completion thread), read by us */
    char *last;  /* the last view printed (compact JSON), for --watch */
};

/*
 * The one watcher, for session events and every node's watch alike (always this function
 * with this context, so the client stores one watch per path however often it is re-armed).
 * Runs on the client's completion thread: it only wakes the main thread.
 */
static void
on_event(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct view *v = ctx;
    char c = 'w';
    ssize_t n;

    (void)zh;
    (void)type;
    (void)state;
    (void)path;
    n = write(v->wake[1], &c, 1); /* a full pipe already holds a wake-up */
    (void)n;
}

/* The client's own log lines: a command-line tool keeps stderr for its own words. */
static void
drop_log(const char *message)
{
    (void)message;
}

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Empties the wake-up pipe. */
static void
drain(struct view *v)
{
    char buf[256];

    while (read(v->wake[0], buf, sizeof(buf)) > 0)
        ;
}

/*
 * Creates the handle. The client's two threads inherit our signal mask: SIGINT, SIGTERM,
 * SIGHUP and SIGPIPE are blocked while they start, so they never take one of ours.
 * Returns 0 or -1.
 */
static int
zk_open(struct view *v)
{
    sigset_t block, old;

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    v->zh = zookeeper_init2(v->o->hosts, on_event, (int)v->o->session_timeout_ms, NULL, v,
                            ZOO_NO_LOG_CLIENTENV, drop_log);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (v->zh == NULL)
        return -1;
    zoo_set_servers_resolution_delay(v->zh, -1); /* resolve the hosts once, not per loop */
    if (v->o->auth != NULL)
        zoo_add_auth(v->zh, "digest", v->o->auth, (int)strlen(v->o->auth), NULL, NULL);
    return 0;
}

/* Waits until the handle has a session, at most CLUSTER_CONNECT_MS. Returns 0 or -1. */
static int
zk_wait_connected(struct view *v)
{
    int64_t deadline = mono_ms() + CLUSTER_CONNECT_MS;

    for (;;) {
        int state = zoo_state(v->zh);
        int64_t left = deadline - mono_ms();
        struct pollfd p = {.fd = v->wake[0], .events = POLLIN};

        if (state == ZOO_CONNECTED_STATE)
            return 0;
        if (state == ZOO_AUTH_FAILED_STATE || left <= 0)
            return -1;
        /* Session events wake us; the short cap covers a state change that raced the poll. */
        if (poll(&p, 1, left < 100 ? (int)left : 100) > 0)
            drain(v);
    }
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Lists PATH's children into SV, sorted, arming a children watch with --watch. A missing
 * node is watched for its creation instead (a children watch cannot be set on it); if it
 * appeared meanwhile, we wake ourselves to read again. Returns a ZooKeeper code.
 */
static int
list_children(struct view *v, const char *path, struct String_vector *sv)
{
    int rc;

    if (!v->o->watch) {
        rc = zoo_get_children(v->zh, path, 0, sv);
    } else {
        rc = zoo_wget_children(v->zh, path, on_event, v, sv);
        if (rc == ZNONODE) {
            struct Stat st;
            if (zoo_wexists(v->zh, path, on_event, v, &st) == ZOK)
                on_event(v->zh, ZOO_CREATED_EVENT, 0, path, v);
        }
    }
    if (rc == ZOK && sv->count > 1)
        qsort(sv->data, (size_t)sv->count, sizeof(char *), cmp_str);
    return rc;
}

/*
 * Reads the document at PATH (arming a data watch with --watch) and appends it to DOCS.
 * A node gone meanwhile is skipped; so is one that is not a JSON object, with a note when
 * printing once. Returns a ZooKeeper code (ZOK for a skipped node).
 */
static int
read_doc(struct view *v, const char *path, char *buf, json_t *docs)
{
    int len = CLUSTER_DOC_MAX;
    struct Stat st;
    json_t *doc;
    int rc;

    if (v->o->watch)
        rc = zoo_wget(v->zh, path, on_event, v, buf, &len, &st);
    else
        rc = zoo_get(v->zh, path, 0, buf, &len, &st);
    if (rc == ZNONODE)
        return ZOK;
    if (rc != ZOK)
        return rc;
    doc = len > 0 ? json_loadb(buf, (size_t)len, 0, NULL) : NULL;
    if (!json_is_object(doc)) {
        if (!v->o->watch)
            fprintf(stderr, "%s: %s: not a status document, skipped\n", v->o->progname, path);
        json_decref(doc);
        return ZOK;
    }
    json_array_append_new(docs, doc);
    return ZOK;
}

/*
 * Reads every status document under ROOT (or ROOT/ONLY) into DOCS, in cluster then instance
 * name order. Returns ZOK, or the first ZooKeeper error.
 */
static int
snapshot(struct view *v, json_t *docs)
{
    struct String_vector clusters = {0};
    char *buf = xmalloc(CLUSTER_DOC_MAX);
    struct sbuf path = {0};
    int rc = ZOK;

    if (v->o->only != NULL) {
        clusters.count = 1;
        clusters.data = xmalloc(sizeof(char *));
        clusters.data[0] = xstrdup(v->o->only);
    } else {
        rc = list_children(v, v->o->root, &clusters);
        if (rc == ZNONODE)
            rc = ZOK; /* no agent has published yet */
    }
    for (int i = 0; rc == ZOK && i < clusters.count; i++) {
        struct String_vector nodes = {0};

        if (v->o->only == NULL && strcmp(clusters.data[i], CLUSTER_AGENTS_DIR) == 0)
            continue;
        sbuf_reset(&path);
        sbuf_printf(&path, "%s/%s", v->o->root, clusters.data[i]);
        rc = list_children(v, path.buf, &nodes);
        if (rc == ZNONODE)
            rc = ZOK; /* gone meanwhile, or never there (ONLY) */
        for (int j = 0; rc == ZOK && j < nodes.count; j++) {
            sbuf_reset(&path);
            sbuf_printf(&path, "%s/%s/%s", v->o->root, clusters.data[i], nodes.data[j]);
            rc = read_doc(v, path.buf, buf, docs);
        }
        deallocate_String_vector(&nodes);
    }
    deallocate_String_vector(&clusters);
    sbuf_free(&path);
    free(buf);
    return rc;
}

/* Prints one view of DOCS (DUMP is their compact JSON). Returns 0, or -1 if stdout failed. */
static int
print_view(struct view *v, const json_t *docs, const char *dump)
{
    struct sbuf out = {0};
    int rc = 0;

    if (v->o->json) {
        sbuf_adds(&out, dump);
        sbuf_adds(&out, "\n");
    } else {
        if (v->o->watch) {
            char when[64];
            time_t now = time(NULL);
            struct tm tm;
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
            sbuf_printf(&out, "%s# %s\n", v->last != NULL ? "\n" : "", when);
        }
        table_cluster(docs, util_wall_ms(), v->o->width, &out);
        if (json_array_size(docs) == 0 && !v->o->watch)
            fprintf(stderr, "%s: no instance published under %s%s%s\n", v->o->progname, v->o->root,
                    v->o->only != NULL ? "/" : "", v->o->only != NULL ? v->o->only : "");
    }
    if (fwrite(out.buf, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        fprintf(stderr, "%s: writing the view: %s\n", v->o->progname, strerror(errno));
        rc = -1;
    }
    sbuf_free(&out);
    return rc;
}

/* Reads and prints once. Returns the exit status. */
static int
run_once(struct view *v)
{
    json_t *docs = json_array();
    int rc = snapshot(v, docs);
    int status = 0;

    if (rc != ZOK) {
        fprintf(stderr, "%s: reading %s from ZooKeeper at %s: %s\n", v->o->progname, v->o->root,
                v->o->hosts, zerror(rc));
        status = CLUSTER_EXIT_ZK;
    } else {
        char *dump = json_dumps(docs, JSON_COMPACT);
        if (print_view(v, docs, dump) < 0)
            status = 1;
        free(dump);
    }
    json_decref(docs);
    return status;
}

/*
 * --watch: reads with watches armed, prints when the view changed, sleeps until a watch or
 * a session event wakes us (or, while ZooKeeper fails, CLUSTER_RETRY_MS), until SIGINT,
 * SIGTERM or SIGHUP arrives on SIGFD. A lost session gets a new handle. Returns the exit
 * status.
 */
static int
run_watch(struct view *v, int sigfd)
{
    int failing = 0;

    for (;;) {
        json_t *docs = json_array();
        int rc = snapshot(v, docs);
        struct pollfd p[2] = {{.fd = sigfd, .events = POLLIN},
                              {.fd = v->wake[0], .events = POLLIN}};

        if (rc == ZOK) {
            char *dump = json_dumps(docs, JSON_COMPACT);
            if (failing)
                fprintf(stderr, "%s: ZooKeeper answers again\n", v->o->progname);
            failing = 0;
            if (v->last == NULL || strcmp(dump, v->last) != 0) {
                if (print_view(v, docs, dump) < 0) {
                    free(dump);
                    json_decref(docs);
                    return 1;
                }
                free(v->last);
                v->last = dump;
            } else {
                free(dump);
            }
        } else if (!failing) {
            fprintf(stderr, "%s: reading ZooKeeper at %s: %s; retrying\n", v->o->progname,
                    v->o->hosts, zerror(rc));
            failing = 1;
        }
        json_decref(docs);
        if (zoo_state(v->zh) == ZOO_EXPIRED_SESSION_STATE) {
            /* Watches died with the session: a new handle, re-armed by the next read. */
            zookeeper_close(v->zh);
            v->zh = NULL;
            if (zk_open(v) < 0) {
                fprintf(stderr, "%s: cannot create a ZooKeeper handle for %s\n", v->o->progname,
                        v->o->hosts);
                return CLUSTER_EXIT_ZK;
            }
        }
        if (poll(p, 2, failing ? CLUSTER_RETRY_MS : -1) < 0 && errno != EINTR)
            return 1;
        if (p[0].revents & POLLIN)
            return 0;
        /* Let a burst of changes (a failover touches several nodes) settle into one view. */
        poll(p, 1, CLUSTER_SETTLE_MS);
        if (p[0].revents & POLLIN)
            return 0;
        drain(v);
    }
}

int
cluster_run(const struct cluster_opts *o)
{
    struct view v = {.o = o, .wake = {-1, -1}};
    sigset_t quit, old;
    int sigfd = -1;
    int status;

    zoo_set_debug_level(0); /* 0: the client logs nothing, not even before a handle exists */
    if (pipe2(v.wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        fprintf(stderr, "%s: pipe: %s\n", o->progname, strerror(errno));
        return 1;
    }
    if (o->watch) {
        /* Blocked for good, so only the signalfd sees them: we end cleanly at a change. */
        sigemptyset(&quit);
        sigaddset(&quit, SIGINT);
        sigaddset(&quit, SIGTERM);
        sigaddset(&quit, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &quit, &old);
        sigfd = signalfd(-1, &quit, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sigfd < 0) {
            fprintf(stderr, "%s: signalfd: %s\n", o->progname, strerror(errno));
            status = 1;
            goto out;
        }
    }
    if (zk_open(&v) < 0) {
        fprintf(stderr, "%s: cannot use ZooKeeper hosts %s: %s\n", o->progname, o->hosts,
                strerror(errno));
        status = CLUSTER_EXIT_ZK;
        goto out;
    }
    if (zk_wait_connected(&v) < 0) {
        fprintf(stderr, "%s: cannot reach ZooKeeper at %s (no session within %d s)\n", o->progname,
                o->hosts, CLUSTER_CONNECT_MS / 1000);
        status = CLUSTER_EXIT_ZK;
        goto out;
    }
    drain(&v);
    status = o->watch ? run_watch(&v, sigfd) : run_once(&v);
out:
    if (v.zh != NULL)
        zookeeper_close(v.zh);
    if (sigfd >= 0)
        close(sigfd);
    close(v.wake[0]);
    close(v.wake[1]);
    free(v.last);
    return status;
}
