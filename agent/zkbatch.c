/* zkbatch.c -- the publisher's multi batching: creates, deletes and takeovers that fall due in
 * one loop iteration go out as one request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "zkpriv.h"

/* Frees B; RELEASE: its nodes are idle again (it was never sent, or its reply never came). */
void
zk_batch_free(struct zkbatch *b, int release)
{
    for (int i = 0; i < b->count; i++) {
        if (release)
            b->nodes[i]->busy = 0;
        free(b->docs[i]);
    }
    free(b);
}

/* Drops the open batch unsent (the session ended, or shutdown): its nodes are idle again. */
void
zk_batch_discard(struct zkpub *z)
{
    if (z->batch == NULL)
        return;
    ev_prepare_stop(z->loop, &z->flush);
    zk_batch_free(z->batch, 1);
    z->batch = NULL;
}

/* Writes "creating 12 nodes", "deleting 3 nodes", "taking over 2 nodes", or a list of them. */
static const char *
batch_what(const struct zkbatch *b, char *buf, size_t len)
{
    int creates = b->count - b->deletes - b->takeovers;
    const char *sep = "";
    size_t off = 0;

    buf[0] = '\0';
    if (creates > 0) {
        off += (size_t)snprintf(buf + off, len - off, "creating %d", creates);
        sep = " and ";
    }
    if (b->deletes > 0 && off < len) {
        off += (size_t)snprintf(buf + off, len - off, "%sdeleting %d", sep, b->deletes);
        sep = " and ";
    }
    if (b->takeovers > 0 && off < len)
        off += (size_t)snprintf(buf + off, len - off, "%staking over %d", sep, b->takeovers);
    if (off < len)
        snprintf(buf + off, len - off, " nodes");
    return buf;
}

/* Sends B as one multi request (B then belongs to the request). */
static void
batch_send_multi(struct zkpub *z, struct zkbatch *b)
{
    struct zkreq *r;
    char what[96];
    int k = 0;

    for (int i = 0; i < b->count; i++) {
        const char *path = b->nodes[i]->path;

        if (b->kinds[i] == ZKOP_DELETE) {
            zoo_delete_op_init(&b->ops[k++], path, -1);
            continue;
        }
        if (b->kinds[i] == ZKOP_TAKEOVER)
            zoo_delete_op_init(&b->ops[k++], path, b->versions[i]);
        zoo_create_op_init(&b->ops[k++], path, b->docs[i], (int)strlen(b->docs[i]), &z->acl,
                           ZOO_EPHEMERAL, NULL, 0);
    }
    r = zk_req_new(z, ZKOP_MULTI, NULL, NULL);
    r->batch = b;
    log_debug(ZK_COMP, "%s in one request", batch_what(b, what, sizeof(what)));
    zk_req_sent(r, zoo_amulti(z->zh, b->nops, b->ops, b->results, zkcb_void, r));
}

/* Sends the open batch: one multi request, or a plain request for one create or delete. */
static void
batch_send(struct zkpub *z)
{
    struct zkbatch *b = z->batch;

    if (b == NULL)
        return;
    if (!zk_ready(z)) {
        zk_batch_discard(z); /* its nodes are reconciled again when the session is back */
        return;
    }
    ev_prepare_stop(z->loop, &z->flush);
    z->batch = NULL;
    if (b->count == 1 && b->kinds[0] != ZKOP_TAKEOVER) {
        struct zknode *n = b->nodes[0];
        char *doc = b->docs[0];
        uint64_t gen = b->gens[0];

        b->docs[0] = NULL; /* taken: sent as it was rendered */
        zk_batch_free(b, 1);
        if (doc == NULL) {
            zk_node_send_delete(n, ZKOP_DELETE, -1);
        } else {
            zk_node_send_text(n, ZKOP_CREATE, doc, (int)strlen(doc), gen);
            free(doc);
        }
        return;
    }
    batch_send_multi(z, b);
}

/* Appends N's operation of kind OP to B; N is busy from now on. */
static void
batch_append(struct zkbatch *b, struct zknode *n, enum zkop op, int32_t version)
{
    int i = b->count++;

    b->nodes[i] = n;
    b->kinds[i] = op;
    b->versions[i] = version;
    b->gens[i] = n->want_gen;
    b->nops += op == ZKOP_TAKEOVER ? 2 : 1;
    if (op == ZKOP_DELETE) {
        b->docs[i] = NULL;
        b->deletes++;
    } else {
        struct sbuf sb = {0};

        zk_node_render(n, &sb);
        b->docs[i] = sb.buf ? sb.buf : xstrdup("");
        if (op == ZKOP_TAKEOVER)
            b->takeovers++;
    }
    n->busy = 1;
}

/* Adds N's operation to the open batch, which goes out before the loop sleeps, or when full. */
static void
batch_add(struct zknode *n, enum zkop op, int32_t version)
{
    struct zkpub *z = n->z;
    int need = op == ZKOP_TAKEOVER ? 2 : 1;

    if (z->batch != NULL && z->batch->nops + need > ZK_BATCH_MAX)
        batch_send(z); /* a takeover does not fit in the last slot */
    if (z->batch == NULL) {
        z->batch = xcalloc(1, sizeof(*z->batch));
        ev_prepare_start(z->loop, &z->flush);
    }
    batch_append(z->batch, n, op, version);
    if (z->batch->nops == ZK_BATCH_MAX)
        batch_send(z);
}

void
zk_batch_add(struct zknode *n, enum zkop op)
{
    batch_add(n, op, -1);
}

/*
 * Replaces N's stale node by ours: delete at VERSION (so that a node changed meanwhile is left
 * alone: ZBADVERSION) and create, atomically. Batched with the other writes of this loop
 * iteration unless a takeover batch with N already failed in this session: then alone, so
 * that a batch never fails twice for one node.
 */
void
zk_batch_takeover(struct zknode *n, int32_t version)
{
    struct zkbatch *b;

    if (!n->lone) {
        batch_add(n, ZKOP_TAKEOVER, version);
        return;
    }
    b = xcalloc(1, sizeof(*b));
    batch_append(b, n, ZKOP_TAKEOVER, version);
    batch_send_multi(n->z, b);
}

void
zk_batch_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    batch_send(w->data);
}

/*
 * A multi completed with RC. On success every create, delete and takeover in it happened;
 * otherwise none did. A lost connection retries them as a batch when it is back; any other
 * failure (one node already there: a previous incarnation's, another agent's; a container
 * gone; a node already deleted; a stale node changed since we read it) has each of them
 * written alone from now on in this session, through the single request's own handling of
 * every case, so a batch never fails twice for one node.
 */
void
zk_batch_reply(struct zkpub *z, struct zkbatch *b, int rc)
{
    int solo = rc != ZOK && rc != ZCONNECTIONLOSS && rc != ZOPERATIONTIMEOUT && rc != ZCLOSING &&
               rc != ZSESSIONEXPIRED && rc != ZINVALIDSTATE;
    char what[96];

    if (solo)
        log_info(ZK_COMP, "%s in one request failed (%s): one by one from now on",
                 batch_what(b, what, sizeof(what)), zerror(rc));
    else if (rc != ZOK)
        log_debug(ZK_COMP, "%s in one request: %s, will retry", batch_what(b, what, sizeof(what)),
                  zerror(rc));
    if (rc == ZOK && b->deletes > 0)
        log_info(ZK_COMP, "deleted %d nodes in one request", b->deletes);
    if (rc == ZOK && b->takeovers > 0)
        log_info(ZK_COMP, "took over %d nodes of our previous session in one request",
                 b->takeovers);
    for (int i = 0; i < b->count; i++) {
        struct zknode *n = b->nodes[i];

        n->busy = 0;
        if (rc == ZOK && b->kinds[i] == ZKOP_DELETE) {
            n->created = 0;
            z->writes_ok++;
            log_debug(ZK_COMP, "deleted %s", n->path);
        } else if (rc == ZOK) {
            zk_node_created(n, b->gens[i]);
        } else if (solo) {
            n->solo = 1;
            if (b->kinds[i] == ZKOP_TAKEOVER && n->lone) {
                /* Failed alone too: not a neighbour's fault, so back off like any write. */
                n->fails++;
                n->retry_at = ev_now(z->loop) + zk_backoff(n->fails);
                z->retry_due = 1;
                z->writes_failed++;
                log_warn(ZK_COMP, "taking over %s failed: %s (retry in %.1fs)", n->path, zerror(rc),
                         zk_backoff(n->fails));
            }
            if (b->kinds[i] == ZKOP_TAKEOVER)
                n->lone = 1;
        }
    }
    for (int i = 0; i < b->count; i++)
        zk_node_reconcile(b->nodes[i]);
}
