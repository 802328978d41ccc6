/* upgrade.c -- sentinel-agentctl upgrade: ask for the upgrade, then report what happened. */
#include "upgrade.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "util.h"

#define UPGRADE_WAIT_MS 30000 /* for the new image to answer, and its session to settle */
#define UPGRADE_POLL_MS 50

/* What one `stats` answer says that matters here. */
struct snap {
    char version[32];
    char session[32];
    json_int_t pid;
    json_int_t upgrades;
    int connected;
    int resumed;
};

static int
ask_stats(const char *sock, struct snap *s, char *err, size_t errlen)
{
    struct sbuf ans = {0};
    json_t *o;
    int rc = -1;

    if (client_ask(sock, "stats\n", &ans, err, errlen) < 0)
        goto out;
    o = json_loads(ans.buf, 0, NULL);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "the stats answer is not JSON");
        json_decref(o);
        goto out;
    }
    memset(s, 0, sizeof(*s));
    util_strlcpy(s->version, json_string_value(json_object_get(o, "version")) ?: "?",
                 sizeof(s->version));
    util_strlcpy(s->session, json_string_value(json_object_get(o, "zk_session_id")) ?: "0x0",
                 sizeof(s->session));
    s->pid = json_integer_value(json_object_get(o, "pid"));
    s->upgrades = json_integer_value(json_object_get(o, "upgrades"));
    s->connected =
        strcmp(json_string_value(json_object_get(o, "zk_state")) ?: "", "connected") == 0;
    s->resumed = json_is_true(json_object_get(o, "zk_session_resumed"));
    json_decref(o);
    rc = 0;
out:
    sbuf_free(&ans);
    return rc;
}

static void
nap(void)
{
    struct timespec ts = {0, UPGRADE_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
}

int
ctl_upgrade(const char *progname, const char *sock, int json)
{
    struct snap before, after = {0};
    struct sbuf ans = {0};
    char err[512];
    json_t *o;
    const char *msg;
    int waited, seen = 0;

    if (ask_stats(sock, &before, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", progname, err);
        return 2;
    }
    if (client_ask(sock, "upgrade\n", &ans, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", progname, err);
        sbuf_free(&ans);
        return 2;
    }
    o = json_loads(ans.buf, 0, NULL);
    if (!json_is_true(json_object_get(o, "ok"))) {
        msg = json_string_value(json_object_get(o, "error"));
        fprintf(stderr, "%s: %s\n", progname, msg ? msg : ans.buf);
        json_decref(o);
        sbuf_free(&ans);
        return 1;
    }
    json_decref(o);
    sbuf_free(&ans);
    /* The same pid answering with one more upgrade is the new image; then let it settle. */
    for (waited = 0; waited < UPGRADE_WAIT_MS; waited += UPGRADE_POLL_MS, nap()) {
        if (ask_stats(sock, &after, err, sizeof(err)) < 0)
            continue; /* the socket never goes away; a slow answer is retried */
        if (after.pid != before.pid) {
            fprintf(stderr, "%s: another process (pid %lld) answers now\n", progname,
                    (long long)after.pid);
            return 1;
        }
        if (after.upgrades > before.upgrades)
            seen = 1;
        if (seen && (after.connected || strcmp(before.session, "0x0") == 0))
            break;
    }
    if (!seen) {
        fprintf(stderr, "%s: the new image did not answer within %ds\n", progname,
                UPGRADE_WAIT_MS / 1000);
        return 1;
    }
    if (json) {
        printf("{\"ok\":true,\"pid\":%lld,\"old_version\":\"%s\",\"new_version\":\"%s\","
               "\"zk_session\":\"%s\",\"zk_session_kept\":%s}\n",
               (long long)after.pid, before.version, after.version, after.session,
               after.resumed ? "true" : "false");
        return 0;
    }
    printf("upgraded: %s -> %s (pid %lld), ", before.version, after.version, (long long)after.pid);
    if (strcmp(before.session, "0x0") == 0)
        printf("no ZooKeeper session to keep\n");
    else if (after.resumed && strcmp(after.session, before.session) == 0)
        printf("ZooKeeper session %s kept\n", after.session);
    else if (after.connected)
        printf("ZooKeeper session %s not resumed: nodes taken over by session %s\n", before.session,
               after.session);
    else
        printf("ZooKeeper session %s not resumed yet (not connected)\n", before.session);
    return 0;
}
