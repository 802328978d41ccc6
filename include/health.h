/* health.h -- the per-instance health state machine: rise/fall hysteresis, conclusive failures,
 * TILT. */
#ifndef SA_HEALTH_H
#define SA_HEALTH_H

#include <stdint.h>

#define HEALTH_REASON_MAX 128
#define HEALTH_MASTER_MAX 264 /* "host:port" or "[v6]:port": a 255-byte name, brackets, port */
#define HEALTH_LINK_MAX   16  /* the longest link state ROLE names ("connecting") and more */

enum inst_state { INST_UNKNOWN = 0, INST_UP, INST_DOWN };
enum inst_role { ROLE_UNKNOWN = 0, ROLE_MASTER, ROLE_REPLICA, ROLE_SENTINEL };

struct probe_result; /* probe.h */

/*
 * What ROLE says about an instance (SPEC "Status document"): the role; for a replica its master
 * ("host:port") and the state of its link to it ("connected", "connect", ...); for a master the
 * number of replicas it lists. Fields that do not apply are "" and 0. Fixed buffers: filling
 * one allocates nothing.
 */
struct role_info {
    enum inst_role role;
    int replicas;
    /* link before master: a probe compares role, link and a short master in one cache line */
    char link[HEALTH_LINK_MAX];
    char master[HEALTH_MASTER_MAX];
};

/* An instance's health. Owner: the struct inst that embeds it; written only by health_record(). */
struct health {
    /* what every probe reads or writes first, with the head of role */
    enum inst_state state;
    int consecutive_ok;
    int consecutive_fail;
    int64_t since_ms;      /* wall time of the last state change; 0 before the first */
    int64_t last_check_ms; /* wall time of the end of the last completed probe */
    int64_t latency_us;    /* round trip of the last successful probe */
    struct role_info role; /* published: from the last successful probe while up, else unknown */
    char reason[HEALTH_REASON_MAX]; /* "" while up; the latest failure's cause otherwise */
};

#define HEALTH_STATE_CHANGED 0x1
#define HEALTH_ROLE_CHANGED  0x2 /* role, master or link: written at once */

/*
 * Feeds one completed probe into H. RISE and FALL are the instance's thresholds; TILT is
 * non-zero when the loop ran too late for a timeout to be trusted: a timeout is then ignored
 * entirely, and so is a probe the agent itself failed (PROBE_AGENT_ERROR). NOW_MS is the wall
 * time. Returns a mask of HEALTH_STATE_CHANGED and HEALTH_ROLE_CHANGED; 0 when nothing a
 * consumer is written has changed (a new replica count or latency alone is not written). With
 * HEALTH_ROLE_CHANGED, WAS (if not NULL) receives the role H had before.
 */
int health_record(struct health *h, const struct probe_result *r, int rise, int fall, int tilt,
                  int64_t now_ms, struct role_info *was);

/* 1 while H is rising: down, with at least one but fewer than RISE consecutive successes. */
int health_rising(const struct health *h, int rise);

/* Clears R to "unknown": no role, no master, no link, no replicas. */
void health_role_clear(struct role_info *r);

/* "up", "down" or "unknown". */
const char *health_state_name(enum inst_state s);
/* "master", "replica", "sentinel" or "unknown". */
const char *health_role_name(enum inst_role r);

#endif
