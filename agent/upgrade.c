/* upgrade.c -- the zero-gap upgrade: check the installed binary against the config in a child,
 * then re-execute it in place, handing the stats socket and the ZooKeeper session over. */
#include "upgrade.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "handover.h"
#include "log.h"
#include "notify.h"
#include "stats.h"
#include "zkpub.h"

#define UP_COMP       "agent"
#define UP_CHECK_S    10.0 /* the config check's deadline: then it is killed */
#define UP_CHECK_OUT  4096 /* bytes of its output kept (the rest is read and dropped) */
#define UP_DRAIN_S    2.0  /* at most this long for in-flight ZooKeeper writes to finish */
#define UP_DRAIN_POLL 0.01 /* ... looked at this often */
#define UP_MAX_ARGS   64

extern char **environ;

enum up_phase { UP_IDLE = 0, UP_CHECKING, UP_DRAINING };

/*
 * The upgrade machinery. Owner: the agent (a->upgrade); made by upgrade_new() in main(),
 * released by upgrade_free() in agent_free(). It owns the SIGUSR2 watcher, the config check
 * child's watchers and pipe while it runs, and the record handed over by the previous image
 * until agent_start() is done with it.
 */
struct upgrade {
    struct agent *a;
    char *exe;   /* absolute path of the installed binary, resolved at start */
    char **argv; /* our argv, for the exec; owned, NULL-terminated */
    ev_signal sigusr2;
    enum up_phase phase;
    int answer_due; /* an `upgrade` command waits for its deferred answer */
    /* the config check */
    pid_t child;
    int status;
    int outfd; /* read end of the child's stdout+stderr, or -1 */
    ev_child child_w;
    ev_io out_w;
    ev_timer check_deadline;
    struct sbuf out; /* its first UP_CHECK_OUT bytes */
    /* waiting for ZooKeeper writes in flight */
    ev_timer drain;
    ev_tstamp drain_until;
    /* what the previous image handed over */
    struct handover *ho;
    unsigned long upgrades;
    char from[32];
};

/* ---- the new image's side ---- */

/* Closes every fd above 2: what an unreadable hand-over left us we cannot tell apart. */
static void
close_inherited(void)
{
    int fds[1024], n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL && n < (int)ARRAY_LEN(fds)) {
        int fd = atoi(de->d_name);
        if (fd > 2 && fd != dirfd(d))
            fds[n++] = fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

struct handover *
upgrade_take_handover(void)
{
    const char *v = getenv(HANDOVER_ENV);
    char err[256], *end;
    struct handover *h;
    long fd;

    if (v == NULL)
        return NULL;
    fd = strtol(v, &end, 10);
    unsetenv(HANDOVER_ENV); /* nothing this process starts must see it */
    if (*end != '\0' || fd <= 2 || fd > 65535 || fcntl((int)fd, F_GETFD) < 0) {
        log_warn(UP_COMP, "%s does not name an open fd: starting fresh", HANDOVER_ENV);
        close_inherited();
        return NULL;
    }
    h = handover_read((int)fd, err, sizeof(err));
    close((int)fd);
    if (h == NULL) {
        log_warn(UP_COMP, "hand-over from the previous image not used (%s): starting fresh", err);
        close_inherited();
    }
    return h;
}

/* The absolute path ARGV0 names (cwd-relative, or found on PATH), or NULL. Caller frees. */
static char *
resolve_exe(const char *argv0)
{
    char buf[4096];

    if (argv0 == NULL || argv0[0] == '\0')
        return NULL;
    if (argv0[0] == '/')
        return xstrdup(argv0);
    if (strchr(argv0, '/') != NULL) {
        struct sbuf sb = {0};
        char *p;
        if (getcwd(buf, sizeof(buf)) == NULL)
            return NULL;
        sbuf_printf(&sb, "%s/%s", buf, argv0);
        p = xstrdup(sb.buf);
        sbuf_free(&sb);
        return p;
    }
    const char *path = getenv("PATH");
    while (path != NULL && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len > 0 && len < sizeof(buf) / 2) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, argv0);
            if (buf[0] == '/' && access(buf, X_OK) == 0)
                return xstrdup(buf);
        }
        path = colon ? colon + 1 : NULL;
    }
    return NULL;
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents);
static void child_cb(struct ev_loop *loop, ev_child *w, int revents);
static void out_cb(struct ev_loop *loop, ev_io *w, int revents);
static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void drain_cb(struct ev_loop *loop, ev_timer *w, int revents);

struct upgrade *
upgrade_new(struct agent *a, char **argv, struct handover *ho)
{
    struct upgrade *up = xcalloc(1, sizeof(*up));
    int argc = 0;

    up->a = a;
    up->outfd = -1;
    up->exe = resolve_exe(argv[0]);
    if (up->exe == NULL) {
        char buf[4096];
        ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
        if (n > 0) {
            buf[n] = '\0';
            up->exe = xstrdup(buf);
        }
    }
    while (argv[argc] != NULL && argc < UP_MAX_ARGS)
        argc++;
    up->argv = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++)
        up->argv[i] = xstrdup(argv[i]);
    up->ho = ho;
    if (ho != NULL) {
        up->upgrades = (unsigned long)ho->upgrades;
        util_strlcpy(up->from, ho->old_version, sizeof(up->from));
    }
    ev_signal_init(&up->sigusr2, signal_cb, SIGUSR2);
    up->sigusr2.data = up;
    ev_signal_start(a->loop, &up->sigusr2);
    ev_init(&up->child_w, child_cb);
    up->child_w.data = up;
    ev_init(&up->out_w, out_cb);
    up->out_w.data = up;
    ev_init(&up->check_deadline, deadline_cb);
    up->check_deadline.data = up;
    ev_init(&up->drain, drain_cb);
    up->drain.data = up;
    return up;
}

const struct handover *
upgrade_handover(const struct upgrade *up)
{
    return up != NULL ? up->ho : NULL;
}

struct stats_server *
upgrade_stats_adopt(struct upgrade *up, stats_answer_fn fn, void *ud)
{
    struct agent *a = up->a;
    struct stats_server *s;
    char err[256];
    int fd;

    if (up->ho == NULL || up->ho->stats_fd < 0)
        return NULL;
    fd = up->ho->stats_fd;
    up->ho->stats_fd = -1;
    s = stats_adopt(a->loop, fd, a->conf->stats_socket, fn, ud, err, sizeof(err));
    if (s == NULL) {
        log_warn("stats", "%s: listening anew", err);
        return NULL;
    }
    /* The config may have changed since the file was made: its mode and group as a reload. */
    if (chmod(a->conf->stats_socket, a->conf->stats_socket_mode) < 0)
        log_warn("stats", "cannot change the mode of %s", a->conf->stats_socket);
    gid_t g = a->conf->stats_socket_gid != (gid_t)-1 ? a->conf->stats_socket_gid : getegid();
    if (chown(a->conf->stats_socket, (uid_t)-1, g) < 0)
        log_warn("stats", "cannot give %s to group %u: %s", a->conf->stats_socket, (unsigned)g,
                 strerror(errno));
    return s;
}

const struct zkpub_session *
upgrade_session(const struct upgrade *up)
{
    return up != NULL && up->ho != NULL && up->ho->has_session ? &up->ho->session : NULL;
}

void
upgrade_restore(struct upgrade *up, struct inst *inst)
{
    const struct handover_inst *hi =
        handover_find(up ? up->ho : NULL, inst->conf->name, inst->conf->address);

    if (hi != NULL)
        inst->health = hi->health;
}

void
upgrade_started(struct upgrade *up)
{
    if (up == NULL || up->ho == NULL)
        return;
    log_info(UP_COMP, "upgraded in place from %s to %s (upgrade %lu of this process)",
             up->from[0] ? up->from : "?", SA_VERSION, up->upgrades);
    handover_free(up->ho);
    up->ho = NULL;
}

unsigned long
upgrade_count(const struct upgrade *up)
{
    return up != NULL ? up->upgrades : 0;
}

const char *
upgrade_from(const struct upgrade *up)
{
    return up != NULL ? up->from : "";
}

/* ---- the old image's side ---- */

/*
 * Marks every fd above 2 close-on-exec, except KEEP1 and KEEP2 (-1: none), which lose the
 * flag. The ZooKeeper client's sockets and pipe are made without SOCK_CLOEXEC.
 */
static int
cloexec_sweep(int keep1, int keep2, char *err, size_t errlen)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int rc = 0;

    if (d == NULL) {
        snprintf(err, errlen, "cannot list /proc/self/fd: %s", strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        int flags;

        if (*end != '\0' || de->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
            continue;
        if ((flags = fcntl((int)fd, F_GETFD)) < 0)
            continue;
        if (fd == keep1 || fd == keep2)
            flags &= ~FD_CLOEXEC;
        else
            flags |= FD_CLOEXEC;
        if (fcntl((int)fd, F_SETFD, flags) < 0 && rc == 0) {
            snprintf(err, errlen, "fcntl(%ld, F_SETFD): %s", fd, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

/* Answers the deferred `upgrade` command, if one waits. */
static void
answer(struct upgrade *up, const char *error)
{
    struct sbuf sb = {0};

    if (!up->answer_due)
        return;
    up->answer_due = 0;
    if (up->a->stats == NULL)
        return;
    if (error == NULL) {
        stats_complete(up->a->stats, "{\"ok\":true}\n\n");
        return;
    }
    sbuf_adds(&sb, "{\"error\":\"upgrade refused: ");
    for (const char *p = error; *p; p++) /* plain JSON escaping of a log text */
        if (*p == '"' || *p == '\\')
            sbuf_printf(&sb, "\\%c", *p);
        else if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            sbuf_adds(&sb, "?");
        else
            sbuf_add(&sb, p, 1);
    sbuf_adds(&sb, "\"}\n\n");
    stats_complete(up->a->stats, sb.buf);
    sbuf_free(&sb);
}

static void
check_stop(struct upgrade *up)
{
    struct ev_loop *loop = up->a->loop;

    ev_child_stop(loop, &up->child_w);
    ev_io_stop(loop, &up->out_w);
    ev_timer_stop(loop, &up->check_deadline);
    if (up->outfd >= 0)
        close(up->outfd);
    up->outfd = -1;
}

/* Something failed before the exec: log it, answer it, keep running as we were. */
static void
refuse(struct upgrade *up, const char *why)
{
    log_error(UP_COMP, "upgrade refused: %s; running on unchanged", why);
    answer(up, why);
    check_stop(up);
    sbuf_free(&up->out);
    up->phase = UP_IDLE;
}

/* Starts `EXE -t -c CONFIG` with its output into a pipe. Returns 0, or -1 with ERR. */
static int
check_start(struct upgrade *up, char *err, size_t errlen)
{
    struct agent *a = up->a;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defs;
    char *args[] = {up->exe, "-t", "-c", a->conf->path, NULL};
    int p[2], rc;

    if (up->exe == NULL) {
        snprintf(err, errlen, "the path of the installed binary is unknown");
        return -1;
    }
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    /* The check must not inherit the ZooKeeper client's sockets (nor anything else of ours). */
    cloexec_sweep(-1, -1, err, errlen);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&defs);
    sigaddset(&defs, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defs);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawn(&up->child, up->exe, &fa, &attr, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        snprintf(err, errlen, "cannot run %s: %s", up->exe, strerror(rc));
        return -1;
    }
    up->outfd = p[0];
    up->status = -1;
    sbuf_reset(&up->out);
    ev_child_set(&up->child_w, up->child, 0);
    ev_child_start(a->loop, &up->child_w);
    ev_io_set(&up->out_w, up->outfd, EV_READ);
    ev_io_start(a->loop, &up->out_w);
    ev_timer_set(&up->check_deadline, UP_CHECK_S, 0.);
    ev_timer_start(a->loop, &up->check_deadline);
    return 0;
}

/* Reads what the check wrote; returns 1 at EOF (or error), 0 while more may come. */
static int
out_read(struct upgrade *up)
{
    char buf[4096];

    for (;;) {
        ssize_t n = read(up->outfd, buf, sizeof(buf));
        if (n > 0) {
            size_t room = up->out.len < UP_CHECK_OUT ? UP_CHECK_OUT - up->out.len : 0;
            sbuf_add(&up->out, buf, (size_t)n < room ? (size_t)n : room);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
}

static void exec_now(struct upgrade *up);

/* The check has exited and its output is read: go on, or refuse with what it said. */
static void
check_done(struct upgrade *up)
{
    struct agent *a = up->a;
    struct inst *inst;
    char why[512];
    int st = up->status;

    check_stop(up);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        char *save = NULL, *first = NULL;

        for (char *line = strtok_r(up->out.buf ? up->out.buf : "", "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            log_error(UP_COMP, "upgrade: %s -t: %s", up->exe, line);
            if (first == NULL)
                first = line;
        }
        if (WIFEXITED(st))
            snprintf(why, sizeof(why), "%s -t -c %s exited with %d%s%s", up->exe, a->conf->path,
                     WEXITSTATUS(st), first ? ": " : "", first ? first : "");
        else
            snprintf(why, sizeof(why), "%s -t -c %s was killed by signal %d%s", up->exe,
                     a->conf->path, WTERMSIG(st),
                     WTERMSIG(st) == SIGKILL ? " (no answer in time)" : "");
        refuse(up, why);
        return;
    }
    sbuf_free(&up->out);
    if (a->stopping) {
        refuse(up, "the agent is shutting down");
        return;
    }
    log_info(UP_COMP, "upgrade: %s passed its config check: re-executing it in place", up->exe);
    answer(up, NULL);
    notify_reloading();
    TAILQ_FOREACH (inst, &a->instances, link)
        inst_stop(inst);
    up->phase = UP_DRAINING;
    up->drain_until = ev_now(a->loop) + UP_DRAIN_S;
    if (zkpub_idle(a->zk)) {
        exec_now(up);
        return;
    }
    ev_timer_set(&up->drain, UP_DRAIN_POLL, UP_DRAIN_POLL);
    ev_timer_start(a->loop, &up->drain);
}

static void
child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct upgrade *up = w->data;

    (void)loop;
    (void)revents;
    up->status = w->rstatus;
    ev_child_stop(loop, w);
    up->child = 0;
    out_read(up); /* what is left in the pipe; a grandchild holding it open is not waited for */
    check_done(up);
}

static void
out_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct upgrade *up = w->data;

    (void)revents;
    if (out_read(up))
        ev_io_stop(loop, w); /* EOF: the exit is what child_cb waits for */
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upgrade *up = w->data;

    (void)loop;
    (void)revents;
    if (up->child > 0)
        kill(up->child, SIGKILL); /* child_cb reports it */
}

static void
drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upgrade *up = w->data;

    (void)revents;
    if (!zkpub_idle(up->a->zk) && ev_now(loop) < up->drain_until)
        return;
    ev_timer_stop(loop, w);
    if (!zkpub_idle(up->a->zk))
        log_warn(UP_COMP,
                 "upgrade: ZooKeeper writes still in flight after %.0fs: going on "
                 "(the new image compares every node)",
                 UP_DRAIN_S);
    exec_now(up);
}

/* The record of what the new image takes over. */
static struct handover *
handover_make(struct upgrade *up)
{
    struct agent *a = up->a;
    struct handover *h = xcalloc(1, sizeof(*h));
    struct inst *inst;
    size_t i = 0;

    h->stats_fd = a->stats ? stats_listen_fd(a->stats) : -1;
    h->upgrades = up->upgrades + 1;
    util_strlcpy(h->old_version, SA_VERSION, sizeof(h->old_version));
    h->has_session = a->zk != NULL && zkpub_get_session(a->zk, &h->session) == 0;
    h->inst = xcalloc((size_t)a->ninstances + 1, sizeof(*h->inst));
    TAILQ_FOREACH (inst, &a->instances, link) {
        h->inst[i].name = xstrdup(inst->conf->name);
        h->inst[i].address = xstrdup(inst->conf->address);
        h->inst[i].health = inst->health;
        i++;
    }
    h->ninst = i;
    return h;
}

/* The exec failed (or could not be tried): undo and run on as the same image. */
static void
exec_failed(struct upgrade *up, const char *why)
{
    struct agent *a = up->a;
    struct inst *inst;
    int i = 0;

    log_error(UP_COMP, "upgrade failed: %s; running on as %s", why, SA_VERSION);
    if (a->stats != NULL)
        fcntl(stats_listen_fd(a->stats), F_SETFD, FD_CLOEXEC);
    TAILQ_FOREACH (inst, &a->instances, link)
        inst_start(inst, a->ninstances > 0 ? (double)i++ / a->ninstances : 0.);
    up->phase = UP_IDLE;
    notify_ready(a);
}

static void
exec_now(struct upgrade *up)
{
    struct handover *h = handover_make(up);
    char err[256], num[16];
    int fd, e;

    fd = memfd_create("sentinel-agent-handover", 0); /* no MFD_CLOEXEC: the new image reads it */
    if (fd < 0) {
        snprintf(err, sizeof(err), "memfd_create: %s", strerror(errno));
        handover_free(h);
        exec_failed(up, err);
        return;
    }
    if (handover_write(fd, h, err, sizeof(err)) < 0 ||
        cloexec_sweep(h->stats_fd, fd, err, sizeof(err)) < 0) {
        handover_free(h);
        close(fd);
        exec_failed(up, err);
        return;
    }
    log_info(UP_COMP, "upgrade: executing %s (ZooKeeper session %s)", up->exe,
             h->has_session ? "handed over" : "none to hand over");
    handover_free(h);
    snprintf(num, sizeof(num), "%d", fd);
    setenv(HANDOVER_ENV, num, 1);
    /* Never zookeeper_close() here: it would end the session the new image resumes. */
    execve(up->exe, up->argv, environ);
    e = errno;
    unsetenv(HANDOVER_ENV);
    close(fd);
    snprintf(err, sizeof(err), "execve %s: %s", up->exe, strerror(e));
    exec_failed(up, err);
}

/* Begins an upgrade: the config check first. Returns 0, or -1 with the reason in ERR. */
static int
upgrade_begin(struct upgrade *up, const char *by, char *err, size_t errlen)
{
    if (up->a->stopping) {
        snprintf(err, errlen, "the agent is shutting down");
        return -1;
    }
    if (up->phase != UP_IDLE) {
        snprintf(err, errlen, "an upgrade is already in progress");
        return -1;
    }
    if (check_start(up, err, errlen) < 0)
        return -1;
    up->phase = UP_CHECKING;
    log_info(UP_COMP, "upgrade requested (%s): checking %s -t -c %s", by, up->exe,
             up->a->conf->path);
    return 0;
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct upgrade *up = w->data;
    char err[256];

    (void)loop;
    (void)revents;
    if (upgrade_begin(up, "SIGUSR2", err, sizeof(err)) < 0)
        log_error(UP_COMP, "upgrade refused: %s; running on unchanged", err);
}

void
upgrade_command(struct upgrade *up, const struct stats_peer *peer, struct sbuf *out)
{
    struct agent *a = up->a;
    char err[256], by[64];

    if (!agent_peer_may_change(peer)) {
        sbuf_adds(out, "{\"error\":\"permission denied\"}\n\n");
        return;
    }
    snprintf(by, sizeof(by), "upgrade command by uid %u", (unsigned)peer->uid);
    if (upgrade_begin(up, by, err, sizeof(err)) < 0) {
        sbuf_printf(out, "{\"error\":\"upgrade refused: %s\"}\n\n", err);
        return;
    }
    if (stats_defer(a->stats) == 0)
        up->answer_due = 1;
}

void
upgrade_cancel(struct upgrade *up)
{
    if (up == NULL || up->phase == UP_IDLE)
        return;
    if (up->child > 0) {
        kill(up->child, SIGKILL);
        waitpid(up->child, NULL, 0);
        up->child = 0;
    }
    answer(up, "the agent is shutting down");
    check_stop(up);
    ev_timer_stop(up->a->loop, &up->drain);
    sbuf_free(&up->out);
    up->phase = UP_IDLE;
}

void
upgrade_free(struct upgrade *up)
{
    if (up == NULL)
        return;
    upgrade_cancel(up);
    ev_signal_stop(up->a->loop, &up->sigusr2);
    handover_free(up->ho);
    for (int i = 0; up->argv[i] != NULL; i++)
        free(up->argv[i]);
    free(up->argv);
    free(up->exe);
    free(up);
}
