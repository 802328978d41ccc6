/* probe.h -- one AUTH/ROLE/PING exchange with one Redis instance over a persistent hiredis async
 * link. */
#ifndef SA_PROBE_H
#define SA_PROBE_H

#include <ev.h>
#include <hiredis/async.h>
#include <stdint.h>

#include "health.h"

struct inst;

/*
 * The probe link of one instance. Owner: the struct inst that embeds it.
 * - ac: the persistent connection, or NULL. Released by probe_close() (redisAsyncFree with
 *   ac->data cleared first), or freed by hiredis itself after a connect failure or a
 *   disconnect, in whose callbacks we only forget the pointer.
 * - deadline: armed while a probe is in flight; stopped by probe_finish() and probe_close().
 * - cmd_*: commands formatted once per instance (probe_init), freed by probe_free().
 */
struct probe {
    redisAsyncContext *ac;
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

/* Called by the probe module when a probe completes (ok, failed or timed out). */
typedef void (*probe_done_fn)(struct inst *inst, const struct probe_result *r, int tilt);
/* Called when an idle connection is lost (EOF): the owner should probe again at once. */
typedef void (*probe_eof_fn)(struct inst *inst);

/* Sets the callbacks for every probe; once, before the first probe_start(). */
void probe_set_callbacks(probe_done_fn done, probe_eof_fn eof);

/* Prepares INST's probe link (formats its commands). */
void probe_init(struct inst *inst);

/*
 * Starts one probe of INST: connects if needed, then AUTH (on a new connection, if
 * configured), ROLE (on a new connection and every 10 s), PING, under a deadline of the
 * instance's timeout. Never blocks. The done callback runs exactly once, possibly before
 * this returns (a synchronous connect failure). Precondition: no probe in flight.
 */
void probe_start(struct inst *inst);

/* Cancels a running probe without reporting it and closes the connection. */
void probe_close(struct inst *inst);

/* probe_close() and release of the formatted commands. */
void probe_free(struct inst *inst);

#endif
