/* health.h -- the per-instance health state machine: rise/fall hysteresis, conclusive failures,
 * TILT. */
#ifndef SA_HEALTH_H
#define SA_HEALTH_H

#include <stdint.h>

#define HEALTH_REASON_MAX 128

enum inst_state { INST_UNKNOWN = 0, INST_UP, INST_DOWN };
enum inst_role { ROLE_UNKNOWN = 0, ROLE_MASTER, ROLE_REPLICA, ROLE_SENTINEL };

struct probe_result; /* probe.h */

/* An instance's health. Owner: the struct inst that embeds it; written only by health_record(). */
struct health {
    enum inst_state state;
    enum inst_role role;          /* published role: ROLE_UNKNOWN while not up */
    enum inst_role observed_role; /* last role ROLE answered on the current connection */
    int consecutive_ok;
    int consecutive_fail;
    int64_t since_ms;               /* wall time of the last state change; 0 before the first */
    int64_t last_check_ms;          /* wall time of the end of the last completed probe */
    int64_t latency_us;             /* round trip of the last successful probe */
    char reason[HEALTH_REASON_MAX]; /* "" while up; the latest failure's cause otherwise */
};

#define HEALTH_STATE_CHANGED 0x1
#define HEALTH_ROLE_CHANGED  0x2

/*
 * Feeds one completed probe into H. RISE and FALL are the instance's thresholds; TILT is
 * non-zero when the loop ran too late for a timeout to be trusted: a timeout is then ignored
 * entirely. NOW_MS is the wall time. Returns a mask of HEALTH_STATE_CHANGED and
 * HEALTH_ROLE_CHANGED; 0 when nothing a consumer sees has changed.
 */
int health_record(struct health *h, const struct probe_result *r, int rise, int fall, int tilt,
                  int64_t now_ms);

/* "up", "down" or "unknown". */
const char *health_state_name(enum inst_state s);
/* "master", "replica", "sentinel" or "unknown". */
const char *health_role_name(enum inst_role r);

#endif
