/* probe.h -- one AUTH/ROLE/PING exchange with one Redis instance over a persistent hiredis async
 * link. */
#ifndef SA_PROBE_H
#define SA_PROBE_H

#include <ev.h>
#include <stdint.h>

#include "health.h"

struct conf_instance;
struct redisAsyncContext; /* hiredis/async.h: only probe.c needs its insides */

/* How one completed probe ended. */
enum probe_status {
    PROBE_OK = 0,     /* PONG */
    PROBE_FAILED,     /* an error reply, a lost connection, garbage: counts towards fall */
    PROBE_CONCLUSIVE, /* connection refused or missing unix socket: down at once */
    PROBE_TIMEOUT,    /* the deadline expired: counts towards fall */
};

/* The outcome of one probe, filled by the probe module. */
struct probe_result {
    enum probe_status status;
    int role_known;                 /* 1 if ROLE was answered during this probe */
    enum inst_role role;            /* valid when role_known */
    int64_t latency_us;             /* round trip of the PING, when status is PROBE_OK */
    char reason[HEALTH_REASON_MAX]; /* "" when ok, else "connection refused", "timeout", ... */
};

/*
 * A probe completed (ok, failed or timed out): exactly once per probe_start(), possibly before
 * probe_start() returns. TILT is non-zero for a timeout judged while the loop ran late.
 */
typedef void probe_done_fn(void *ud, const struct probe_result *r, int tilt);
/* An idle link hit EOF (the server probably died): the owner may probe again at once. */
typedef void probe_eof_fn(void *ud);

/*
 * The probe link of one instance. Owner: the struct inst that embeds it.
 * - loop, conf, done, eof, ud: given to probe_init(); conf points into the agent's config and
 *   is re-pointed by the owner when a reload swaps in an identical section.
 * - ac: the persistent connection, or NULL. Released by probe_close() (redisAsyncFree with
 *   ac->data cleared first), or freed by hiredis itself after a connect failure or a
 *   disconnect, in whose callbacks we only forget the pointer.
 * - deadline: armed while a probe is in flight; stopped by probe_finish() and probe_close().
 * - cmd_*: commands formatted once per instance (probe_init), freed by probe_free().
 */
struct probe {
    struct ev_loop *loop;
    const struct conf_instance *conf;
    probe_done_fn *done;
    probe_eof_fn *eof;
    void *ud; /* handed back to done and eof */
    struct redisAsyncContext *ac;
    int connected;      /* the connect callback said OK */
    int inflight;       /* a probe is running */
    ev_tstamp started;  /* ev_now() when the running probe started (deadline base) */
    ev_tstamp t0;       /* ev_time() at the start, for the round trip */
    ev_tstamp role_due; /* ask ROLE again once ev_now() passes this */
    ev_timer deadline;
    /* per-probe scratch, reset at each start */
    int auth_failed;
    int role_known;
    enum inst_role role;
    /* pre-formatted commands */
    char *cmd_auth; /* NULL without credentials; wiped before free */
    int cmd_auth_len;
};

/*
 * Prepares P to probe the instance CONF on LOOP (formats its commands); DONE and EOF are
 * called with UD. No connection is made before probe_start().
 */
void probe_init(struct probe *p, struct ev_loop *loop, const struct conf_instance *conf,
                probe_done_fn *done, probe_eof_fn *eof, void *ud);

/*
 * Starts one probe: connects if needed, then AUTH (on a new connection, if configured), ROLE
 * (on a new connection and every 10 s), PING, under a deadline of the instance's timeout.
 * Never blocks. Precondition: no probe in flight.
 */
void probe_start(struct probe *p);

/* Cancels a running probe without reporting it and closes the connection. */
void probe_close(struct probe *p);

/* probe_close() and release of the formatted commands. */
void probe_free(struct probe *p);

#endif
