/* zkresume.c -- resuming the session the previous image handed over (the zero-gap upgrade):
 * taking it in, confirming or refusing it, reading our nodes back, and handing ours on. */
#include "zkpub.h"

#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "zkpriv.h"

/* Forgets the session CID: no id, and the password wiped (the client keeps its own copy). */
void
zk_cid_wipe(clientid_t *cid)
{
    cid->client_id = 0;
    explicit_bzero(cid->passwd, sizeof(cid->passwd));
}

/* The handed-over session is answered for (confirmed, refused or given up): forget it. */
void
zk_handed_done(struct zkpub *z)
{
    zk_cid_wipe(&z->handed);
}

void
zk_handed_take(struct zkpub *z, const struct zkpub_session *prev)
{
    if (prev != NULL && prev->id != 0) {
        z->handed.client_id = prev->id;
        memcpy(z->handed.passwd, prev->passwd, sizeof(z->handed.passwd));
    }
}

/* A handed-over session was resumed: our nodes may all be there still; read before writing. */
static void
zk_verify_all(struct zkpub *z)
{
    struct zknode *n;

    TAILQ_FOREACH (n, &z->nodes, link)
        n->verify = !n->removed;
}

int
zk_handed_answered(struct zkpub *z)
{
    int resumed = z->handed.client_id != 0 && z->session_id == z->handed.client_id;

    if (resumed) {
        /* Our nodes are all there still, probably: read each back before writing it. */
        z->resumed = 1;
        zk_verify_all(z);
        log_info(ZK_COMP, "session 0x%" PRIx64 " resumed from the previous image (timeout %dms)",
                 (uint64_t)z->session_id, zoo_recv_timeout(z->zh));
    }
    zk_handed_done(z);
    return resumed;
}

void
zk_handed_expired(struct zkpub *z)
{
    if (z->handed.client_id != 0)
        log_warn(ZK_COMP,
                 "session 0x%" PRIx64 " of the previous image cannot be resumed: "
                 "taking our nodes over in a new one",
                 (uint64_t)z->handed.client_id);
    zk_handed_done(z);
}

/* DOC (LEN bytes) without the publisher's volatile keys, or NULL if it is no JSON object. */
static json_t *
doc_stable(const struct zkpub *z, const char *doc, size_t len)
{
    json_t *o = json_loadb(doc, len, 0, NULL);

    if (o != NULL && !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    for (const char *const *k = z->volatile_keys; o != NULL && k != NULL && *k != NULL; k++)
        json_object_del(o, *k);
    return o;
}

/*
 * Returns 1 if DATA (a node read back in a resumed session) says what N's current document
 * says, volatile keys aside: then it need not be rewritten.
 */
int
zk_doc_same(const struct zkpub *z, struct zknode *n, const char *data, int len)
{
    struct sbuf sb = {0};
    json_t *have, *want;
    int same;

    if (data == NULL || len <= 0 || n->render == NULL)
        return 0;
    zk_node_render(n, &sb);
    have = doc_stable(z, data, (size_t)len);
    want = sb.buf ? doc_stable(z, sb.buf, sb.len) : NULL;
    same = have != NULL && want != NULL && json_equal(have, want);
    json_decref(have);
    json_decref(want);
    sbuf_free(&sb);
    return same;
}

int
zkpub_get_session(const struct zkpub *z, struct zkpub_session *out)
{
    const clientid_t *cid;

    memset(out, 0, sizeof(*out));
    if (z == NULL || z->zh == NULL || z->session_id == 0 || z->state >= ZK_STOPPING)
        return -1;
    cid = zoo_client_id(z->zh);
    if (cid == NULL || cid->client_id != z->session_id)
        return -1;
    out->id = cid->client_id;
    memcpy(out->passwd, cid->passwd, sizeof(out->passwd));
    return 0;
}
