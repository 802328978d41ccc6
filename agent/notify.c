/* notify.c -- talking to systemd through sd_notify: readiness, status, watchdog, reload, stop. */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "agent.h"
#include "util.h"
#include "zkpub.h"

static int
enabled(void)
{
    const char *s = getenv("NOTIFY_SOCKET");
    return s != NULL && s[0] != '\0';
}

void
notify_summary(struct agent *a, char *buf, size_t len)
{
    struct zkpub_stats zs = {0};
    int up = 0, down = 0, unknown = 0;
    struct inst *inst;

    TAILQ_FOREACH (inst, &a->instances, link) {
        if (inst->health.state == INST_UP)
            up++;
        else if (inst->health.state == INST_DOWN)
            down++;
        else
            unknown++;
    }
    if (a->zk != NULL)
        zkpub_get_stats(a->zk, &zs);
    int n = snprintf(buf, len, "%d instance%s: %d up, %d down", a->ninstances,
                     a->ninstances == 1 ? "" : "s", up, down);
    if (unknown > 0 && n > 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, ", %d unknown", unknown);
    if (n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, "; zookeeper %s", zs.state ? zs.state : "closed");
}

static void
send_status(struct agent *a, const char *prefix)
{
    char line[sizeof(a->last_status)];

    notify_summary(a, line, sizeof(line));
    if (prefix == NULL && strcmp(line, a->last_status) == 0)
        return;
    util_strlcpy(a->last_status, line, sizeof(a->last_status));
    sd_notifyf(0, "%sSTATUS=%s", prefix ? prefix : "", line);
}

static void
watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    /* This timer runs on the loop: if the loop stalls, the pings stop and systemd acts. */
    sd_notify(0, "WATCHDOG=1");
}

static void
status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    send_status(w->data, NULL);
}

void
notify_start(struct agent *a)
{
    uint64_t usec = 0;

    ev_init(&a->watchdog, watchdog_cb);
    ev_init(&a->status, status_cb);
    a->status.data = a;
    if (!enabled())
        return;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        double every = (double)usec / 2e6;
        ev_timer_set(&a->watchdog, every, every);
        ev_timer_start(a->loop, &a->watchdog);
    }
    ev_timer_set(&a->status, 1.0, 1.0);
    ev_timer_start(a->loop, &a->status);
}

void
notify_ready(struct agent *a)
{
    if (enabled())
        send_status(a, "READY=1\n");
}

void
notify_reloading(void)
{
    if (enabled())
        sd_notify(0, "RELOADING=1");
}

void
notify_stop(struct agent *a)
{
    ev_timer_stop(a->loop, &a->watchdog);
    ev_timer_stop(a->loop, &a->status);
}

void
notify_stopping(struct agent *a)
{
    notify_stop(a);
    if (enabled())
        sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}
