/* zkbatch.c -- the publisher's multi batching: creates and deletes that fall due in one loop
 * iteration go out as one request. */
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

/* Writes "creating 12 nodes", "deleting 3 nodes" or "creating 12 and deleting 3 nodes". */
static const char *
batch_what(const struct zkbatch *b, char *buf, size_t len)
{
    int creates = b->count - b->deletes;

    if (b->deletes == 0)
        snprintf(buf, len, "creating %d nodes", creates);
    else if (creates == 0)
        snprintf(buf, len, "deleting %d nodes", b->deletes);
    else
        snprintf(buf, len, "creating %d and deleting %d nodes", creates, b->deletes);
    return buf;
}

/* Sends the open batch: one multi request, or a plain request for a batch of one. */
static void
batch_send(struct zkpub *z)
{
    struct zkbatch *b = z->batch;
    struct zkreq *r;
    char what[64];

    if (b == NULL)
        return;
    if (!zk_ready(z)) {
        zk_batch_discard(z); /* its nodes are reconciled again when the session is back */
        return;
    }
    ev_prepare_stop(z->loop, &z->flush);
    z->batch = NULL;
    if (b->count == 1) {
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
    for (int i = 0; i < b->count; i++) {
        if (b->docs[i] == NULL)
            zoo_delete_op_init(&b->ops[i], b->nodes[i]->path, -1);
        else
            zoo_create_op_init(&b->ops[i], b->nodes[i]->path, b->docs[i], (int)strlen(b->docs[i]),
                               &z->acl, ZOO_EPHEMERAL, NULL, 0);
    }
    r = zk_req_new(z, ZKOP_MULTI, NULL, NULL);
    r->batch = b;
    log_debug(ZK_COMP, "%s in one request", batch_what(b, what, sizeof(what)));
    zk_req_sent(r, zoo_amulti(z->zh, b->count, b->ops, b->results, zkcb_void, r));
}

/*
 * Adds N's create (OP ZKOP_CREATE) or delete (ZKOP_DELETE) to the open batch, which goes out
 * before the loop sleeps, or when full.
 */
void
zk_batch_add(struct zknode *n, enum zkop op)
{
    struct zkpub *z = n->z;
    struct zkbatch *b = z->batch;

    if (b == NULL) {
        b = z->batch = xcalloc(1, sizeof(*b));
        ev_prepare_start(z->loop, &z->flush);
    }
    b->nodes[b->count] = n;
    b->gens[b->count] = n->want_gen;
    if (op == ZKOP_DELETE) {
        b->docs[b->count] = NULL;
        b->deletes++;
    } else {
        struct sbuf sb = {0};

        zk_node_render(n, &sb);
        b->docs[b->count] = sb.buf ? sb.buf : xstrdup("");
    }
    b->count++;
    n->busy = 1;
    if (b->count == ZK_BATCH_MAX)
        batch_send(z);
}

void
zk_batch_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    batch_send(w->data);
}

/*
 * A multi completed with RC. On success every create and delete in it happened; otherwise
 * none did. A lost connection retries them as a batch when it is back; any other failure
 * (one node already there: a previous incarnation's, another agent's; a container gone; a
 * node already deleted) has each of them written alone from now on in this session, through
 * the single request's own handling of every case, so a batch never fails twice for one node.
 */
void
zk_batch_reply(struct zkpub *z, struct zkbatch *b, int rc)
{
    int solo = rc != ZOK && rc != ZCONNECTIONLOSS && rc != ZOPERATIONTIMEOUT && rc != ZCLOSING &&
               rc != ZSESSIONEXPIRED && rc != ZINVALIDSTATE;
    char what[64];

    if (solo)
        log_info(ZK_COMP, "%s in one request failed (%s): one by one from now on",
                 batch_what(b, what, sizeof(what)), zerror(rc));
    else if (rc != ZOK)
        log_debug(ZK_COMP, "%s in one request: %s, will retry", batch_what(b, what, sizeof(what)),
                  zerror(rc));
    else if (b->deletes > 0)
        log_info(ZK_COMP, "deleted %d nodes in one request", b->deletes);
    for (int i = 0; i < b->count; i++) {
        struct zknode *n = b->nodes[i];

        n->busy = 0;
        if (rc == ZOK && b->docs[i] == NULL) {
            n->created = 0;
            z->writes_ok++;
            log_debug(ZK_COMP, "deleted %s", n->path);
        } else if (rc == ZOK) {
            zk_node_created(n, b->gens[i]);
        } else if (solo) {
            n->solo = 1;
        }
    }
    for (int i = 0; i < b->count; i++)
        zk_node_reconcile(b->nodes[i]);
}
