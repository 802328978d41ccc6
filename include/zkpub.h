/* zkpub.h -- publishing documents to ZooKeeper as ephemeral nodes: session, containers, nodes,
 * watches. */
#ifndef SA_ZKPUB_H
#define SA_ZKPUB_H

#include <ev.h>
#include <stdint.h>
#include <sys/queue.h>

struct sbuf;
struct zkpub;
struct zknode;

/*
 * What a publisher is made of. The caller's copy may borrow its strings (from its config);
 * zkpub_new() keeps a copy of its own, so a reload never changes a running publisher.
 */
struct zkpub_settings {
    const char *hosts;          /* "host:port,..." as configured */
    const char *root;           /* absolute, no trailing slash ("/" for the top) */
    const char *auth;           /* "user:password" for digest auth, or NULL */
    const char *agent_name;     /* our documents' "agent": recognises our own stale nodes */
    int64_t session_timeout_ms; /* asked of the server */
};

/* Publishers retired by a reload, until their session is closed (zkpub_retire). */
TAILQ_HEAD(zkpub_list, zkpub);

/* Renders a node's document into OUT; called on the loop whenever the node is written. */
typedef void zkpub_render_fn(void *ud, struct sbuf *out);

/* The publisher's view for the stats socket and metrics. */
struct zkpub_stats {
    const char *state;  /* "connected", "connecting", "expired", "closed" */
    int64_t session_id; /* 0 without a session */
    uint64_t writes_ok;
    uint64_t writes_failed;
    uint64_t reconnects;
    uint64_t sessions_expired;
    uint64_t conflicts;
    int pending; /* requests in flight */
    int watches; /* watches registered now */
    int resumed; /* the session is the one the previous image handed over (upgrade) */
};

/*
 * A session as the client identifies it: what an upgrade hands to the next image so that it
 * resumes the session instead of starting a new one. The password is a secret: never logged,
 * never written to disk.
 */
struct zkpub_session {
    int64_t id;
    char passwd[16];
};

/* Returns 1 if A and B make the same publisher (same session, same nodes), 0 otherwise. */
int zkpub_settings_equal(const struct zkpub_settings *a, const struct zkpub_settings *b);

/* Creates a publisher with a copy of S on LOOP and starts connecting; never blocks. */
struct zkpub *zkpub_new(struct ev_loop *loop, const struct zkpub_settings *s);

/*
 * As zkpub_new(), presenting PREV (the session a previous image handed over; NULL: none) to
 * the server. If the server continues it, every node registered is first read back: one that
 * is ours is kept (same czxid) and rewritten only if its document differs in more than the
 * volatile keys; one that is missing is created. If the server answers with a new session,
 * the nodes are taken over as after a crash.
 */
struct zkpub *zkpub_new_resumed(struct ev_loop *loop, const struct zkpub_settings *s,
                                const struct zkpub_session *prev);

/*
 * Names the top-level keys of the documents whose change alone is no reason to rewrite a node
 * found in a resumed session (latency, counts). KEYS is NULL-terminated and must outlive Z.
 */
void zkpub_set_volatile_keys(struct zkpub *z, const char *const *keys);

/* Fills OUT with the client's current session: 0, or -1 when there is none. */
int zkpub_get_session(const struct zkpub *z, struct zkpub_session *out);

/* Returns 1 when no request is in flight nor waiting to be sent (an upgrade may exec). */
int zkpub_idle(const struct zkpub *z);

/* Makes sure the container ROOT/DIR is created once connected (as a node's own would be). */
void zkpub_add_dir(struct zkpub *z, const char *dir);

/*
 * Registers the ephemeral node ROOT/DIR/NAME, written with what RENDER(UD) renders. Nothing
 * is written before zkpub_node_changed(). The node belongs to Z: the caller's handle is valid
 * until zkpub_node_remove(), zkpub_shutdown(), zkpub_retire() or zkpub_free(). Returns NULL
 * once Z is shutting down.
 */
struct zknode *zkpub_node_new(struct zkpub *z, const char *dir, const char *name,
                              zkpub_render_fn *render, void *ud);

/*
 * N's document changed: it is rendered and written when the node is next free (at most one
 * request in flight per node; the latest document goes out when it completes). NULL is allowed.
 */
void zkpub_node_changed(struct zkpub *z, struct zknode *n);

/* Returns 1 when ZooKeeper holds N's latest document, 0 otherwise (and for NULL). */
int zkpub_node_published(const struct zknode *n);

/* The caller gives N up: its node is deleted, and RENDER is never called again. */
void zkpub_node_remove(struct zkpub *z, struct zknode *n);

/* Reads the publisher's counters. */
void zkpub_get_stats(const struct zkpub *z, struct zkpub_stats *out);

/*
 * Deletes our nodes and closes the session within BUDGET seconds, then calls DONE(ARG) on the
 * loop (shutdown).
 */
void zkpub_shutdown(struct zkpub *z, double budget, void (*done)(void *arg), void *arg);

/*
 * Lets Z go without waiting (a reload changed the settings): it writes nothing any more, and
 * its session is closed on a thread of its own, since zookeeper_close() waits for the server.
 * Z is on RETIRED until that returns, then frees itself on the loop.
 */
void zkpub_retire(struct zkpub *z, struct zkpub_list *retired);

/*
 * Releases everything; the session is closed if still open (waiting for that, and for a
 * retired publisher's close, which also takes it off its list). NULL is allowed.
 */
void zkpub_free(struct zkpub *z);

#endif
