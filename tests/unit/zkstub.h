/*
 * zkstub.h -- a stand-in for libzookeeper_mt in unit tests: every zoo_a* call is recorded
 * (operation, path, data, version, and the ops of a multi) and left pending; the test then
 * answers it with the rc, stat and data it chooses, which runs the stored completion on the
 * test's thread. Session events and watches are driven the same way. Nothing talks to a
 * server and nothing runs on a thread of its own.
 *
 * The code under test only queues what a completion sees and wakes its loop, so a test
 * answers, then runs the loop. A handle closed with zookeeper_close() drops its pending calls
 * without running them, as the real client may (ZOOKEEPER-2894); handles and records live
 * until zks_reset(), so addresses are never reused within a test.
 */
#ifndef SA_ZKSTUB_H
#define SA_ZKSTUB_H

#include <stdint.h>
#include <zookeeper/zookeeper.h>

enum zks_op {
    ZKS_ANY = 0,
    ZKS_CREATE,
    ZKS_DELETE,
    ZKS_SET,
    ZKS_EXISTS, /* zoo_aexists and zoo_awexists (watcher set for the latter) */
    ZKS_GET,    /* zoo_aget and zoo_awget */
    ZKS_MULTI,
    ZKS_REMOVE_WATCHES,
    ZKS_CHECK, /* a multi's check op */
};

enum zks_state { ZKS_PENDING = 0, ZKS_DONE, ZKS_DROPPED };

/* One operation: a call's own, or one of a multi's. Strings are the stub's copies. */
struct zks_sub {
    enum zks_op op;
    char *path;
    char *data; /* create/set: NUL-terminated copy of the bytes, or NULL */
    int datalen;
    int version; /* delete/set */
    int flags;   /* create */
};

/* One recorded zoo_a* call. Owner: the stub, until zks_reset(). */
struct zks_call {
    int seq; /* order of the call among all calls */
    zhandle_t *zh;
    enum zks_state state;
    struct zks_sub op;  /* for a multi: op ZKS_MULTI, no path */
    watcher_fn watcher; /* exists/get with a watcher, or the one to remove */
    void *watcher_ctx;
    int watch_fired; /* its watch was triggered by zks_fire_watch() */
    void_completion_t vc;
    stat_completion_t sc;
    string_completion_t strc;
    data_completion_t dc;
    const void *ctx;
    int nops; /* multi */
    struct zks_sub *ops;
    zoo_op_result_t *results;
};

/* Forgets every call and handle (frees them all); call at the end of each test. */
void zks_reset(void);

/* The handle opened last and not closed, or NULL; and how many were ever opened. */
zhandle_t *zks_handle(void);
int zks_handles_opened(void);

/* All calls in order: how many, and the I-th. */
int zks_ncalls(void);
struct zks_call *zks_call(int i);

/*
 * The oldest pending call of OP (ZKS_ANY: any) on PATH (NULL: any), or NULL. A multi
 * matches OP ZKS_MULTI, and also OP/PATH when one of its ops does.
 */
struct zks_call *zks_pending(enum zks_op op, const char *path);

/* How many pending calls zks_pending() would choose from. */
int zks_npending(enum zks_op op, const char *path);

/*
 * How many operations of OP on PATH (NULL: any) were ever sent, on any handle, counting each
 * op inside a multi too. From call index FROM on.
 */
int zks_count(enum zks_op op, const char *path, int from);

/* The data of the last create or set of PATH sent (inside a multi too), or NULL. */
const char *zks_last_written(const char *path);

/*
 * Answers C with RC, running its completion now. A stat (for stat and data completions, on
 * ZOK) has OWNER as its ephemeralOwner and VERSION; DATA is what a get returns. A multi's
 * results are all ZOK on ZOK, else RC for the first op and ZRUNTIMEINCONSISTENCY for the
 * rest. Fails the test if C is not pending.
 */
void zks_reply(struct zks_call *c, int rc);
void zks_reply_stat(struct zks_call *c, int rc, int64_t owner, int32_t version);
void zks_reply_data(struct zks_call *c, int rc, const char *data, int64_t owner, int32_t version);

/*
 * Delivers a session event of STATE to ZH's global watcher. With ZOO_CONNECTED_STATE,
 * SESSION_ID becomes what zoo_client_id(ZH) returns.
 */
void zks_session_event(zhandle_t *zh, int state, int64_t session_id);

/*
 * Fires the exists-watch registered on PATH on the current handle (the latest not fired)
 * with event TYPE; returns 1, or 0 if there is none.
 */
int zks_fire_watch(const char *path, int type);

#endif
