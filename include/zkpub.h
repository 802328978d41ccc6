/* zkpub.h -- publishing instance states to ZooKeeper: session, containers, ephemeral nodes,
 * watches. */
#ifndef SA_ZKPUB_H
#define SA_ZKPUB_H

#include <stdint.h>

struct agent;
struct inst;

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
};

/* Creates the publisher for A's [zookeeper] settings and starts connecting; never blocks. */
struct zkpub *zkpub_new(struct agent *a);

/* INST was added or its state/role changed: publish its current state when possible. */
void zkpub_update(struct zkpub *z, struct inst *inst);

/* INST is going away (reload): delete its node; INST may be freed right after this returns. */
void zkpub_remove(struct zkpub *z, struct inst *inst);

/* Reads the publisher's counters. */
void zkpub_get_stats(const struct zkpub *z, struct zkpub_stats *out);

/* Deletes our nodes and closes the session, then calls DONE(ARG) on the loop (shutdown). */
void zkpub_shutdown(struct zkpub *z, void (*done)(void *arg), void *arg);

/*
 * Lets Z go without waiting (a reload changed the settings): its nodes leave the instances at
 * once, and its session is closed on a thread of its own, since zookeeper_close() waits for
 * the server; Z is on A's zk_retired list until that returns, then freed on the loop.
 */
void zkpub_retire(struct zkpub *z);

/* Releases everything; the session is closed if still open (waiting for that, and for a
 * retired publisher's close). NULL is allowed. */
void zkpub_free(struct zkpub *z);

#endif
