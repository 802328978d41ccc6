/*
 * test_zkpub.c -- unit tests of the publisher's node reconciler (agent/zk*.c) against a stub of
 * the ZooKeeper client (zkstub.c): which zoo_a* calls go out, with which paths and documents,
 * when each is answered with a chosen result. Asserted only through zkpub.h and what the
 * stub recorded: coalescing, retries, the answers to ZNODEEXISTS (ours, takeover, conflict),
 * multi batching, session expiry, and resuming a session an upgrade handed over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "util.h"
#include "zkpub.h"
#include "zkstub.h"

#define ROOT      "/sa"
#define CDIR      "c1"
#define AGENT     "agent-a"
#define SID       ((int64_t)0x1001) /* our session */
#define SID2      ((int64_t)0x1002) /* our session after an expiry */
#define OLD_SID   ((int64_t)0x0999) /* a previous incarnation's session */
#define OTHER_SID ((int64_t)0x2002) /* another agent's session */
#define MAXN      300
#define BATCH_MAX 128 /* docs/zookeeper.md: multi requests of up to 128 operations */

struct fix;

/* One node as its owner sees it: the document's version, which the render callback writes. */
struct tnode {
    struct fix *f;
    int v;
    char name[16];
    char path[64];
    struct zknode *zn;
};

struct fix {
    struct ev_loop *loop;
    struct zkpub *z;
    struct tnode nodes[MAXN];
};

static void
render(void *ud, struct sbuf *out)
{
    struct tnode *t = ud;

    sbuf_printf(out, "{\"agent\":\"" AGENT "\",\"name\":\"%s\",\"v\":%d}", t->name, t->v);
}

/* The document node T renders at version V. */
static const char *
doc(const struct tnode *t, int v)
{
    static char buf[128];

    snprintf(buf, sizeof(buf), "{\"agent\":\"" AGENT "\",\"name\":\"%s\",\"v\":%d}", t->name, v);
    return buf;
}

/* Runs the loop a few times without blocking: the queue's async, then the batch's prepare. */
static void
run(struct fix *f)
{
    for (int i = 0; i < 3; i++)
        ev_run(f->loop, EVRUN_NOWAIT);
}

static struct zkpub_stats
stats(struct fix *f)
{
    struct zkpub_stats s;

    zkpub_get_stats(f->z, &s);
    return s;
}

/* A container is ROOT or ROOT/CDIR: fewer than three slashes. */
static int
is_container(const char *path)
{
    int slashes = 0;

    for (const char *p = path; p && *p; p++)
        slashes += *p == '/';
    return path != NULL && slashes < 3;
}

/* Answers every request about a container as if it existed or was just created. */
static void
settle_containers(struct fix *f)
{
    for (int round = 0; round < 10; round++) {
        int answered = 0;

        for (int i = 0; i < zks_ncalls(); i++) {
            struct zks_call *c = zks_call(i);

            if (c->state != ZKS_PENDING || !is_container(c->op.path))
                continue;
            if (c->op.op == ZKS_GET)
                zks_reply_data(c, ZOK, "", 0, 0);
            else
                zks_reply_stat(c, ZOK, 0, 0);
            answered++;
        }
        run(f);
        if (answered == 0)
            return;
    }
    fail_msg("containers still being asked about after 10 rounds");
}

/* The session SESSION is established on the current handle; containers are made. */
static void
connect_session(struct fix *f, int64_t session)
{
    assert_non_null(zks_handle());
    zks_session_event(zks_handle(), ZOO_CONNECTED_STATE, session);
    run(f);
    settle_containers(f);
}

static int
setup(void **state)
{
    struct fix *f = xcalloc(1, sizeof(*f));
    struct zkpub_settings s = {.hosts = "127.0.0.1:2181",
                               .root = ROOT,
                               .auth = NULL,
                               .agent_name = AGENT,
                               .session_timeout_ms = 10000};

    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    f->z = zkpub_new(f->loop, &s);
    assert_non_null(f->z);
    zkpub_add_dir(f->z, CDIR);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    zkpub_free(f->z);
    zks_reset();
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

/* Registers node I (ROOT/CDIR/nI) at document version 1 and marks it changed. */
static struct tnode *
node_add(struct fix *f, int i)
{
    struct tnode *t = &f->nodes[i];

    t->f = f;
    t->v = 1;
    snprintf(t->name, sizeof(t->name), "n%d", i);
    snprintf(t->path, sizeof(t->path), ROOT "/" CDIR "/n%d", i);
    t->zn = zkpub_node_new(f->z, CDIR, t->name, render, t);
    assert_non_null(t->zn);
    zkpub_node_changed(f->z, t->zn);
    return t;
}

/* The pending request of OP on T's path, which must exist (LINE: the caller's). */
static struct zks_call *
pending_at(struct tnode *t, enum zks_op op, int line)
{
    struct zks_call *c = zks_pending(op, t->path);

    if (c == NULL)
        fail_msg("line %d: no pending request of op %d on %s", line, (int)op, t->path);
    return c;
}
#define pending(t, op) pending_at(t, op, __LINE__)

/* Answers every pending request ZOK (an exists as our node at version 0), until none is left. */
static void
answer_all(struct fix *f)
{
    struct zks_call *c;

    for (int n = 0; (c = zks_pending(ZKS_ANY, NULL)) != NULL; n++) {
        if (n > 10000)
            fail_msg("requests keep coming");
        assert_ptr_equal(c->zh, zks_handle());
        if (c->op.op == ZKS_EXISTS)
            zks_reply_stat(c, ZOK, zoo_client_id(c->zh)->client_id, 0);
        else
            zks_reply(c, ZOK);
        run(f);
    }
}

/* Answers T's pending exists-watch as our node at VERSION (our last write's). */
static void
answer_exists(struct fix *f, struct tnode *t, int32_t version)
{
    struct zks_call *c = pending(t, ZKS_EXISTS);

    assert_non_null(c->watcher);
    zks_reply_stat(c, ZOK, zoo_client_id(zks_handle())->client_id, version);
    run(f);
}

/* Registers node I and takes it through its create and its watch: published. */
static struct tnode *
node_published(struct fix *f, int i)
{
    struct tnode *t = node_add(f, i);

    run(f);
    zks_reply(pending(t, ZKS_CREATE), ZOK);
    run(f);
    answer_exists(f, t, 0);
    assert_true(zkpub_node_published(t->zn));
    return t;
}

/* (a) Changes while the create is in flight: one create, then one set with the latest. */
static void
test_coalescing(void **state)
{
    struct fix *f = *state;
    struct tnode *t;
    struct zks_call *c;

    connect_session(f, SID);
    t = node_add(f, 0);
    run(f);
    c = pending(t, ZKS_CREATE);
    assert_int_equal(c->op.flags, ZOO_EPHEMERAL);
    assert_string_equal(c->op.data, doc(t, 1));
    for (int v = 2; v <= 6; v++) {
        t->v = v;
        zkpub_node_changed(f->z, t->zn);
        run(f);
        assert_false(zkpub_node_published(t->zn));
    }
    assert_int_equal(zks_count(ZKS_ANY, t->path, 0), 1); /* nothing more while in flight */
    assert_int_equal(stats(f).pending, 1);

    zks_reply(c, ZOK);
    run(f);
    assert_false(zkpub_node_published(t->zn)); /* ZooKeeper holds version 1, we want 6 */
    c = pending(t, ZKS_SET);
    assert_string_equal(c->op.data, doc(t, 6));
    assert_int_equal(zks_count(ZKS_CREATE, t->path, 0), 1);
    assert_int_equal(zks_count(ZKS_SET, t->path, 0), 1);

    zks_reply_stat(c, ZOK, SID, 1);
    run(f);
    assert_true(zkpub_node_published(t->zn));
    answer_exists(f, t, 1);
    assert_true(zkpub_node_published(t->zn));
    assert_int_equal(zks_count(ZKS_CREATE, t->path, 0), 1);
    assert_int_equal(zks_count(ZKS_SET, t->path, 0), 1);
    assert_int_equal(stats(f).writes_ok, 2);
    assert_int_equal(stats(f).pending, 0);
    assert_int_equal(stats(f).watches, 1);
}

/* (b) A create whose reply was lost is sent again once the connection is back. */
static void
test_create_connection_loss(void **state)
{
    struct fix *f = *state;
    struct tnode *t;
    zhandle_t *zh;

    connect_session(f, SID);
    zh = zks_handle();
    t = node_add(f, 0);
    run(f);
    /* The connection drops: the client says it is reconnecting and fails what was in flight. */
    zks_session_event(zh, ZOO_CONNECTING_STATE, 0);
    run(f);
    zks_reply(pending(t, ZKS_CREATE), ZCONNECTIONLOSS);
    run(f);
    assert_string_equal(stats(f).state, "connecting");
    tu_run_for(f->loop, 0.35); /* longer than the tick: no retry while not connected */
    assert_int_equal(zks_count(ZKS_CREATE, t->path, 0), 1);
    assert_false(zkpub_node_published(t->zn));

    zks_session_event(zh, ZOO_CONNECTED_STATE, SID); /* the same session */
    run(f);
    settle_containers(f);
    assert_int_equal(zks_count(ZKS_CREATE, t->path, 0), 2);
    assert_string_equal(pending(t, ZKS_CREATE)->op.data, doc(t, 1));
    zks_reply(pending(t, ZKS_CREATE), ZOK);
    run(f);
    assert_true(zkpub_node_published(t->zn));
    assert_int_equal(stats(f).reconnects, 1);
    assert_int_equal(stats(f).sessions_expired, 0);
    assert_int_equal(zks_handles_opened(), 1);
}

/* (b) A set refused for good (ZNOAUTH) is retried after the back-off, not at once. */
static void
test_set_backoff(void **state)
{
    struct fix *f = *state;
    struct tnode *t;
    double failed_at;

    connect_session(f, SID);
    t = node_published(f, 0);
    t->v = 2;
    zkpub_node_changed(f->z, t->zn);
    run(f);
    zks_reply(pending(t, ZKS_SET), ZNOAUTH);
    failed_at = tu_now_s();
    run(f);
    assert_int_equal(stats(f).writes_failed, 1);
    assert_false(zkpub_node_published(t->zn));

    tu_run_for(f->loop, 0.3); /* a tick passes, the 0.5 s back-off does not */
    assert_int_equal(zks_count(ZKS_SET, t->path, 0), 1);
    TU_RUN_UNTIL(f->loop, zks_pending(ZKS_SET, t->path) != NULL);
    assert_true(tu_now_s() - failed_at >= 0.45);
    assert_int_equal(zks_count(ZKS_SET, t->path, 0), 2);
    assert_string_equal(pending(t, ZKS_SET)->op.data, doc(t, 2));
    zks_reply_stat(pending(t, ZKS_SET), ZOK, SID, 1);
    run(f);
    assert_true(zkpub_node_published(t->zn));
    assert_int_equal(stats(f).writes_failed, 1);
}

/* Registers node 0, answers its create ZNODEEXISTS; returns with its get pending. */
static struct tnode *
create_exists(struct fix *f)
{
    struct tnode *t;

    connect_session(f, SID);
    t = node_add(f, 0);
    run(f);
    zks_reply(pending(t, ZKS_CREATE), ZNODEEXISTS);
    run(f);
    assert_false(zkpub_node_published(t->zn));
    pending(t, ZKS_GET);
    return t;
}

/* (c) The node exists under our own session (a create whose reply was lost): rewritten. */
static void
test_exists_ours(void **state)
{
    struct fix *f = *state;
    struct tnode *t = create_exists(f);

    zks_reply_data(pending(t, ZKS_GET), ZOK, "{\"agent\":\"" AGENT "\"}", SID, 3);
    run(f);
    assert_string_equal(pending(t, ZKS_SET)->op.data, doc(t, 1));
    zks_reply_stat(pending(t, ZKS_SET), ZOK, SID, 4);
    run(f);
    assert_true(zkpub_node_published(t->zn));
    assert_int_equal(zks_count(ZKS_DELETE, t->path, 0), 0);
    assert_int_equal(zks_count(ZKS_CREATE, t->path, 0), 1);
    assert_int_equal(stats(f).conflicts, 0);
}

/*
 * (c) The node is a previous incarnation's (our agent name, another session): taken over.
 * Delete then create, or one multi of both: either way it is deleted at the version read,
 * then created with our document.
 */
static void
test_exists_takeover(void **state)
{
    struct fix *f = *state;
    struct tnode *t = create_exists(f);
    struct zks_call *c;
    int deletes = 0;

    zks_reply_data(pending(t, ZKS_GET), ZOK, "{\"agent\":\"" AGENT "\",\"v\":9}", OLD_SID, 5);
    run(f);
    for (int step = 0; step < 6 && (c = zks_pending(ZKS_ANY, t->path)) != NULL; step++) {
        if (c->op.op == ZKS_EXISTS)
            zks_reply_stat(c, ZOK, SID, 0);
        else
            zks_reply(c, ZOK);
        run(f);
    }
    assert_null(zks_pending(ZKS_ANY, t->path));
    assert_true(zkpub_node_published(t->zn));
    assert_string_equal(zks_last_written(t->path), doc(t, 1));
    for (int i = 0; i < zks_ncalls(); i++) {
        const struct zks_call *k = zks_call(i);
        const struct zks_sub *ops = k->op.op == ZKS_MULTI ? k->ops : &k->op;
        int nops = k->op.op == ZKS_MULTI ? k->nops : 1;

        for (int j = 0; j < nops; j++) {
            if (ops[j].op == ZKS_DELETE && strcmp(ops[j].path, t->path) == 0) {
                assert_int_equal(ops[j].version, 5);
                /* the create that follows is in the same multi, or a later call */
                assert_true(zks_count(ZKS_CREATE, t->path, i) >= 1);
                deletes++;
            }
        }
    }
    assert_int_equal(deletes, 1);
    assert_int_equal(stats(f).conflicts, 0);
    assert_int_equal(stats(f).writes_failed, 0);
}

/* (c) The node is another agent's: a conflict, not overwritten, watched until released. */
static void
test_exists_conflict(void **state)
{
    struct fix *f = *state;
    struct tnode *t = create_exists(f);
    int calls;

    zks_reply_data(pending(t, ZKS_GET), ZOK, "{\"agent\":\"agent-b\",\"v\":1}", OTHER_SID, 2);
    run(f);
    assert_int_equal(stats(f).conflicts, 1);
    assert_non_null(pending(t, ZKS_EXISTS)->watcher);
    zks_reply_stat(pending(t, ZKS_EXISTS), ZOK, OTHER_SID, 2);
    run(f);
    calls = zks_ncalls();
    tu_run_for(f->loop, 0.35); /* a tick: nothing is retried against it */
    assert_int_equal(zks_ncalls(), calls);
    assert_false(zkpub_node_published(t->zn));
    assert_int_equal(zks_count(ZKS_SET, t->path, 0), 0);
    assert_int_equal(zks_count(ZKS_DELETE, t->path, 0), 0);
    assert_int_equal(zks_count(ZKS_CREATE, t->path, 0), 1);
    assert_int_equal(stats(f).watches, 1);

    /* The other agent lets go: ours at once. */
    assert_true(zks_fire_watch(t->path, ZOO_DELETED_EVENT));
    run(f);
    assert_string_equal(pending(t, ZKS_CREATE)->op.data, doc(t, 1));
    zks_reply(pending(t, ZKS_CREATE), ZOK);
    run(f);
    assert_true(zkpub_node_published(t->zn));
    assert_int_equal(stats(f).conflicts, 1);
}

/* (d) 300 nodes in one loop iteration: multis of at most 128 creates, each node once. */
static void
test_batching(void **state)
{
    struct fix *f = *state;
    int multis, ops = 0;

    connect_session(f, SID);
    for (int i = 0; i < MAXN; i++)
        node_add(f, i);
    run(f);
    multis = zks_count(ZKS_MULTI, NULL, 0);
    assert_int_equal(multis, (MAXN + BATCH_MAX - 1) / BATCH_MAX);
    for (int i = 0; i < zks_ncalls(); i++) {
        const struct zks_call *c = zks_call(i);

        if (c->op.op != ZKS_MULTI)
            continue;
        assert_true(c->nops <= BATCH_MAX);
        ops += c->nops;
        for (int j = 0; j < c->nops; j++) {
            assert_int_equal(c->ops[j].op, ZKS_CREATE);
            assert_int_equal(c->ops[j].flags, ZOO_EPHEMERAL);
        }
    }
    assert_int_equal(ops, MAXN);
    for (int i = 0; i < MAXN; i++) {
        assert_int_equal(zks_count(ZKS_CREATE, f->nodes[i].path, 0), 1);
        assert_string_equal(zks_last_written(f->nodes[i].path), doc(&f->nodes[i], 1));
    }
    assert_int_equal(zks_npending(ZKS_ANY, NULL), multis); /* only the multis */

    /* Answered one by one: the watches wait for the last create. */
    for (int m = 0; m < multis; m++) {
        assert_int_equal(zks_npending(ZKS_EXISTS, NULL), 0);
        zks_reply(zks_pending(ZKS_MULTI, NULL), ZOK);
        run(f);
    }
    for (int i = 0; i < MAXN; i++)
        assert_true(zkpub_node_published(f->nodes[i].zn));
    assert_int_equal(zks_npending(ZKS_EXISTS, NULL), MAXN);
    for (int i = 0; i < MAXN; i++)
        answer_exists(f, &f->nodes[i], 0);
    assert_int_equal(stats(f).watches, MAXN);
    assert_int_equal(stats(f).writes_ok, MAXN);
    assert_int_equal(zks_count(ZKS_CREATE, NULL, 0) - zks_count(ZKS_CREATE, ROOT, 0) -
                         zks_count(ZKS_CREATE, ROOT "/" CDIR, 0),
                     MAXN);
}

/* (e) An expired session: a new handle, and every node created again with its current state. */
static void
test_session_expiry(void **state)
{
    struct fix *f = *state;
    zhandle_t *old;
    int mark;

    connect_session(f, SID);
    for (int i = 0; i < 3; i++)
        node_add(f, i);
    run(f);
    answer_all(f);
    for (int i = 0; i < 3; i++)
        assert_true(zkpub_node_published(f->nodes[i].zn));
    assert_int_equal(stats(f).watches, 3);

    old = zks_handle();
    zks_session_event(old, ZOO_EXPIRED_SESSION_STATE, 0);
    run(f);
    assert_int_equal(zks_handles_opened(), 2);
    assert_non_null(zks_handle());
    assert_ptr_not_equal(zks_handle(), old);
    assert_int_equal(stats(f).sessions_expired, 1);
    for (int i = 0; i < 3; i++)
        assert_false(zkpub_node_published(f->nodes[i].zn));
    f->nodes[1].v = 2; /* changed while there was no session */
    zkpub_node_changed(f->z, f->nodes[1].zn);
    run(f);

    mark = zks_ncalls();
    connect_session(f, SID2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(zks_count(ZKS_CREATE, f->nodes[i].path, mark), 1);
    assert_string_equal(zks_last_written(f->nodes[1].path), doc(&f->nodes[1], 2));
    for (int i = 0; i < zks_ncalls(); i++) /* nothing but creates and watches */
        assert_true(zks_call(i)->seq < mark || zks_call(i)->op.op == ZKS_MULTI ||
                    zks_call(i)->op.op == ZKS_CREATE || zks_call(i)->op.op == ZKS_EXISTS);
    answer_all(f);
    for (int i = 0; i < 3; i++)
        assert_true(zkpub_node_published(f->nodes[i].zn));
    assert_int_equal(stats(f).session_id, SID2);
    assert_int_equal(stats(f).watches, 3);
}

/* Replaces F's publisher by one resuming HANDED, the session a previous image handed over. */
static void
reopen_handed(struct fix *f, int64_t handed)
{
    struct zkpub_settings s = {.hosts = "127.0.0.1:2181",
                               .root = ROOT,
                               .auth = NULL,
                               .agent_name = AGENT,
                               .session_timeout_ms = 10000};
    struct zkpub_session prev = {.id = handed};

    memcpy(prev.passwd, "0123456789abcdef", sizeof(prev.passwd));
    zkpub_free(f->z);
    f->z = zkpub_new_resumed(f->loop, &s, &prev);
    zkpub_add_dir(f->z, CDIR);
    assert_int_equal(zoo_client_id(zks_handle())->client_id, handed);
    assert_memory_equal(zoo_client_id(zks_handle())->passwd, "0123456789abcdef", 16);
}

/*
 * (f) An upgrade's session is resumed: every node is read back before anything is written;
 * ours and equal is left alone (no create, no set), ours but different is set in place, and
 * each is watched again.
 */
static void
test_resume_reads_back(void **state)
{
    struct fix *f = *state;
    struct tnode *t0, *t1;

    reopen_handed(f, SID);
    t0 = node_add(f, 0);
    t1 = node_add(f, 1);
    t1->v = 2; /* changed since the previous image wrote it */
    connect_session(f, SID);
    assert_int_equal(stats(f).resumed, 1);
    assert_int_equal(zks_count(ZKS_CREATE, NULL, 0), 0);
    zks_reply_data(pending(t0, ZKS_GET), ZOK, doc(t0, 1), SID, 4);
    zks_reply_data(pending(t1, ZKS_GET), ZOK, doc(t1, 1), SID, 4);
    run(f);
    assert_null(zks_pending(ZKS_SET, t0->path));
    assert_string_equal(pending(t1, ZKS_SET)->op.data, doc(t1, 2));
    zks_reply_stat(pending(t1, ZKS_SET), ZOK, SID, 5);
    run(f);
    answer_exists(f, t0, 4);
    answer_exists(f, t1, 5);
    assert_null(zks_pending(ZKS_ANY, NULL));
    assert_true(zkpub_node_published(t0->zn));
    assert_true(zkpub_node_published(t1->zn));
    assert_int_equal(zks_count(ZKS_CREATE, NULL, 0), 0);
    assert_int_equal(zks_count(ZKS_DELETE, NULL, 0), 0);
    assert_int_equal(zks_count(ZKS_SET, t0->path, 0), 0);
    assert_int_equal(zks_count(ZKS_SET, t1->path, 0), 1);
    assert_int_equal(stats(f).watches, 2);
    assert_int_equal(stats(f).sessions_expired, 0);
}

/*
 * (g) The hardening does not drop the handed-over session: a handshake it rejects (a session
 * id of 0) gives the handle up with back-off, and the next handle presents the handed-over
 * session again. A server that then refuses it (expired) gets a new session, and our nodes are
 * taken over as after a crash: one multi of delete + create.
 */
static void
test_resume_survives_rejected_handshake_then_takes_over(void **state)
{
    struct fix *f = *state;
    struct tnode *t;
    int deletes = 0;

    reopen_handed(f, OLD_SID);
    t = node_add(f, 0);
    zks_session_event(zks_handle(), ZOO_CONNECTED_STATE, 0);
    run(f);
    /* the fixture's handle, reopen_handed()'s, and the one after our back-off (0.5 s) */
    TU_RUN_UNTIL(f->loop, zks_handles_opened() == 3 && zks_handle() != NULL);
    assert_int_equal(zoo_client_id(zks_handle())->client_id, OLD_SID);
    zks_session_event(zks_handle(), ZOO_EXPIRED_SESSION_STATE, 0);
    run(f);
    assert_int_equal(zks_handles_opened(), 4);
    assert_int_equal(zoo_client_id(zks_handle())->client_id, 0); /* given up: a new session */
    connect_session(f, SID);
    assert_int_equal(stats(f).resumed, 0);
    zks_reply(pending(t, ZKS_CREATE), ZNODEEXISTS);
    run(f);
    zks_reply_data(pending(t, ZKS_GET), ZOK, doc(t, 1), OLD_SID, 7);
    run(f);
    for (int i = 0; i < zks_ncalls(); i++) {
        const struct zks_call *k = zks_call(i);

        for (int j = 0; k->op.op == ZKS_MULTI && j < k->nops; j++)
            if (k->ops[j].op == ZKS_DELETE && strcmp(k->ops[j].path, t->path) == 0) {
                assert_int_equal(k->ops[j].version, 7);
                assert_true(j + 1 < k->nops && k->ops[j + 1].op == ZKS_CREATE);
                deletes++;
            }
    }
    assert_int_equal(deletes, 1);
    answer_all(f);
    assert_true(zkpub_node_published(t->zn));
    assert_int_equal(stats(f).sessions_expired, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_connection_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exists_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exists_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exists_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_reads_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_survives_rejected_handshake_then_takes_over,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
