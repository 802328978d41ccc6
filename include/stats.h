/* stats.h -- the stats socket: a non-blocking line-oriented unix stream server on the loop. */
#ifndef SA_STATS_H
#define SA_STATS_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define STATS_LINE_MAX    1024 /* longest accepted command line, LF excluded */
#define STATS_MAX_CLIENTS 256  /* connections beyond this are accepted and closed at once... */
#define STATS_EVICT_AFTER 1.0  /* ...unless one waited this long: the longest-waiting is closed */
#define STATS_IDLE_TIMEOUT                                                                         \
    10.0 /* seconds without a complete command line (or an answer's write                          \
            progress) before a client is closed; bytes alone don't count */

struct stats_server;

/* Who is at the other end of a client connection (SO_PEERCRED: the process that connected). */
struct stats_peer {
    int known; /* 0 when the kernel would not say: then nothing may be allowed on trust */
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/*
 * Answers one command line CMD (without its LF) from PEER by appending the whole answer,
 * which must end with an empty line, to OUT.
 */
typedef void (*stats_answer_fn)(void *ud, const struct stats_peer *peer, const char *cmd,
                                struct sbuf *out);

/* What the server has seen, for the agent's own counters. */
struct stats_server_counters {
    int clients;               /* connected now */
    uint64_t clients_total;    /* accepted */
    uint64_t clients_rejected; /* closed at once because STATS_MAX_CLIENTS were connected */
    uint64_t clients_evicted;  /* closed to make room for a new one (STATS_EVICT_AFTER) */
    uint64_t commands;         /* lines answered */
    uint64_t lines_too_long;
    uint64_t idle_closed;
};

/*
 * Listens on a unix stream socket at PATH with file mode MODE and group GROUP ((gid_t)-1: the
 * process's). A stale socket file (no process listening) is replaced; a live one is an error.
 * Returns the server, owned by the caller, or NULL with the reason in ERR.
 */
struct stats_server *stats_listen(struct ev_loop *loop, const char *path, mode_t mode, gid_t group,
                                  stats_answer_fn answer, void *ud, char *err, size_t errlen);

/*
 * Called by the answer function, during its call only: the answer to this command will come
 * later, through stats_complete() (an upgrade answers once its config check is done). Until
 * then the client is neither read nor timed out. Returns 0, or -1 when another answer is
 * already deferred (one at a time).
 */
int stats_defer(struct stats_server *s);

/*
 * Sends TEXT (the whole answer, ending with an empty line) as the deferred answer and lets
 * the client go on. Returns 1 when all of it is in the kernel, 0 when some is still queued,
 * -1 when the client left meanwhile (or nothing was deferred).
 */
int stats_complete(struct stats_server *s, const char *text);

/*
 * Listens on FD, a listening unix stream socket at PATH inherited from the previous image of
 * the agent (an upgrade), instead of binding: no client sees the socket missing. Takes
 * ownership of FD (closed on failure). Returns the server, or NULL with the reason in ERR.
 */
struct stats_server *stats_adopt(struct ev_loop *loop, int fd, const char *path,
                                 stats_answer_fn answer, void *ud, char *err, size_t errlen);

/* Returns the listening socket's fd (an upgrade hands it over); it belongs to S. */
int stats_listen_fd(const struct stats_server *s);

/* Reads the server's counters. */
void stats_get_counters(const struct stats_server *s, struct stats_server_counters *out);

/*
 * Replaces STATS_IDLE_TIMEOUT and STATS_EVICT_AFTER for clients accepted from now on (for
 * tests, which cannot wait 10 s per case).
 */
void stats_set_limits(struct stats_server *s, double idle_timeout, double evict_after);

/* Closes every client and the listener, removes the socket file, frees S. NULL is allowed. */
void stats_close(struct stats_server *s);

#endif
