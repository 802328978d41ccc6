/* probe.h -- one PING/ROLE exchange with one Redis instance over a persistent hiredis async
 * link, the stale link a timed-out exchange leaves, and the fresh-connect check. */
#ifndef SA_PROBE_H
#define SA_PROBE_H

#include <ev.h>
#include <stdint.h>

#include "health.h"

struct conf_instance;
struct redisAsyncContext; /* hiredis/async.h: only probe.c needs its insides */

/* How one completed probe ended. */
enum probe_status {
    PROBE_OK = 0,      /* PONG */
    PROBE_FAILED,      /* an error reply, a lost connection, garbage: counts towards fall */
    PROBE_CONCLUSIVE,  /* connection refused or missing unix socket: down at once */
    PROBE_TIMEOUT,     /* the deadline expired: counts towards fall */
    PROBE_AGENT_ERROR, /* the agent's own fault (EMFILE, ENFILE, ENOMEM, ENOBUFS): no verdict */
};

/*
 * The class of a failed probe: a small fixed set, for the per-instance failure counters and
 * their metric (reply_reason_class() derives it from a result's status and reason).
 */
enum probe_class {
    PROBE_CLASS_TIMEOUT = 0, /* the deadline expired */
    PROBE_CLASS_REFUSED,     /* connection refused, no such unix socket: conclusive */
    PROBE_CLASS_CONNECTION,  /* any other connection error, or the connection lost */
    PROBE_CLASS_PROTOCOL,    /* a protocol error, a reply too large, an unexpected reply */
    PROBE_CLASS_AUTH,        /* the credentials refused (AUTH, NOAUTH, WRONGPASS, NOPERM) */
    PROBE_CLASS_LOADING,     /* -LOADING */
    PROBE_CLASS_BUSY,        /* -BUSY */
    PROBE_CLASS_MASTERDOWN,  /* -MASTERDOWN */
    PROBE_CLASS_ERROR,       /* any other error reply */
    PROBE_CLASSES            /* how many classes */
};

/* The outcome of one probe, filled by the probe module. */
struct probe_result {
    enum probe_status status;
    const struct role_info *role;   /* what ROLE answered, during the callback; NULL: unknown */
    int role_noperm;                /* ROLE was refused with -NOPERM (the user lacks +role) */
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
/* A late reply arrived between probes (the server is back from a hang): probe again at once. */
typedef void probe_wake_fn(void *ud);

/*
 * The probe link of one instance. Owner: the struct inst that embeds it.
 * - loop, conf, done, eof, wake, ud: given to probe_init(); conf points into the agent's config
 *   and is re-pointed by the owner when a reload swaps in an identical section.
 * - ac: the persistent connection, or NULL. Released by probe_close() (redisAsyncFree with
 *   ac->data cleared first), or freed by hiredis itself after a connect failure or a
 *   disconnect, in whose callbacks we only forget the pointer.
 * - stale: ac carries a timed-out exchange, unanswered: nothing more is sent on it; its late
 *   reply ends the probe waiting on it or wakes the owner; a probe replaces it once it has been
 *   unanswered too long (probe.c, PROBE_STALE_MIN_S).
 * - check_fd, check_io: the fresh-connect check's socket while it settles, else -1; closed
 *   by probe_finish() and probe_close(). At most one per instance.
 * - deadline: armed while a probe is in flight; stopped by probe_finish() and probe_close().
 * - cmd_*: commands formatted once per instance (probe_init), freed by probe_free().
 */
struct probe {
    /* what a probe reads or writes every time first (a few cache lines at 10,000 instances) */
    struct ev_loop *loop;
    const struct conf_instance *conf;
    struct redisAsyncContext *ac;
    probe_done_fn *done;
    void *ud;          /* handed back to done, eof and wake */
    int inflight;      /* a probe is running */
    int connected;     /* the connect callback said OK */
    int answered;      /* the link has answered a PING: not a brand new one */
    int stale;         /* see above */
    int auth_failed;   /* what AUTH answered on this link, for PING's reply */
    int role_noperm;   /* ROLE answered -NOPERM, for PING's reply */
    ev_tstamp started; /* ev_now() when the running probe started (deadline base) */
    ev_tstamp t0;      /* ev_time() at the start, for the round trip */
    ev_timer deadline;
    struct role_info role; /* what ROLE answered, for PING's reply */
    /* the rest */
    probe_eof_fn *eof;
    probe_wake_fn *wake;
    int checked;           /* the fresh-connect check ran for the current stale episode */
    ev_tstamp stale_since; /* ev_now() at the start of the exchange left unanswered */
    ev_io check_io;
    int check_fd;
    /* pre-formatted commands */
    char *cmd_auth; /* NULL without credentials; wiped before free */
    int cmd_auth_len;
};

/*
 * Prepares P to probe the instance CONF on LOOP (formats its commands); DONE, EOF and WAKE
 * are called with UD. No connection is made before probe_start().
 */
void probe_init(struct probe *p, struct ev_loop *loop, const struct conf_instance *conf,
                probe_done_fn *done, probe_eof_fn *eof, probe_wake_fn *wake, void *ud);

/*
 * Starts one probe under a deadline of the instance's timeout: connects if needed, then AUTH
 * (on a new connection, if configured), ROLE and PING in one write. On a stale link it sends
 * nothing and waits for the late reply (with a fresh-connect check, once per stale link).
 * Never blocks. Precondition: no probe in flight.
 */
void probe_start(struct probe *p);

/* Cancels a running probe without reporting it and closes the connection. */
void probe_close(struct probe *p);

/* probe_close() and release of the formatted commands. */
void probe_free(struct probe *p);

#endif
