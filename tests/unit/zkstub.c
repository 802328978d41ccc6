/* zkstub.c -- records the ZooKeeper client's calls for unit tests (zkstub.h); replaces
 * libzookeeper_mt in the executables that link it. */
#include "zkstub.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- the client's constants, with the library's values ---- */

const int ZOO_PERM_READ = 1 << 0;
const int ZOO_PERM_WRITE = 1 << 1;
const int ZOO_PERM_CREATE = 1 << 2;
const int ZOO_PERM_DELETE = 1 << 3;
const int ZOO_PERM_ADMIN = 1 << 4;
const int ZOO_PERM_ALL = 0x1f;
struct Id ZOO_ANYONE_ID_UNSAFE = {"world", "anyone"};
struct Id ZOO_AUTH_IDS = {"auth", ""};
static struct ACL open_acl[] = {{0x1f, {"world", "anyone"}}};
static struct ACL read_acl[] = {{1 << 0, {"world", "anyone"}}};
static struct ACL creator_acl[] = {{0x1f, {"auth", ""}}};
struct ACL_vector ZOO_OPEN_ACL_UNSAFE = {1, open_acl};
struct ACL_vector ZOO_READ_ACL_UNSAFE = {1, read_acl};
struct ACL_vector ZOO_CREATOR_ALL_ACL = {1, creator_acl};
const int ZOOKEEPER_WRITE = 1 << 0;
const int ZOOKEEPER_READ = 1 << 1;
const int ZOO_PERSISTENT = 0;
const int ZOO_EPHEMERAL = 1;
const int ZOO_PERSISTENT_SEQUENTIAL = 2;
const int ZOO_EPHEMERAL_SEQUENTIAL = 3;
const int ZOO_CONTAINER = 4;
const int ZOO_PERSISTENT_WITH_TTL = 5;
const int ZOO_PERSISTENT_SEQUENTIAL_WITH_TTL = 6;
const int ZOO_SEQUENCE = 1 << 1;
const int ZOO_EXPIRED_SESSION_STATE = -112;
const int ZOO_AUTH_FAILED_STATE = -113;
const int ZOO_CONNECTING_STATE = 1;
const int ZOO_ASSOCIATING_STATE = 2;
const int ZOO_CONNECTED_STATE = 3;
const int ZOO_READONLY_STATE = 5;
const int ZOO_NOTCONNECTED_STATE = 999;
const int ZOO_CREATED_EVENT = 1;
const int ZOO_DELETED_EVENT = 2;
const int ZOO_CHANGED_EVENT = 3;
const int ZOO_CHILD_EVENT = 4;
const int ZOO_SESSION_EVENT = -1;
const int ZOO_NOTWATCHING_EVENT = -2;

/* ---- the stub's state ---- */

struct _zhandle {
    watcher_fn watcher;
    void *context;
    int recv_timeout;
    int closed;
    clientid_t cid;
};

static struct {
    struct zks_call **calls;
    int ncalls, cap;
    zhandle_t **handles;
    int nhandles;
} st;

static char *
dup_bytes(const char *p, int len)
{
    char *s;

    if (p == NULL || len < 0)
        return NULL;
    s = malloc((size_t)len + 1);
    assert_non_null(s);
    memcpy(s, p, (size_t)len);
    s[len] = '\0';
    return s;
}

static char *
dup_str(const char *p)
{
    return p ? dup_bytes(p, (int)strlen(p)) : NULL;
}

static void
sub_set(struct zks_sub *s, enum zks_op op, const char *path, const char *data, int datalen,
        int version, int flags)
{
    s->op = op;
    s->path = dup_str(path);
    s->data = dup_bytes(data, datalen);
    s->datalen = data ? datalen : -1;
    s->version = version;
    s->flags = flags;
}

static void
sub_free(struct zks_sub *s)
{
    free(s->path);
    free(s->data);
}

/* Records a new pending call on ZH; returns NULL (and the call fails) on a closed handle. */
static struct zks_call *
call_new(zhandle_t *zh, const void *ctx)
{
    struct zks_call *c;

    if (zh == NULL || zh->closed)
        return NULL;
    if (st.ncalls == st.cap) {
        st.cap = st.cap ? st.cap * 2 : 64;
        st.calls = realloc(st.calls, (size_t)st.cap * sizeof(*st.calls));
        assert_non_null(st.calls);
    }
    c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->seq = st.ncalls;
    c->zh = zh;
    c->ctx = ctx;
    st.calls[st.ncalls++] = c;
    return c;
}

void
zks_reset(void)
{
    for (int i = 0; i < st.ncalls; i++) {
        struct zks_call *c = st.calls[i];

        sub_free(&c->op);
        for (int j = 0; j < c->nops; j++)
            sub_free(&c->ops[j]);
        free(c->ops);
        free(c);
    }
    free(st.calls);
    for (int i = 0; i < st.nhandles; i++)
        free(st.handles[i]);
    free(st.handles);
    memset(&st, 0, sizeof(st));
}

zhandle_t *
zks_handle(void)
{
    if (st.nhandles == 0 || st.handles[st.nhandles - 1]->closed)
        return NULL;
    return st.handles[st.nhandles - 1];
}

int
zks_handles_opened(void)
{
    return st.nhandles;
}

int
zks_ncalls(void)
{
    return st.ncalls;
}

struct zks_call *
zks_call(int i)
{
    assert_true(i >= 0 && i < st.ncalls);
    return st.calls[i];
}

static int
sub_matches(const struct zks_sub *s, enum zks_op op, const char *path)
{
    return (op == ZKS_ANY || s->op == op) &&
           (path == NULL || (s->path != NULL && strcmp(s->path, path) == 0));
}

static int
call_matches(const struct zks_call *c, enum zks_op op, const char *path)
{
    if (op == ZKS_MULTI && path == NULL)
        return c->op.op == ZKS_MULTI;
    if (c->op.op != ZKS_MULTI)
        return sub_matches(&c->op, op, path);
    if (op == ZKS_ANY && path == NULL)
        return 1;
    for (int j = 0; j < c->nops; j++)
        if (sub_matches(&c->ops[j], op == ZKS_MULTI ? ZKS_ANY : op, path))
            return 1;
    return 0;
}

struct zks_call *
zks_pending(enum zks_op op, const char *path)
{
    for (int i = 0; i < st.ncalls; i++)
        if (st.calls[i]->state == ZKS_PENDING && call_matches(st.calls[i], op, path))
            return st.calls[i];
    return NULL;
}

int
zks_npending(enum zks_op op, const char *path)
{
    int n = 0;

    for (int i = 0; i < st.ncalls; i++)
        if (st.calls[i]->state == ZKS_PENDING && call_matches(st.calls[i], op, path))
            n++;
    return n;
}

int
zks_count(enum zks_op op, const char *path, int from)
{
    int n = 0;

    for (int i = from; i < st.ncalls; i++) {
        const struct zks_call *c = st.calls[i];

        if (c->op.op == ZKS_MULTI) {
            if (op == ZKS_MULTI && path == NULL) {
                n++;
                continue;
            }
            for (int j = 0; j < c->nops; j++)
                n += sub_matches(&c->ops[j], op, path);
        } else {
            n += sub_matches(&c->op, op, path);
        }
    }
    return n;
}

const char *
zks_last_written(const char *path)
{
    for (int i = st.ncalls - 1; i >= 0; i--) {
        const struct zks_call *c = st.calls[i];

        if (c->op.op != ZKS_MULTI) {
            if ((c->op.op == ZKS_CREATE || c->op.op == ZKS_SET) &&
                sub_matches(&c->op, ZKS_ANY, path))
                return c->op.data;
            continue;
        }
        for (int j = c->nops - 1; j >= 0; j--)
            if ((c->ops[j].op == ZKS_CREATE || c->ops[j].op == ZKS_SET) &&
                sub_matches(&c->ops[j], ZKS_ANY, path))
                return c->ops[j].data;
    }
    return NULL;
}

static void
reply(struct zks_call *c, int rc, const char *data, int64_t owner, int32_t version)
{
    struct Stat stat = {.version = version, .ephemeralOwner = owner, .czxid = 1, .mzxid = 1};
    const struct Stat *sp = rc == ZOK ? &stat : NULL;

    if (c == NULL || c->state != ZKS_PENDING)
        fail_msg("zkstub: answering a call that is not pending");
    c->state = ZKS_DONE;
    if (c->op.op == ZKS_MULTI && c->results != NULL) {
        for (int j = 0; j < c->nops; j++)
            c->results[j].err = rc == ZOK ? ZOK : j == 0 ? rc : ZRUNTIMEINCONSISTENCY;
    }
    if (c->vc)
        c->vc(rc, c->ctx);
    else if (c->sc)
        c->sc(rc, sp, c->ctx);
    else if (c->strc)
        c->strc(rc, rc == ZOK ? c->op.path : NULL, c->ctx);
    else if (c->dc)
        c->dc(rc, rc == ZOK ? data : NULL, rc == ZOK && data ? (int)strlen(data) : -1, sp, c->ctx);
}

void
zks_reply(struct zks_call *c, int rc)
{
    reply(c, rc, NULL, c && rc == ZOK ? c->zh->cid.client_id : 0, 0);
}

void
zks_reply_stat(struct zks_call *c, int rc, int64_t owner, int32_t version)
{
    reply(c, rc, NULL, owner, version);
}

void
zks_reply_data(struct zks_call *c, int rc, const char *data, int64_t owner, int32_t version)
{
    reply(c, rc, data, owner, version);
}

void
zks_session_event(zhandle_t *zh, int state, int64_t session_id)
{
    assert_non_null(zh);
    assert_false(zh->closed);
    if (state == ZOO_CONNECTED_STATE)
        zh->cid.client_id = session_id;
    zh->watcher(zh, ZOO_SESSION_EVENT, state, "", zh->context);
}

int
zks_fire_watch(const char *path, int type)
{
    zhandle_t *zh = zks_handle();

    for (int i = st.ncalls - 1; i >= 0; i--) {
        struct zks_call *c = st.calls[i];

        if (c->zh == zh && c->op.op == ZKS_EXISTS && c->watcher != NULL && !c->watch_fired &&
            strcmp(c->op.path, path) == 0) {
            c->watch_fired = 1;
            c->watcher(zh, type, ZOO_CONNECTED_STATE, path, c->watcher_ctx);
            return 1;
        }
    }
    return 0;
}

/* ---- the client's functions ---- */

zhandle_t *
zookeeper_init2(const char *host, watcher_fn fn, int recv_timeout, const clientid_t *clientid,
                void *context, int flags, log_callback_fn log_callback)
{
    zhandle_t *zh = calloc(1, sizeof(*zh));

    (void)host;
    (void)flags;
    (void)log_callback;
    assert_non_null(zh);
    zh->watcher = fn;
    zh->context = context;
    zh->recv_timeout = recv_timeout;
    if (clientid)
        zh->cid = *clientid;
    st.handles = realloc(st.handles, (size_t)(st.nhandles + 1) * sizeof(*st.handles));
    assert_non_null(st.handles);
    st.handles[st.nhandles++] = zh;
    return zh;
}

zhandle_t *
zookeeper_init(const char *host, watcher_fn fn, int recv_timeout, const clientid_t *clientid,
               void *context, int flags)
{
    return zookeeper_init2(host, fn, recv_timeout, clientid, context, flags, NULL);
}

int
zookeeper_close(zhandle_t *zh)
{
    if (zh == NULL)
        return ZBADARGUMENTS;
    zh->closed = 1;
    /* Pending completions are dropped, never run (ZOOKEEPER-2894). */
    for (int i = 0; i < st.ncalls; i++)
        if (st.calls[i]->zh == zh && st.calls[i]->state == ZKS_PENDING)
            st.calls[i]->state = ZKS_DROPPED;
    return ZOK;
}

const clientid_t *
zoo_client_id(zhandle_t *zh)
{
    return &zh->cid;
}

int
zoo_recv_timeout(zhandle_t *zh)
{
    return zh->recv_timeout;
}

int
zoo_set_servers_resolution_delay(zhandle_t *zh, int delay_ms)
{
    (void)zh;
    (void)delay_ms;
    return ZOK;
}

void
zoo_set_debug_level(ZooLogLevel level)
{
    (void)level;
}

void
zoo_set_log_callback(zhandle_t *zh, log_callback_fn callback)
{
    (void)zh;
    (void)callback;
}

int
zoo_add_auth(zhandle_t *zh, const char *scheme, const char *cert, int certLen,
             void_completion_t completion, const void *data)
{
    (void)scheme;
    (void)cert;
    (void)certLen;
    (void)completion;
    (void)data;
    return zh && !zh->closed ? ZOK : ZINVALIDSTATE;
}

const char *
zerror(int c)
{
    switch (c) {
    case ZOK:
        return "ok";
    case ZCONNECTIONLOSS:
        return "connection loss";
    case ZOPERATIONTIMEOUT:
        return "operation timeout";
    case ZNONODE:
        return "no node";
    case ZNOAUTH:
        return "not authenticated";
    case ZBADVERSION:
        return "bad version";
    case ZNODEEXISTS:
        return "node exists";
    case ZSESSIONEXPIRED:
        return "session expired";
    case ZCLOSING:
        return "zookeeper is closing";
    case ZRUNTIMEINCONSISTENCY:
        return "run time inconsistency";
    default:
        return "unknown error";
    }
}

int
zoo_acreate(zhandle_t *zh, const char *path, const char *value, int valuelen,
            const struct ACL_vector *acl, int mode, string_completion_t completion,
            const void *data)
{
    struct zks_call *c = call_new(zh, data);

    (void)acl;
    if (c == NULL)
        return ZINVALIDSTATE;
    sub_set(&c->op, ZKS_CREATE, path, value, valuelen, -1, mode);
    c->strc = completion;
    return ZOK;
}

int
zoo_aset(zhandle_t *zh, const char *path, const char *buffer, int buflen, int version,
         stat_completion_t completion, const void *data)
{
    struct zks_call *c = call_new(zh, data);

    if (c == NULL)
        return ZINVALIDSTATE;
    sub_set(&c->op, ZKS_SET, path, buffer, buflen, version, 0);
    c->sc = completion;
    return ZOK;
}

int
zoo_adelete(zhandle_t *zh, const char *path, int version, void_completion_t completion,
            const void *data)
{
    struct zks_call *c = call_new(zh, data);

    if (c == NULL)
        return ZINVALIDSTATE;
    sub_set(&c->op, ZKS_DELETE, path, NULL, -1, version, 0);
    c->vc = completion;
    return ZOK;
}

int
zoo_awexists(zhandle_t *zh, const char *path, watcher_fn watcher, void *watcherCtx,
             stat_completion_t completion, const void *data)
{
    struct zks_call *c = call_new(zh, data);

    if (c == NULL)
        return ZINVALIDSTATE;
    sub_set(&c->op, ZKS_EXISTS, path, NULL, -1, -1, 0);
    c->watcher = watcher;
    c->watcher_ctx = watcherCtx;
    c->sc = completion;
    return ZOK;
}

int
zoo_aexists(zhandle_t *zh, const char *path, int watch, stat_completion_t completion,
            const void *data)
{
    return zoo_awexists(zh, path, watch ? zh->watcher : NULL, watch ? zh->context : NULL,
                        completion, data);
}

int
zoo_awget(zhandle_t *zh, const char *path, watcher_fn watcher, void *watcherCtx,
          data_completion_t completion, const void *data)
{
    struct zks_call *c = call_new(zh, data);

    if (c == NULL)
        return ZINVALIDSTATE;
    sub_set(&c->op, ZKS_GET, path, NULL, -1, -1, 0);
    c->watcher = watcher;
    c->watcher_ctx = watcherCtx;
    c->dc = completion;
    return ZOK;
}

int
zoo_aget(zhandle_t *zh, const char *path, int watch, data_completion_t completion, const void *data)
{
    return zoo_awget(zh, path, watch ? zh->watcher : NULL, watch ? zh->context : NULL, completion,
                     data);
}

/* The header declares COMPLETION as a pointer to a function pointer; the library stores and
 * calls it as the function pointer itself (zkpub.c passes it so). */
int
zoo_aremove_watches(zhandle_t *zh, const char *path, ZooWatcherType wtype, watcher_fn watcher,
                    void *watcherCtx, int local, void_completion_t *completion, const void *data)
{
    struct zks_call *c = call_new(zh, data);

    (void)wtype;
    (void)local;
    if (c == NULL)
        return ZINVALIDSTATE;
    sub_set(&c->op, ZKS_REMOVE_WATCHES, path, NULL, -1, -1, 0);
    c->watcher = watcher;
    c->watcher_ctx = watcherCtx;
    c->vc = (void_completion_t)(uintptr_t)completion;
    return ZOK;
}

void
zoo_create_op_init(zoo_op_t *op, const char *path, const char *value, int valuelen,
                   const struct ACL_vector *acl, int mode, char *path_buffer, int path_buffer_len)
{
    memset(op, 0, sizeof(*op));
    op->type = ZOO_CREATE_OP;
    op->create_op.path = path;
    op->create_op.data = value;
    op->create_op.datalen = valuelen;
    op->create_op.acl = acl;
    op->create_op.flags = mode;
    op->create_op.buf = path_buffer;
    op->create_op.buflen = path_buffer_len;
}

void
zoo_delete_op_init(zoo_op_t *op, const char *path, int version)
{
    memset(op, 0, sizeof(*op));
    op->type = ZOO_DELETE_OP;
    op->delete_op.path = path;
    op->delete_op.version = version;
}

void
zoo_set_op_init(zoo_op_t *op, const char *path, const char *buffer, int buflen, int version,
                struct Stat *stat)
{
    memset(op, 0, sizeof(*op));
    op->type = ZOO_SETDATA_OP;
    op->set_op.path = path;
    op->set_op.data = buffer;
    op->set_op.datalen = buflen;
    op->set_op.version = version;
    op->set_op.stat = stat;
}

void
zoo_check_op_init(zoo_op_t *op, const char *path, int version)
{
    memset(op, 0, sizeof(*op));
    op->type = ZOO_CHECK_OP;
    op->check_op.path = path;
    op->check_op.version = version;
}

int
zoo_amulti(zhandle_t *zh, int count, const zoo_op_t *ops, zoo_op_result_t *results,
           void_completion_t completion, const void *data)
{
    struct zks_call *c = call_new(zh, data);

    if (c == NULL)
        return ZINVALIDSTATE;
    sub_set(&c->op, ZKS_MULTI, NULL, NULL, -1, -1, 0);
    c->nops = count;
    c->ops = calloc((size_t)count, sizeof(*c->ops));
    assert_non_null(c->ops);
    for (int i = 0; i < count; i++) {
        const zoo_op_t *o = &ops[i];
        struct zks_sub *s = &c->ops[i];

        if (o->type == ZOO_CREATE_OP)
            sub_set(s, ZKS_CREATE, o->create_op.path, o->create_op.data, o->create_op.datalen, -1,
                    o->create_op.flags);
        else if (o->type == ZOO_DELETE_OP)
            sub_set(s, ZKS_DELETE, o->delete_op.path, NULL, -1, o->delete_op.version, 0);
        else if (o->type == ZOO_SETDATA_OP)
            sub_set(s, ZKS_SET, o->set_op.path, o->set_op.data, o->set_op.datalen,
                    o->set_op.version, 0);
        else /* ZOO_CHECK_OP */
            sub_set(s, ZKS_CHECK, o->check_op.path, NULL, -1, o->check_op.version, 0);
    }
    c->results = results;
    c->vc = completion;
    return ZOK;
}
