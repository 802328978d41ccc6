/* health.c -- the per-instance health state machine: rise/fall hysteresis, conclusive failures,
 * TILT. */
#include "health.h"

#include <string.h>

#include "probe.h"
#include "util.h"

static void
set_state(struct health *h, enum inst_state s, int64_t now_ms)
{
    h->state = s;
    h->since_ms = now_ms;
}

static int
role_differs(const struct role_info *a, const struct role_info *b)
{
    return a->role != b->role || strcmp(a->master, b->master) != 0 || strcmp(a->link, b->link) != 0;
}

/*
 * The rules, in order:
 * 1. A timeout judged while the loop ran late (TILT) says nothing about the instance, and a
 *    probe the agent itself could not run (no fd, no memory) says nothing either: ignore.
 * 2. From unknown, the first completed probe decides: success up, failure down.
 * 3. A refused connection or missing socket is conclusive: down at once.
 * 4. Otherwise `rise` consecutive successes take down to up, `fall` failures up to down.
 * The published role (with master, link, replicas) is the last successful probe's while up;
 * unknown otherwise. A failed probe of an instance still up keeps the role it had.
 */
int
health_record(struct health *h, const struct probe_result *r, int rise, int fall, int tilt,
              int64_t now_ms, struct role_info *was)
{
    static const struct role_info unknown = {.role = ROLE_UNKNOWN};
    enum inst_state old_state = h->state;
    const struct role_info *role = NULL; /* the role to publish, NULL: the one it has */
    int ok = r->status == PROBE_OK;
    int what = 0;

    if ((tilt && r->status == PROBE_TIMEOUT) || r->status == PROBE_AGENT_ERROR)
        return 0;

    h->last_check_ms = now_ms;
    if (ok) {
        h->consecutive_ok++;
        h->consecutive_fail = 0;
        h->latency_us = r->latency_us;
    } else {
        h->consecutive_fail++;
        h->consecutive_ok = 0;
    }

    if (h->state == INST_UNKNOWN) {
        set_state(h, ok ? INST_UP : INST_DOWN, now_ms);
    } else if (ok) {
        if (h->state == INST_DOWN && h->consecutive_ok >= rise)
            set_state(h, INST_UP, now_ms);
    } else {
        if (h->state == INST_UP && (r->status == PROBE_CONCLUSIVE || h->consecutive_fail >= fall))
            set_state(h, INST_DOWN, now_ms);
    }

    /* The reason is written only when it changes: "" from the moment it is up. */
    if (h->state == INST_UP) {
        if (h->state != old_state)
            h->reason[0] = '\0';
        if (ok)
            role = r->role != NULL ? r->role : &unknown;
    } else {
        if (!ok)
            util_strlcpy(h->reason, r->reason, sizeof(h->reason));
        role = &unknown;
    }

    if (h->state != old_state)
        what |= HEALTH_STATE_CHANGED;
    /* Compared in place and copied only when it changed: most probes change nothing. */
    if (role != NULL && role_differs(&h->role, role)) {
        what |= HEALTH_ROLE_CHANGED;
        if (was != NULL)
            *was = h->role;
        h->role = *role;
    } else if (role != NULL) {
        h->role.replicas = role->replicas; /* read, not written at once */
    }
    return what;
}

int
health_rising(const struct health *h, int rise)
{
    return h->state == INST_DOWN && h->consecutive_ok > 0 && h->consecutive_ok < rise;
}

void
health_role_clear(struct role_info *r)
{
    r->role = ROLE_UNKNOWN;
    r->replicas = 0;
    r->master[0] = '\0';
    r->link[0] = '\0';
}

const char *
health_state_name(enum inst_state s)
{
    switch (s) {
    case INST_UP:
        return "up";
    case INST_DOWN:
        return "down";
    case INST_UNKNOWN:
        break;
    }
    return "unknown";
}

const char *
health_role_name(enum inst_role r)
{
    switch (r) {
    case ROLE_MASTER:
        return "master";
    case ROLE_REPLICA:
        return "replica";
    case ROLE_SENTINEL:
        return "sentinel";
    case ROLE_UNKNOWN:
        break;
    }
    return "unknown";
}
