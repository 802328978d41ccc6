/*
 * test_instance.c -- unit tests of an instance's schedule (agent/instance.c) through its public
 * API on a real libev loop: the queue of first probes and max_inflight, a due probe skipped at
 * max_inflight, and the periods back on their own phases after a stall. The agent is a struct
 * agent filled by hand (loop, config, queue, rounds; no publisher, no stats socket), and Redis
 * a fake one in the same loop on a unix socket: it answers ROLE and PING at once, or holds its
 * answers until the test releases them.
 */
#include <errno.h>
#include <math.h>
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
#include "agent.h"
#include "conf.h"
#include "instance.h"
#include "log.h"
#include "testutil.h"
#include "util.h"

#define MAXI 8 /* instances */
#define MAXC 8 /* connections to the fake Redis */

static const char cmd_role[] = "*1\r\n$4\r\nROLE\r\n";
static const char cmd_ping[] = "*1\r\n$4\r\nPING\r\n";
static const char ans_role[] = "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n";
static const char ans_ping[] = "+PONG\r\n";

struct srv;

/* One connection to the fake Redis. */
struct conn {
    struct srv *s;
    int fd; /* -1: free */
    ev_io io;
    struct sbuf in;   /* commands read, not yet complete */
    struct sbuf held; /* answers held back */
    int held_pings;
};

/* The fake Redis: a unix listener and its connections, in the test's loop. */
struct srv {
    struct ev_loop *loop;
    int lfd;
    ev_io lio;
    struct conn c[MAXC];
    int hold;            /* answers wait in each connection's held buffer */
    int pings;           /* PINGs read */
    int outstanding;     /* PINGs read and not answered */
    int max_outstanding; /* the most there ever were: the probes in flight, seen from Redis */
};

static void
answer(struct conn *c, const char *s, size_t n)
{
    if (c->s->hold) {
        sbuf_add(&c->held, s, n);
        return;
    }
    assert_int_equal(send(c->fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void
conn_close(struct conn *c)
{
    ev_io_stop(c->s->loop, &c->io);
    close(c->fd);
    c->fd = -1;
    c->s->outstanding -= c->held_pings;
    c->held_pings = 0;
    sbuf_free(&c->in);
    sbuf_free(&c->held);
}

static void
conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    struct srv *s = c->s;
    char buf[512];
    ssize_t n;

    (void)loop;
    (void)revents;
    n = recv(c->fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        conn_close(c);
        return;
    }
    sbuf_add(&c->in, buf, (size_t)n);
    for (;;) {
        if (c->in.len >= sizeof(cmd_role) - 1 &&
            memcmp(c->in.buf, cmd_role, sizeof(cmd_role) - 1) == 0) {
            sbuf_consume(&c->in, sizeof(cmd_role) - 1);
            answer(c, ans_role, sizeof(ans_role) - 1);
        } else if (c->in.len >= sizeof(cmd_ping) - 1 &&
                   memcmp(c->in.buf, cmd_ping, sizeof(cmd_ping) - 1) == 0) {
            sbuf_consume(&c->in, sizeof(cmd_ping) - 1);
            s->pings++;
            if (s->hold) {
                c->held_pings++;
                if (++s->outstanding > s->max_outstanding)
                    s->max_outstanding = s->outstanding;
            }
            answer(c, ans_ping, sizeof(ans_ping) - 1);
        } else {
            break;
        }
    }
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct srv *s = w->data;
    int fd;

    (void)revents;
    while ((fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        struct conn *c = NULL;

        for (int i = 0; i < MAXC && c == NULL; i++)
            if (s->c[i].fd < 0)
                c = &s->c[i];
        if (c == NULL)
            fail_msg("more than %d connections to the fake Redis", MAXC);
        c->fd = fd;
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        c->io.data = c;
        ev_io_start(loop, &c->io);
    }
}

/* Sends every held answer and stops holding (HOLD: whether to hold what comes next). */
static void
srv_release(struct srv *s, int hold)
{
    s->hold = hold;
    for (int i = 0; i < MAXC; i++) {
        struct conn *c = &s->c[i];

        if (c->fd < 0 || c->held.len == 0)
            continue;
        assert_int_equal(send(c->fd, c->held.buf, c->held.len, MSG_NOSIGNAL), (ssize_t)c->held.len);
        sbuf_reset(&c->held);
        s->outstanding -= c->held_pings;
        c->held_pings = 0;
    }
}

/* The fixture: the loop, the fake Redis, a config, a hand-made agent and its instances. */
struct fix {
    struct ev_loop *loop;
    char dir[64], path[96];
    struct srv srv;
    struct conf conf;
    struct conf_instance ci[MAXI];
    struct agent a;
    struct inst *in[MAXI];
    int n;
    int max_inflight_seen; /* the most a.inflight was between two loop iterations */
};

static int
setup(void **state)
{
    struct fix *f = xcalloc(1, sizeof(*f));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct srv *s = &f->srv;

    log_set_level(LOGL_WARN);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    tu_tmpdir(f->dir, sizeof(f->dir), "sa-instance");
    snprintf(f->path, sizeof(f->path), "%s/redis.sock", f->dir);
    util_strlcpy(sun.sun_path, f->path, sizeof(sun.sun_path));
    s->loop = f->loop;
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(s->lfd, 64), 0);
    for (int i = 0; i < MAXC; i++) {
        s->c[i].s = s;
        s->c[i].fd = -1;
    }
    ev_io_init(&s->lio, accept_cb, s->lfd, EV_READ);
    s->lio.data = s;
    ev_io_start(f->loop, &s->lio);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    for (int i = 0; i < f->n; i++)
        inst_free(f->in[i]);
    inst_agent_stop(&f->a);
    for (int i = 0; i < MAXC; i++)
        if (f->srv.c[i].fd >= 0)
            conn_close(&f->srv.c[i]);
    ev_io_stop(f->loop, &f->srv.lio);
    close(f->srv.lfd);
    unlink(f->path);
    rmdir(f->dir);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

/*
 * Makes the agent's config and N instances of it, all on the fake Redis, probed every
 * INTERVAL_MS under TIMEOUT_MS, at most MAX_INFLIGHT at once; sizes the rounds. None started.
 */
static void
make(struct fix *f, int n, int max_inflight, int64_t interval_ms, int64_t timeout_ms)
{
    char address[128], err[128];
    struct agent *a = &f->a;

    assert_true(n <= MAXI);
    f->conf.max_inflight = max_inflight;
    TAILQ_INIT(&f->conf.instances);
    snprintf(address, sizeof(address), "unix:%s", f->path);
    for (int i = 0; i < n; i++) {
        struct conf_instance *ci = &f->ci[i];

        snprintf(ci->name, sizeof(ci->name), "r%d", i);
        util_strlcpy(ci->cluster, "c1", sizeof(ci->cluster));
        assert_int_equal(addr_parse(address, 0, &ci->addr, err, sizeof(err)), 0);
        ci->interval_ms = interval_ms;
        ci->timeout_ms = timeout_ms;
        ci->downinter_ms = interval_ms;
        ci->rise = 2;
        ci->fall = 2;
        TAILQ_INSERT_TAIL(&f->conf.instances, ci, link);
    }
    f->conf.ninstances = n;

    a->loop = f->loop;
    a->conf = &f->conf;
    TAILQ_INIT(&a->instances);
    inst_agent_init(a);
    ev_now_update(f->loop);
    a->tune.base = ev_now(f->loop);
    inst_plan_rounds(a, &f->conf);
    for (int i = 0; i < n; i++)
        f->in[i] = inst_new(a, &f->ci[i]);
    f->n = n;
}

/* Notes how many probes are in flight now, and checks it against max_inflight. */
static void
sample(struct fix *f)
{
    if (f->a.inflight > f->max_inflight_seen)
        f->max_inflight_seen = f->a.inflight;
    if (f->a.inflight > f->conf.max_inflight || f->a.inflight < 0)
        fail_msg("%d probes in flight, max_inflight %d", f->a.inflight, f->conf.max_inflight);
}

/* Runs the loop until COND holds (failing after TU_DEADLINE_S), sampling a.inflight. */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        double end_ = tu_now_s() + TU_DEADLINE_S;                                                  \
        sample(f);                                                                                 \
        while (!(cond)) {                                                                          \
            if (tu_now_s() > end_)                                                                 \
                fail_msg("not within %.0f s: %s", TU_DEADLINE_S, #cond);                           \
            ev_run((f)->loop, EVRUN_NOWAIT);                                                       \
            sample(f);                                                                             \
            poll(NULL, 0, 1);                                                                      \
        }                                                                                          \
    } while (0)

/* Runs the loop for SECS, sampling a.inflight. */
static void
run_for(struct fix *f, double secs)
{
    for (double end = tu_now_s() + secs; tu_now_s() < end;) {
        ev_run(f->loop, EVRUN_NOWAIT);
        sample(f);
        poll(NULL, 0, 1);
    }
}

static int
queued(const struct fix *f)
{
    int n = 0;

    for (int i = 0; i < f->n; i++)
        n += f->in[i]->queued;
    return n;
}

static uint64_t
sum_ok(const struct fix *f)
{
    uint64_t n = 0;

    for (int i = 0; i < f->n; i++)
        n += f->in[i]->probes_ok;
    return n;
}

/*
 * Five instances start with max_inflight 2: two first probes go out at once, the other three
 * wait in the queue, in order, and start as slots free; never more than two in flight, seen
 * from the agent or from Redis, and none left in flight at the end.
 */
static void
test_first_probes_bounded(void **state)
{
    struct fix *f = *state;

    make(f, 5, 2, 1000, 800); /* regular probes an interval later: after this test's end */
    f->srv.hold = 1;
    for (int i = 0; i < 5; i++)
        inst_start(f->in[i], 0.);
    ev_run(f->loop, EVRUN_NOWAIT); /* first probes go out once the loop runs */
    sample(f);
    assert_int_equal(f->a.inflight, 2);
    assert_int_equal(queued(f), 3);
    assert_true(f->in[0]->probe.inflight && f->in[1]->probe.inflight);

    RUN_UNTIL(f, f->srv.outstanding == 2);
    run_for(f, 0.05); /* nothing more starts while the two are held */
    assert_int_equal(f->srv.pings, 2);
    assert_int_equal(queued(f), 3);

    srv_release(&f->srv, 1);
    RUN_UNTIL(f, f->in[0]->probes_ok == 1 && f->in[1]->probes_ok == 1 && f->srv.outstanding == 2);
    assert_true(f->in[2]->probe.inflight && f->in[3]->probe.inflight); /* the queue's order */
    assert_int_equal(queued(f), 1);
    assert_true(f->in[4]->queued);

    srv_release(&f->srv, 1);
    RUN_UNTIL(f, sum_ok(f) == 4 && f->srv.outstanding == 1);
    assert_true(f->in[4]->probe.inflight);
    assert_int_equal(queued(f), 0);

    srv_release(&f->srv, 0);
    RUN_UNTIL(f, sum_ok(f) == 5);
    run_for(f, 0.05);
    assert_int_equal(f->a.inflight, 0);
    assert_int_equal(f->max_inflight_seen, 2);
    assert_int_equal(f->srv.max_outstanding, 2);
    assert_int_equal(f->srv.pings, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f->in[i]->probes_ok, 1);
        assert_int_equal(f->in[i]->probes_skipped, 0);
        assert_int_equal(f->in[i]->health.state, INST_UP);
    }
    assert_int_equal(f->a.c.probes_skipped, 0);
}

/*
 * max_inflight 1: while one instance's probe is held, the other's period falls due; that probe
 * is skipped (counted on the instance and the agent), not started. Released, the held probe
 * completes and nothing is left in flight.
 */
static void
test_due_probe_skipped_at_max_inflight(void **state)
{
    struct fix *f = *state;
    struct inst *a0, *b0;

    make(f, 2, 1, 1000, 800);
    a0 = f->in[0];
    b0 = f->in[1];
    inst_start(a0, 0.);  /* regular probes from 1.0 s on */
    inst_start(b0, 0.7); /* from 0.7 s on */
    ev_run(f->loop, EVRUN_NOWAIT); /* first probes go out once the loop runs */
    assert_int_equal(f->a.inflight, 1);
    assert_true(b0->queued);
    RUN_UNTIL(f, a0->probes_ok == 1 && b0->probes_ok == 1);
    assert_int_equal(f->a.inflight, 0);

    f->srv.hold = 1; /* b0's probe at 0.7 s is held past a0's due time, 1.0 s */
    RUN_UNTIL(f, a0->probes_skipped > 0);
    assert_int_equal(a0->probes_skipped, 1);
    assert_int_equal(f->a.c.probes_skipped, 1);
    assert_true(b0->probe.inflight);
    assert_false(a0->probe.inflight);
    assert_int_equal(f->a.inflight, 1);
    assert_int_equal(f->srv.outstanding, 1);

    srv_release(&f->srv, 0);
    RUN_UNTIL(f, b0->probes_ok == 2);
    assert_int_equal(f->a.inflight, 0);
    assert_int_equal(a0->probes_ok, 1); /* the skipped probe was not made up for */
    assert_int_equal(b0->probes_skipped, 0);
    assert_int_equal(a0->probes_timeout + b0->probes_timeout, 0);
    assert_int_equal(f->max_inflight_seen, 1);
    assert_int_equal(f->srv.max_outstanding, 1);
}

/* Where INST's period fires next, as an offset from its phase: 0 when on it (mod interval). */
static double
phase_error(const struct fix *f, struct inst *inst)
{
    double interval = (double)inst->conf->interval_ms / 1000.0;
    double next = ev_now(f->loop) + ev_timer_remaining(f->loop, &inst->period);
    double off = fmod(next - f->a.tune.base - inst->phase_at + 100. * interval, interval);

    return off > interval / 2 ? off - interval : off;
}

static uint64_t
fired(const struct inst *inst)
{
    return inst->probes_ok + inst->probes_failed + inst->probes_skipped;
}

/*
 * After a stall of more than two intervals (the test blocks the loop, as SIGSTOP would) libev
 * fires every late period at once and restarts them all from that moment; each instance's
 * period goes back to its own phase: it fires once at the end of the stall, next on its phase,
 * and the two instances stay in different rounds.
 */
static void
test_stall_keeps_phase(void **state)
{
    struct fix *f = *state;
    const double interval = 0.3;

    make(f, 2, 10, 300, 200); /* rounds of 100 ms: phases 0.1 and 0.2 */
    inst_start(f->in[0], 0.2);
    inst_start(f->in[1], 0.6);
    RUN_UNTIL(f, f->in[0]->probes_ok >= 2 && f->in[1]->probes_ok >= 2 && f->a.inflight == 0);
    assert_true(fabs(f->in[0]->phase_at - f->in[1]->phase_at) > 0.05);
    for (int i = 0; i < 2; i++)
        assert_true(fabs(phase_error(f, f->in[i])) < 0.002);

    /* stall until a moment half-way between neither phase: 0 mod the interval, 0.8 s on */
    double base = f->a.tune.base, now = ev_time();
    double until = base + ceil((now + 0.8 - base) / interval) * interval;
    uint64_t before[2] = {fired(f->in[0]), fired(f->in[1])};
    while (ev_time() < until)
        poll(NULL, 0, (int)((until - ev_time()) * 1000.) + 1);

    run_for(f, 0.06); /* before either phase comes round (0.1 and 0.2 from here) */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fired(f->in[i]) - before[i], 1); /* once, not again at once */
        double err = phase_error(f, f->in[i]);
        if (fabs(err) > 0.002)
            fail_msg("instance %d: next period %.3f s off its phase", i, err);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_probes_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_due_probe_skipped_at_max_inflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stall_keeps_phase, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
