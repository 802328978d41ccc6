/* zkpriv.h -- what the ZooKeeper publisher's files share (zkpub.c, zksession.c, zkguard.c,
 * zkresume.c, zkbatch.c, zkqueue.c): its structs and the functions they call across files. Not
 * for other modules. */
#ifndef SA_ZKPRIV_H
#define SA_ZKPRIV_H

#include <ev.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/queue.h>
#include <zookeeper/zookeeper.h>

#include "log.h"
#include "zkpub.h"
#include "zkqueue.h"

#define ZK_COMP        "zookeeper"
#define ZK_BATCH_MAX   128  /* creates and deletes sent as one multi request */
#define ZK_TICK_S      0.25 /* housekeeping and watchdog period: bounds growth between checks */
#define ZK_TICK_WARY_S 0.05 /* the period while connected without progress (a frame streams in) */

enum zkop {
    ZKOP_CONT_EXISTS = 0, /* does a persistent container exist? (a read, not a transaction) */
    ZKOP_CONT_CREATE,     /* create a persistent container */
    ZKOP_CREATE,          /* create our ephemeral node */
    ZKOP_CHECK,           /* get a node that already existed: whose is it? */
    ZKOP_TAKEOVER,        /* replace a stale node of a previous incarnation: delete + create */
    ZKOP_SET,             /* rewrite our node */
    ZKOP_DELETE,          /* delete our node (removed instance, shutdown) */
    ZKOP_EXISTS,          /* (re-)arm the node's exists-watch */
    ZKOP_UNWATCH,         /* drop the exists-watch of a node we give up */
    ZKOP_MULTI,           /* create, delete or take over several of our nodes in one request */
};

/*
 * A persistent container (ROOT and its ancestors, ROOT/agents, ROOT/CLUSTER). Owner: the
 * publisher's container list; freed by zkpub_free(). DONE is per session.
 */
struct zkcont {
    TAILQ_ENTRY(zkcont) link;
    char *path;
    int done;
    int busy;
    int fails;
    ev_tstamp retry_at;
};

/*
 * One ephemeral node we publish: an instance's or the agent's own. Owner: the publisher's
 * node list; created by zkpub_node_new(). It outlives its caller's handle after
 * zkpub_node_remove() as long as a request or a watch still refers to it, and is freed by
 * node_maybe_free() or zkpub_free(). The node pointer is the long-lived context of its
 * exists-watch: registered once per session, re-armed only when it fired.
 */
struct zknode {
    TAILQ_ENTRY(zknode) link;
    TAILQ_ENTRY(zknode) wait_link; /* on the publisher's list of nodes waiting for a watch */
    struct zkpub *z;
    zkpub_render_fn *render; /* the caller's; NULL once removed */
    void *ud;
    struct zkcont *parent;
    char *path;
    int removed;       /* wanted gone: delete, then free */
    int busy;          /* one request in flight, never more */
    int created;       /* holds our data under our current session */
    int watched;       /* exists-watch registered in the current session */
    int conflict;      /* held by another agent: not overwritten */
    int solo;          /* a multi with it failed: written alone in this session */
    int waiting;       /* on z->waiting: its watch is sent once the creates are answered */
    int lone;          /* a takeover multi with it failed: taken over alone in this session */
    int verify;        /* resumed session: read it back before writing (it may be ours) */
    int32_t version;   /* data version of our last write, -1 unknown */
    uint64_t want_gen; /* generation of the desired document (0: nothing to write yet) */
    uint64_t done_gen; /* generation ZooKeeper holds (0: none or unknown) */
    int fails;
    ev_tstamp retry_at;
};

/*
 * Creates, deletes and takeovers gathered during one loop iteration, sent as one multi request:
 * ZooKeeper spends far less server CPU per node on a multi of creates than on single creates
 * (docs/performance.md), and that is what publishing thousands of nodes at start-up or after a
 * new session, and deleting them at shutdown, is limited by. A takeover (a stale node of our
 * previous incarnation) is two operations, delete at the version we read and create, so that a
 * reader sees the node change owner and never sees it missing. Owner: the publisher while open
 * (z->batch, sent or discarded before the loop next sleeps), then its request (r->batch), freed
 * by zk_req_release(). The client reads OPS and writes RESULTS until the completion, so they
 * live here and not on a stack. Each node in it is busy.
 */
struct zkbatch {
    int count;     /* entries (nodes) */
    int nops;      /* operations: a takeover counts two */
    int deletes;   /* how many entries are deletes */
    int takeovers; /* how many entries are takeovers */
    struct zknode *nodes[ZK_BATCH_MAX];
    enum zkop kinds[ZK_BATCH_MAX];  /* ZKOP_CREATE, ZKOP_DELETE or ZKOP_TAKEOVER */
    int32_t versions[ZK_BATCH_MAX]; /* ZKOP_TAKEOVER: the stale node's version */
    uint64_t gens[ZK_BATCH_MAX];    /* document generation sent */
    char *docs[ZK_BATCH_MAX];       /* NULL for a delete */
    zoo_op_t ops[ZK_BATCH_MAX];
    zoo_op_result_t results[ZK_BATCH_MAX];
};

/*
 * One request in flight. Owner: the publisher's registry from the zoo_a* call until its
 * reply is handled on the loop, or until zookeeper_close() left it orphaned (ZOOKEEPER-2894)
 * and the publisher frees it. The client only ever sees its address as the completion data.
 */
struct zkreq {
    TAILQ_ENTRY(zkreq) link;
    struct zkpub *z;
    enum zkop op;
    struct zknode *node;
    struct zkcont *cont;
    struct zkbatch *batch; /* ZKOP_MULTI */
    uint64_t gen;          /* document generation sent */
};

/*
 * The publisher's life, one state at a time (the stats socket's zk_state in quotes):
 * - ZK_CLOSED: no handle, zookeeper_init() failed; the tick tries again ("closed");
 * - ZK_CONNECTING: a handle, not connected: its first connection, or after a loss
 *   ("connecting");
 * - ZK_CONNECTED: connected, with a session ("connected");
 * - ZK_STOPPING: shutting down, still connected, deleting our nodes ("connected"); any loss
 *   of the connection ends it;
 * - ZK_FINISHED: closed for good, shut down or retired ("closed").
 * A session that expires is replaced at once, so "expired" is never seen from the loop.
 */
enum zkstate { ZK_CLOSED = 0, ZK_CONNECTING, ZK_CONNECTED, ZK_STOPPING, ZK_FINISHED };

/*
 * The publisher. Owner: the agent (a->zk); created by zkpub_new(), released by
 * zkpub_free(). After zkpub_retire() it is on the retired list it was given and the closer
 * thread owns its handle (zh_closing) until zookeeper_close() returns; on_close_done then
 * frees it on the loop. Every other field is read and written on the loop thread only; the
 * client's threads reach it through the queue alone.
 */
struct zkpub {
    struct ev_loop *loop;
    struct zkpub_settings set; /* our copy: its strings point into set_buf */
    char *set_buf;
    const char *root; /* set.root, "" for "/" */
    zhandle_t *zh;
    char *hosts; /* numeric host:port list, resolved once at start */
    struct zkqueue queue;
    ev_timer tick;
    ev_timer finish_timer; /* shutdown deadline, or a zero-delay finish */
    ev_prepare flush;      /* sends the open batch before the loop sleeps; active with it */
    struct zkbatch *batch; /* writes gathered in this loop iteration, not sent yet */
    TAILQ_HEAD(, zkcont) conts;
    TAILQ_HEAD(, zknode) nodes;
    int nremoved; /* nodes with removed set: zkpub_node_new() searches them only if any */
    TAILQ_HEAD(, zknode) waiting; /* created nodes whose exists-watch waits for the creates */
    TAILQ_HEAD(, zkreq) reqs;
    struct ACL acl_entries[2];
    struct ACL_vector acl;
    enum zkstate state;
    uint64_t connects;    /* connections made: every one after the first is a reconnect */
    ev_tstamp lost_since; /* when the connection was lost (or the handle opened) */
    /* Our own back-off between handles (the client's reconnect pace is no defence against a
     * server that answers nonsense; see zkguard.c): */
    int open_fails;         /* handles given up in a row: the back-off's exponent */
    ev_tstamp open_at;      /* no new handle before this */
    ev_tstamp connected_at; /* when the current connection was established (0: none) */
    int short_conns;        /* connections in a row lost right after the handshake */
    int handle_connects;    /* connections made by the current handle */
    clientid_t resume;      /* session the next handle presents (client_id 0: a new one) */
    ev_tstamp last_reply;   /* last reply of the current handle (0: none yet) */
    /* The watchdog of the client's threads (CPU) and of the heap (zkguard.c): */
    ev_tstamp cpu_at;         /* wall time of the last CPU sample */
    double cpu_others;        /* CPU seconds of every thread but the loop's at that sample */
    int64_t heap_base;        /* heap in use when the publisher was last settled */
    ev_tstamp heap_at;        /* when heap_base was taken */
    pthread_t restarter;      /* closes zh_restarting off the loop (a restart) */
    zhandle_t *zh_restarting; /* the handle `restarter` owns; set while it runs */
    ev_async restart_done;    /* `restarter` returned */
    int64_t session_id;
    /*
     * The session the previous image handed over (an upgrade; client_id 0: none): every
     * handle presents it until a server answers the handshake, confirming it (then `resumed`)
     * or not (then the nodes are taken over), or until it is given up as lost. Wiped then.
     */
    clientid_t handed;
    int resumed;                      /* the current session is the handed-over one */
    const char *const *volatile_keys; /* zkpub_set_volatile_keys(); NULL: none */
    int pending;
    int creates;   /* create and multi requests in flight */
    int retry_due; /* something failed and waits for a retry: the tick reconciles all */
    int watches;
    uint64_t writes_ok;
    uint64_t writes_failed;
    uint64_t reconnects;
    uint64_t sessions_expired;
    uint64_t conflicts;
    pthread_t closer;                /* closes zh_closing, then signals close_done */
    zhandle_t *zh_closing;           /* the handle `closer` owns; set while it runs */
    ev_async close_done;             /* `closer` returned: free the publisher on the loop */
    struct zkpub_list *retired;      /* the list it is on after zkpub_retire(), or NULL */
    TAILQ_ENTRY(zkpub) retired_link; /* on *retired */
    void (*done)(void *);
    void *done_arg;
};

/* ---- zkqueue.c: the client's threads (completions and watchers): copy, queue, wake ---- */

void zkcb_string(int rc, const char *value, const void *data);
void zkcb_stat(int rc, const struct Stat *st, const void *data);
void zkcb_void(int rc, const void *data);
void zkcb_data(int rc, const char *value, int len, const struct Stat *st, const void *data);
/* The handle's global watcher: queues its session events. */
void zkcb_session(zhandle_t *zh, int type, int state, const char *path, void *ctx);
/* A node's exists-watch (the node is CTX): queues what fired. */
void zkcb_node_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx);

/* ---- zksession.c: the session's life ---- */

/* The client's log callback (its threads): each line becomes one of ours, "zkclient". */
void zkcb_log(const char *msg);
/* Writes a line of ours at LEVEL, at most once a minute for the same text (it may repeat fast). */
void zk_log_limited(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define zk_warn_limited(...) zk_log_limited(LOGL_WARN, __VA_ARGS__)
/*
 * After zookeeper_close() returned (on the loop, a closer or the restarter thread): drains the
 * queue, releases the requests whose completions the client dropped, forgets the session.
 */
void zk_after_close(struct zkpub *z);

/* ---- zkguard.c: defences against a server that answers nonsense, and our back-off ---- */

/* Starts the restarter's ev_async (zkpub_new). */
void zk_guard_init(struct zkpub *z);
/* Waits for a handle being given up to close, then stops the ev_async (zkpub_free). */
void zk_guard_stop(struct zkpub *z);
/* A handle was opened: the watchdog's heap and CPU references start now. */
void zk_guard_open(struct zkpub *z);
/*
 * The client reports a connection (event E): returns 1 if its handshake is not one we can use
 * (the handle is then given up with our back-off), 0 after starting the watchdog's wary ticks.
 */
int zk_guard_connected(struct zkpub *z, const struct zkev *e);
/*
 * The connection, made at CONNECTED_AT (0: never), was lost: returns 1 if it was one too many
 * lost right after the handshake and the handle was given up with our back-off.
 */
int zk_guard_lost(struct zkpub *z, ev_tstamp connected_at);
/* The tick with a handle open: the watchdog, the tick's pace, the end of our back-off. Returns 1
 * if the handle was given up. */
int zk_guard_tick(struct zkpub *z, ev_tstamp now);
/*
 * Gives the current handle up (closed on a thread of its own) and opens the next one after our
 * back-off. KEEP: the next handle presents the current session; KICK: its sockets are shut down
 * first (a stuck connection). Returns the delay.
 */
ev_tstamp zk_backoff_restart(struct zkpub *z, int keep, int kick);

/* ---- zkresume.c: the session the previous image handed over (upgrade) ---- */

/* Forgets the session CID: no id, and the password wiped. */
void zk_cid_wipe(clientid_t *cid);
/* Takes the session PREV handed over (NULL or id 0: none) for the handles to present. */
void zk_handed_take(struct zkpub *z, const struct zkpub_session *prev);
/* The handed-over session is answered for (confirmed, refused or given up): forgets it. */
void zk_handed_done(struct zkpub *z);
/*
 * A server gave us a new session (z->session_id): returns 1 if it is the handed-over one, now
 * resumed (logged; every node is read back before it is written). Forgets the handed session.
 */
int zk_handed_answered(struct zkpub *z);
/* The session expired: says so if it was the handed-over one, and forgets that. */
void zk_handed_expired(struct zkpub *z);
/* Returns 1 if DATA, LEN bytes read back from N in a resumed session, says what N's document
 * says, volatile keys aside. */
int zk_doc_same(const struct zkpub *z, struct zknode *n, const char *data, int len);

/* ---- zkpub.c: requests, nodes and containers ---- */

/* The retry delay after FAILS failures in a row: 0.5 s doubling to 30 s. */
ev_tstamp zk_backoff(int fails);
/* Registers a request of OP for node N or container C (either may be NULL), which is busy. */
struct zkreq *zk_req_new(struct zkpub *z, enum zkop op, struct zknode *n, struct zkcont *c);
/* Forgets R: its node or container is free for the next request (frees its batch). */
void zk_req_release(struct zkreq *r);
/* A zoo_a* call for R returned RC: 0, or -1 after releasing R (its completion never runs). */
int zk_req_sent(struct zkreq *r, int rc);
/* Returns the container PATH, added to the publisher's list if new. */
struct zkcont *zk_cont_get(struct zkpub *z, const char *path);
/* Renders N's current document into SB (its owner's render callback). */
void zk_node_render(struct zknode *n, struct sbuf *sb);
/* Creates (OP ZKOP_CREATE) or rewrites (ZKOP_SET) N with DOC, LEN bytes of generation GEN. */
void zk_node_send_text(struct zknode *n, enum zkop op, const char *doc, int len, uint64_t gen);
/* Deletes N (OP ZKOP_DELETE) at VERSION (-1: any). */
void zk_node_send_delete(struct zknode *n, enum zkop op, int version);
/* ZooKeeper confirmed our create of N with the document of generation GEN. */
void zk_node_created(struct zknode *n, uint64_t gen);
/* Marks N wanted gone, or wanted again. */
void zk_node_set_removed(struct zknode *n, int removed);
/* Brings N one request closer to what it should be. */
void zk_node_reconcile(struct zknode *n);
/* Brings every container and node one request closer to what it should be. */
void zk_reconcile_all(struct zkpub *z);
/* Once every create is answered, sends the watches that waited for them. */
void zk_arm_waiting(struct zkpub *z);
/* The session is gone: nothing we created or watched survives in it. */
void zk_forget_session(struct zkpub *z);
/* Returns 1 when requests can be sent: a handle, connected, with a session. */
int zk_ready(const struct zkpub *z);
/* Returns 1 when none of our nodes is left in ZooKeeper nor being deleted. */
int zk_all_deleted(const struct zkpub *z);
/* A request's completion E was popped on the loop. */
void zk_on_reply(struct zkpub *z, const struct zkev *e);
/* N's exists-watch fired with TYPE (an event of the current handle). */
void zk_on_watch(struct zkpub *z, struct zknode *n, int type);

/* ---- zkbatch.c: creates and deletes of one loop iteration in one multi ---- */

/* Adds N's create (OP ZKOP_CREATE) or delete (ZKOP_DELETE) to the open batch. */
void zk_batch_add(struct zknode *n, enum zkop op);
/* Replaces N's stale node (of our previous incarnation, at VERSION) by ours in one multi. */
void zk_batch_takeover(struct zknode *n, int32_t version);
/* Drops the open batch unsent: its nodes are idle again. */
void zk_batch_discard(struct zkpub *z);
/* Frees B; RELEASE: its nodes are idle again. */
void zk_batch_free(struct zkbatch *b, int release);
/* A multi completed with RC: the outcome of each of its nodes. */
void zk_batch_reply(struct zkpub *z, struct zkbatch *b, int rc);
/* The publisher's ev_prepare: sends the open batch before the loop sleeps. */
void zk_batch_flush(struct ev_loop *loop, ev_prepare *w, int revents);

#endif
