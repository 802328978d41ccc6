/*
 * test_probe.c -- unit tests of one probe's exactly-once completion (agent/probe.c): a real
 * libev loop and hiredis link, with the test playing Redis on the accepted end of a unix socket
 * (hiredis 0.14 has no async connect from an fd, so a socketpair cannot stand in). The test
 * reads the commands, writes chosen replies, stalls or closes, and counts the probe's done, eof
 * and wake callbacks: each case asserts their exact counts after the loop has run on.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "addr.h"
#include "conf.h"
#include "probe.h"
#include "testutil.h"
#include "util.h"

/* What probe.c sends on a link: ROLE and PING in one write (no AUTH: no password here). */
#define CMD_ROLE_PING "*1\r\n$4\r\nROLE\r\n*1\r\n$4\r\nPING\r\n"
#define ANS_MASTER                                                                                 \
    "*3\r\n$6\r\nmaster\r\n:42\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n$2\r\n42\r\n"
#define ANS_REPLICA "*5\r\n$5\r\nslave\r\n$8\r\n10.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:42\r\n"
#define PONG        "+PONG\r\n"
#define TIMEOUT_MS  150
#define SETTLE_S    0.1 /* how long the loop runs on after a completion: no second one */

/* The fixture: a loop, a listener playing Redis, one probe, and what its callbacks saw. */
struct fix {
    struct ev_loop *loop;
    char dir[64], path[96];
    int lfd, sfd; /* listener, and the server's end of the current link (-1: none) */
    int fds;      /* open fds before the fixture: the teardown finds as many */
    struct conf_instance ci;
    struct probe p;
    int dones, eofs, wakes;
    struct probe_result last;
    struct role_info last_role; /* *last.role, copied: it lives only during the callback */
    int last_tilt;
    int done_inflight; /* p->inflight seen inside the last done callback */
};

static void
on_done(void *ud, const struct probe_result *r, int tilt)
{
    struct fix *f = ud;

    f->dones++;
    f->last = *r;
    f->last_role = (struct role_info){.role = (enum inst_role) - 1}; /* unless ROLE answered */
    if (r->role != NULL)
        f->last_role = *r->role;
    f->last.role = NULL;
    f->last_tilt = tilt;
    f->done_inflight = f->p.inflight;
}

static void
on_eof(void *ud)
{
    struct fix *f = ud;

    f->eofs++;
}

static void
on_wake(void *ud)
{
    struct fix *f = ud;

    f->wakes++;
}

static int
listen_unix(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

/* Points the fixture's instance at ADDRESS ("unix:PATH" or "HOST:PORT"). */
static void
set_address(struct fix *f, const char *address)
{
    char err[128];

    assert_int_equal(addr_parse(address, ADDR_NO_RESOLVE, &f->ci.addr, err, sizeof(err)), 0);
}

static int
setup(void **state)
{
    struct fix *f = xcalloc(1, sizeof(*f));
    char address[128];

    f->fds = tu_fd_count();
    f->loop = ev_loop_new(EVFLAG_AUTO);
    tu_tmpdir(f->dir, sizeof(f->dir), "sa-probe");
    snprintf(f->path, sizeof(f->path), "%s/redis.sock", f->dir);
    f->lfd = listen_unix(f->path);
    f->sfd = -1;
    util_strlcpy(f->ci.name, "r1", sizeof(f->ci.name));
    util_strlcpy(f->ci.cluster, "c1", sizeof(f->ci.cluster));
    snprintf(address, sizeof(address), "unix:%s", f->path);
    set_address(f, address);
    f->ci.interval_ms = 1000;
    f->ci.timeout_ms = TIMEOUT_MS;
    f->ci.downinter_ms = 250;
    f->ci.rise = 2;
    f->ci.fall = 2;
    probe_init(&f->p, f->loop, &f->ci, on_done, on_eof, on_wake, f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    probe_free(&f->p);
    if (f->sfd >= 0)
        close(f->sfd);
    if (f->lfd >= 0)
        close(f->lfd);
    unlink(f->path);
    rmdir(f->dir);
    ev_loop_destroy(f->loop);
    assert_int_equal(tu_fd_count(), f->fds); /* the link and the check's socket are closed */
    free(f);
    return 0;
}

/* Accepts the probe's link (the server's end becomes f->sfd), running the loop meanwhile. */
static void
serve(struct fix *f)
{
    double end = tu_now_s() + TU_DEADLINE_S;

    if (f->sfd >= 0)
        close(f->sfd);
    while ((f->sfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail_msg("accept: %s", strerror(errno));
        if (tu_now_s() > end)
            fail_msg("the probe did not connect within %.0f s", TU_DEADLINE_S);
        tu_spin(f->loop, f->lfd, POLLIN);
    }
}

/* Reads one exchange's commands from the link and checks they are ROLE then PING. */
static void
expect_exchange(struct fix *f)
{
    struct sbuf in = {0};

    assert_int_equal(tu_recv_until(f->loop, f->sfd, &in, "PING\r\n"), 1);
    sbuf_adds(&in, "");
    assert_string_equal(in.buf, CMD_ROLE_PING);
    free(in.buf);
}

/* Starts a probe and plays the server up to its commands: accepted (if new) and read. */
static void
start_and_read(struct fix *f, int new_link)
{
    int dones = f->dones;

    probe_start(&f->p);
    assert_int_equal(f->dones, dones); /* nothing to report yet */
    if (new_link)
        serve(f);
    expect_exchange(f);
}

/* Runs the loop on for SETTLE_S: whatever was to come twice would have by then. */
static void
settle(struct fix *f)
{
    tu_run_for(f->loop, SETTLE_S);
}

/* PONG and ROLE: one done, ok, with the role; the link stays for the next probe. */
static void
test_ok_once_with_role(void **state)
{
    struct fix *f = *state;

    start_and_read(f, 1);
    tu_send_str(f->loop, f->sfd, ANS_MASTER PONG);
    TU_RUN_UNTIL(f->loop, f->dones > 0);
    settle(f);
    assert_int_equal(f->dones, 1);
    assert_int_equal(f->last.status, PROBE_OK);
    assert_string_equal(f->last.reason, "");
    assert_int_equal(f->last_role.role, ROLE_MASTER);
    assert_int_equal(f->last_role.replicas, 1);
    assert_false(f->last.role_noperm);
    assert_true(f->last.latency_us >= 0);
    assert_int_equal(f->last_tilt, 0);
    assert_int_equal(f->done_inflight, 0); /* the probe is over before its owner hears */
    assert_int_equal(f->eofs + f->wakes, 0);

    /* the same link again: no new connection, a replica this time */
    start_and_read(f, 0);
    tu_send_str(f->loop, f->sfd, ANS_REPLICA PONG);
    TU_RUN_UNTIL(f->loop, f->dones > 1);
    settle(f);
    assert_int_equal(f->dones, 2);
    assert_int_equal(f->last.status, PROBE_OK);
    assert_int_equal(f->last_role.role, ROLE_REPLICA);
    assert_string_equal(f->last_role.master, "10.0.0.1:6379");
    assert_string_equal(f->last_role.link, "connected");
    assert_int_equal(f->eofs + f->wakes, 0);
}

/* -LOADING to both commands: one done, failed, "loading", role unknown. */
static void
test_error_reply_once(void **state)
{
    struct fix *f = *state;

    start_and_read(f, 1);
    tu_send_str(f->loop, f->sfd,
                "-LOADING Redis is loading the dataset in memory\r\n"
                "-LOADING Redis is loading the dataset in memory\r\n");
    TU_RUN_UNTIL(f->loop, f->dones > 0);
    settle(f);
    assert_int_equal(f->dones, 1);
    assert_int_equal(f->last.status, PROBE_FAILED);
    assert_string_equal(f->last.reason, "loading");
    assert_int_equal(f->last_role.role, ROLE_UNKNOWN);
    assert_int_equal(f->eofs + f->wakes, 0);
}

/*
 * The server closes the link mid-probe, after ROLE's reply and before PING's, or before
 * either: one done (the connection lost), never a second one from the other callbacks hiredis
 * runs while freeing, and no eof (the probe was in flight).
 */
static void
test_peer_close_mid_probe_once(void **state)
{
    struct fix *f = *state;

    start_and_read(f, 1);
    tu_send_str(f->loop, f->sfd, ANS_MASTER);
    close(f->sfd);
    f->sfd = -1;
    TU_RUN_UNTIL(f->loop, f->dones > 0);
    settle(f);
    assert_int_equal(f->dones, 1);
    assert_int_equal(f->last.status, PROBE_FAILED);
    assert_string_equal(f->last.reason, "connection lost");
    assert_int_equal(f->eofs + f->wakes, 0);
    assert_null(f->p.ac);

    /* closed before any reply: ROLE's and PING's callbacks both run, one done */
    start_and_read(f, 1);
    close(f->sfd);
    f->sfd = -1;
    TU_RUN_UNTIL(f->loop, f->dones > 1);
    settle(f);
    assert_int_equal(f->dones, 2);
    assert_int_equal(f->last.status, PROBE_FAILED);
    assert_string_equal(f->last.reason, "connection lost");
    assert_int_equal(f->eofs + f->wakes, 0);
}

/*
 * No reply: one done at the deadline, a timeout; the link is kept, stale. Its late reply, with
 * no probe waiting, wakes the owner: not a second done for the old probe.
 */
static void
test_timeout_then_late_reply_wakes(void **state)
{
    struct fix *f = *state;
    double t0 = tu_now_s();

    start_and_read(f, 1);
    TU_RUN_UNTIL(f->loop, f->dones > 0);
    assert_true(tu_now_s() - t0 >= TIMEOUT_MS / 1000.0 - 0.01);
    settle(f);
    assert_int_equal(f->dones, 1);
    assert_int_equal(f->last.status, PROBE_TIMEOUT);
    assert_string_equal(f->last.reason, "timeout");
    assert_int_equal(f->last_tilt, 0);
    assert_non_null(f->p.ac);
    assert_true(f->p.stale);

    tu_send_str(f->loop, f->sfd, ANS_MASTER PONG);
    TU_RUN_UNTIL(f->loop, f->wakes > 0);
    settle(f);
    assert_int_equal(f->wakes, 1);
    assert_int_equal(f->dones, 1);
    assert_int_equal(f->eofs, 0);
    assert_false(f->p.stale);
}

/*
 * A probe started on a stale link sends nothing and waits: the late reply completes that probe
 * (one more done, ok), and wakes nobody.
 */
static void
test_late_reply_completes_waiting_probe(void **state)
{
    struct fix *f = *state;
    char buf[64];

    f->ci.timeout_ms = 400; /* room for the second probe to wait */
    start_and_read(f, 1);
    tu_send_str(f->loop, f->sfd, ANS_MASTER PONG);
    TU_RUN_UNTIL(f->loop, f->dones > 0);
    start_and_read(f, 0);
    TU_RUN_UNTIL(f->loop, f->dones > 1);
    assert_int_equal(f->last.status, PROBE_TIMEOUT);

    /* the link had answered before: the waiting probe's fresh-connect check connects */
    probe_start(&f->p);
    int c = -1;
    double end = tu_now_s() + TU_DEADLINE_S;
    while ((c = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0) {
        if (tu_now_s() > end)
            fail_msg("no fresh-connect check");
        tu_spin(f->loop, f->lfd, POLLIN);
    }
    close(c);
    assert_int_equal(recv(f->sfd, buf, sizeof(buf), MSG_DONTWAIT), -1); /* nothing new sent */
    assert_int_equal(errno, EAGAIN);

    tu_send_str(f->loop, f->sfd, ANS_MASTER PONG);
    TU_RUN_UNTIL(f->loop, f->dones > 2);
    settle(f);
    assert_int_equal(f->dones, 3);
    assert_int_equal(f->last.status, PROBE_OK);
    assert_int_equal(f->last_role.role, ROLE_MASTER);
    assert_int_equal(f->wakes + f->eofs, 0);
}

/*
 * A stale link still open (a fork child of a killed Redis holds it) while nothing listens any
 * more: the waiting probe's fresh-connect check ends it at once, conclusive, exactly once.
 */
static void
test_stale_link_check_refused_once(void **state)
{
    struct fix *f = *state;

    start_and_read(f, 1);
    tu_send_str(f->loop, f->sfd, ANS_MASTER PONG);
    TU_RUN_UNTIL(f->loop, f->dones > 0);
    start_and_read(f, 0);
    TU_RUN_UNTIL(f->loop, f->dones > 1);
    assert_int_equal(f->last.status, PROBE_TIMEOUT);

    close(f->lfd); /* the server is gone; f->sfd, its child's copy of the link, stays */
    f->lfd = -1;
    unlink(f->path);
    probe_start(&f->p);
    TU_RUN_UNTIL(f->loop, f->dones > 2);
    settle(f);
    assert_int_equal(f->dones, 3);
    assert_int_equal(f->last.status, PROBE_CONCLUSIVE);
    assert_string_equal(f->last.reason, "no such socket");
    assert_null(f->p.ac); /* the stale link was dropped with it */
    assert_int_equal(f->wakes + f->eofs, 0);
}

/* Nothing listens: one done, conclusive, at once or within the next iterations. */
static void
test_refused_once(void **state)
{
    struct fix *f = *state;
    char address[64];

    snprintf(address, sizeof(address), "127.0.0.1:%d", tu_free_port());
    set_address(f, address);
    probe_start(&f->p);
    assert_true(f->dones <= 1);
    TU_RUN_UNTIL(f->loop, f->dones > 0);
    settle(f);
    assert_int_equal(f->dones, 1);
    assert_int_equal(f->last.status, PROBE_CONCLUSIVE);
    assert_string_equal(f->last.reason, "connection refused");
    assert_int_equal(f->eofs + f->wakes, 0);
    assert_false(f->p.inflight);

    /* a unix socket that is not there */
    close(f->lfd);
    f->lfd = -1;
    unlink(f->path);
    set_address(f, "unix:/nonexistent/sa-probe.sock");
    probe_start(&f->p);
    TU_RUN_UNTIL(f->loop, f->dones > 1);
    settle(f);
    assert_int_equal(f->dones, 2);
    assert_int_equal(f->last.status, PROBE_CONCLUSIVE);
    assert_string_equal(f->last.reason, "no such socket");
}

/* The server closes an idle link between probes: the eof callback, once, and no done. */
static void
test_idle_eof_not_done(void **state)
{
    struct fix *f = *state;

    start_and_read(f, 1);
    tu_send_str(f->loop, f->sfd, ANS_MASTER PONG);
    TU_RUN_UNTIL(f->loop, f->dones > 0);
    close(f->sfd);
    f->sfd = -1;
    TU_RUN_UNTIL(f->loop, f->eofs > 0);
    settle(f);
    assert_int_equal(f->eofs, 1);
    assert_int_equal(f->dones, 1);
    assert_int_equal(f->wakes, 0);
    assert_null(f->p.ac);
}

/* probe_close() during a probe: no done at all, even when the reply comes after it. */
static void
test_close_mid_probe_silent(void **state)
{
    struct fix *f = *state;

    start_and_read(f, 1);
    probe_close(&f->p);
    assert_false(f->p.inflight);
    assert_null(f->p.ac);
    send(f->sfd, ANS_MASTER PONG, sizeof(ANS_MASTER PONG) - 1, MSG_NOSIGNAL);
    tu_run_for(f->loop, TIMEOUT_MS / 1000.0 + SETTLE_S); /* past the deadline, too */
    assert_int_equal(f->dones + f->eofs + f->wakes, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok_once_with_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_reply_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close_mid_probe_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_late_reply_wakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_reply_completes_waiting_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_link_check_refused_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_eof_not_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_mid_probe_silent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
