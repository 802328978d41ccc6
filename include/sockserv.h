/* sockserv.h -- the client machinery shared by the loop's stream servers (stats, metrics). */
#ifndef SA_SOCKSERV_H
#define SA_SOCKSERV_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "util.h"

/*
 * The listen backlog of every stream server: a burst of this many connects waits in the
 * kernel's queue instead of being refused (the kernel caps it at net.core.somaxconn).
 */
#define SOCKSERV_BACKLOG (SOMAXCONN > 1024 ? SOMAXCONN : 1024)

struct sockserv;      /* a listener, its accept loop and its clients */
struct sockserv_conn; /* one client: fd, read/write watchers, timer, output buffer */

/* What a protocol tells the server. The strings are not copied: they must outlive it. */
struct sockserv_conf {
    const char *tag;          /* log component of every line the server logs */
    const char *name;         /* the listener in log lines: a socket path or HOST:PORT */
    const char *full_warning; /* logged once when max_clients are connected, until one leaves */
    int max_clients;          /* connections beyond this are accepted and closed at once... */
    double evict_after;       /* ...unless a client waiting for input made no progress for this
                                 long (seconds; 0: never): the longest-waiting one is closed */
    double timeout;     /* a new client's timer; sockserv_touch() and write progress re-arm it */
    size_t data_size;   /* bytes of zeroed protocol state per client, at sockserv_data() */
    size_t out_keep;    /* output capacity a client keeps once all is sent; more is freed */
    double linger_time; /* seconds a lingering client may take to send its EOF */
    size_t linger_max;  /* bytes discarded from a lingering client before closing it */
    /* Input is ready (never while lingering): read it with sockserv_recv(). May close C. */
    void (*readable)(struct sockserv_conn *c, void *ud);
    /* The write watcher has sent all of the output. May close C. */
    void (*sent)(struct sockserv_conn *c, void *ud);
    /* The timer fired (never while lingering): must close C. */
    void (*expired)(struct sockserv_conn *c, void *ud);
    /* Optional: C is being closed, however (the protocol forgets any pointer to it). */
    void (*closing)(struct sockserv_conn *c, void *ud);
};

/* Connections seen by a server. */
struct sockserv_counters {
    int clients;       /* connected now */
    uint64_t accepted; /* accepted, including the rejected */
    uint64_t rejected; /* closed at once because max_clients were connected */
    uint64_t evicted;  /* closed to make room for a new one (conf.evict_after) */
};

/*
 * Serves the listening non-blocking socket FD on LOOP as CF says, passing UD to its
 * callbacks. Takes ownership of FD. The server belongs to the caller: sockserv_free().
 */
struct sockserv *sockserv_start(struct ev_loop *loop, int fd, const struct sockserv_conf *cf,
                                void *ud);

/* Closes every client, stops accepting, closes the listening socket, frees S. NULL is allowed. */
void sockserv_free(struct sockserv *s);

/*
 * Changes S's conf.timeout and conf.evict_after for clients accepted from now on (tests use
 * short ones).
 */
void sockserv_set_limits(struct sockserv *s, double timeout, double evict_after);

/* Returns S's listening socket; it belongs to S. */
int sockserv_listen_fd(const struct sockserv *s);

/* Reads S's connection counters into OUT. */
void sockserv_get_counters(const struct sockserv *s, struct sockserv_counters *out);

/* Returns C's protocol state: conf.data_size zeroed bytes that live as long as C. */
void *sockserv_data(struct sockserv_conn *c);

/* Returns C's socket, for log lines; it belongs to C. */
int sockserv_fd(const struct sockserv_conn *c);

/* Returns C's output buffer: append to it, then sockserv_flush(). It belongs to C. */
struct sbuf *sockserv_out(struct sockserv_conn *c);

/* Reads up to LEN bytes into BUF: n > 0, 0 at EOF, -1 for nothing now or an error (C closed). */
ssize_t sockserv_recv(struct sockserv_conn *c, void *buf, size_t len);

/* Starts C's read watcher: conf.readable runs when input arrives. */
void sockserv_read_start(struct sockserv_conn *c);

/* Stops C's read watcher. */
void sockserv_read_stop(struct sockserv_conn *c);

/*
 * Restarts C's timer from now, and counts it as progress for eviction (write progress does
 * both by itself). The protocol calls it when a request is complete, not per byte, so that a
 * client dribbling bytes is cut off.
 */
void sockserv_touch(struct sockserv_conn *c);

/*
 * Sends what it can of C's output without blocking. Returns 1 when all of it is sent (the
 * buffer is emptied), 0 when bytes remain (reading stops; conf.sent runs once they are sent),
 * -1 after closing C on a write error.
 */
int sockserv_flush(struct sockserv_conn *c);

/*
 * Ends C without a reset: shuts down our side and discards input until the client's EOF,
 * conf.linger_time or conf.linger_max, then closes C, logging WHY (a static string or NULL).
 */
void sockserv_linger(struct sockserv_conn *c, const char *why);

/* Stops C's watchers, closes its socket, frees it; logs WHY at debug level unless NULL. */
void sockserv_close(struct sockserv_conn *c, const char *why);

#endif
