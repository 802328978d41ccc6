/* test_conf.c -- unit tests of conf.c: parsing, validation, error reports, durations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <grp.h>

#include "conf.h"

#define ZK     "[zookeeper]\nhosts = 127.0.0.1:2181\n"
#define SECRET "hunter2-s3cret"

/* Loads TEXT as "t.conf" and checks that no message could leak SECRET. */
static struct conf *
load(const char *text, struct conf_errors *errs)
{
    struct conf *c;

    memset(errs, 0, sizeof(*errs));
    c = conf_load_string("t.conf", text, errs);
    for (size_t i = 0; i < errs->n; i++) {
        if (strstr(errs->msg[i], SECRET) || strstr(errs->msg[i], "s3cret"))
            fail_msg("secret leaked: %s", errs->msg[i]);
    }
    if (c)
        assert_int_equal(errs->n, 0);
    return c;
}

static struct conf *
load_ok(const char *text)
{
    struct conf_errors errs;
    struct conf *c = load(text, &errs);

    for (size_t i = 0; i < errs.n; i++)
        print_error("unexpected: %s\n", errs.msg[i]);
    assert_non_null(c);
    conf_errors_free(&errs);
    return c;
}

/*
 * Loads TEXT, which must fail with exactly N errors; each WANT[i] is "LINE|fragment": the
 * message must start with "t.conf:LINE: error: " and contain the fragment.
 */
static void
expect_errors(const char *text, const char *const *want, size_t n)
{
    struct conf_errors errs;
    struct conf *c = load(text, &errs);
    bool ok = c == NULL && errs.n == n;

    for (size_t i = 0; ok && i < n; i++) {
        const char *bar = strchr(want[i], '|');
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "t.conf:%.*s: error: ", (int)(bar - want[i]), want[i]);
        if (strncmp(errs.msg[i], prefix, strlen(prefix)) != 0 ||
            strstr(errs.msg[i] + strlen(prefix), bar + 1) == NULL)
            ok = false;
    }
    if (!ok) {
        print_error("text:\n%s\nwanted %zu errors:\n", text, n);
        for (size_t i = 0; i < n; i++)
            print_error("  %s\n", want[i]);
        print_error("got %zu:\n", errs.n);
        for (size_t i = 0; i < errs.n; i++)
            print_error("  %s\n", errs.msg[i]);
        conf_free(c);
        conf_errors_free(&errs);
        fail();
    }
    conf_errors_free(&errs);
    assert_null(errs.msg);
    assert_int_equal(errs.n, 0);
}

#define EXPECT_ERRORS(text, ...)                                                                   \
    expect_errors(text, (const char *const[]){__VA_ARGS__},                                        \
                  sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void
test_full_file(void **state)
{
    (void)state;
    struct conf *c = load_ok("; full\n"
                             "[agent]\n"
                             "name = host-01.example\n"
                             "interval = 2s\n"
                             "timeout = 750ms\n"
                             "rise = 3\n"
                             "fall = 4\n"
                             "max_inflight = 10\n"
                             "stats_socket = /tmp/sa.sock\n"
                             "stats_socket_mode = 0600\n"
                             "log_level = debug\n"
                             "shutdown_timeout = 1m\n"
                             "metrics_listen = 127.0.0.1:9121\n"
                             "[zookeeper]\n"
                             "hosts = zk1:2181,10.0.0.2:2182,[::1]:2183\n"
                             "root = /sa/prod\n"
                             "session_timeout = 30s\n"
                             "auth = agent:" SECRET "\n"
                             "[instance cache-a]\n"
                             "address = 127.0.0.1:6379\n"
                             "cluster = cache\n"
                             "username = app\n"
                             "password = " SECRET "\n"
                             "interval = 5s\n"
                             "timeout = 5s\n"
                             "rise = 1\n"
                             "fall = 100\n"
                             "[instance b_2]\n"
                             "address = [::1]:6380\n"
                             "[instance sock]\n"
                             "address = unix:/run/redis/redis.sock\n"
                             "password = x\n");
    const struct conf_instance *a, *b, *s;
    char buf[128];

    assert_string_equal(c->path, "t.conf");
    assert_string_equal(c->name, "host-01.example");
    assert_int_equal(c->interval_ms, 2000);
    assert_int_equal(c->timeout_ms, 750);
    assert_int_equal(c->rise, 3);
    assert_int_equal(c->fall, 4);
    assert_int_equal(c->max_inflight, 10);
    assert_string_equal(c->stats_socket, "/tmp/sa.sock");
    assert_int_equal(c->stats_socket_mode, 0600);
    assert_int_equal(c->log_level, LOGL_DEBUG);
    assert_int_equal(c->shutdown_timeout_ms, 60000);
    assert_string_equal(c->metrics_listen, "127.0.0.1:9121");
    assert_int_equal(c->metrics_addr.family, AF_INET);
    assert_string_equal(c->metrics_addr.host, "127.0.0.1");
    assert_int_equal(c->metrics_addr.port, 9121);
    assert_string_equal(c->zk_hosts, "zk1:2181,10.0.0.2:2182,[::1]:2183");
    assert_string_equal(c->zk_root, "/sa/prod");
    assert_int_equal(c->zk_session_timeout_ms, 30000);
    assert_string_equal(c->zk_auth, "agent:" SECRET);
    assert_int_equal(c->ninstances, 3);

    a = TAILQ_FIRST(&c->instances);
    b = TAILQ_NEXT(a, link);
    s = TAILQ_NEXT(b, link);
    assert_null(TAILQ_NEXT(s, link));
    assert_string_equal(a->name, "cache-a");
    assert_string_equal(a->cluster, "cache");
    assert_string_equal(a->address, "127.0.0.1:6379");
    assert_int_equal(a->addr.family, AF_INET);
    assert_string_equal(a->addr.host, "127.0.0.1");
    assert_int_equal(a->addr.port, 6379);
    assert_string_equal(a->username, "app");
    assert_string_equal(a->password, SECRET);
    assert_int_equal(a->interval_ms, 5000);
    assert_int_equal(a->timeout_ms, 5000);
    assert_int_equal(a->rise, 1);
    assert_int_equal(a->fall, 100);
    assert_int_equal(a->line, 19);

    assert_string_equal(b->name, "b_2");
    assert_string_equal(b->cluster, "default");
    assert_int_equal(b->addr.family, AF_INET6);
    assert_string_equal(b->addr.host, "::1");
    assert_int_equal(b->addr.port, 6380);
    assert_null(b->username);
    assert_null(b->password);
    assert_int_equal(b->interval_ms, 2000);
    assert_int_equal(b->timeout_ms, 750);
    assert_int_equal(b->rise, 3);
    assert_int_equal(b->fall, 4);
    assert_int_equal(b->line, 28);

    assert_int_equal(s->addr.family, AF_UNIX);
    assert_string_equal(s->addr.path, "/run/redis/redis.sock");
    assert_null(s->username);
    assert_string_equal(s->password, "x");
    addr_format(&s->addr, buf, sizeof(buf));
    assert_string_equal(buf, "unix:/run/redis/redis.sock");

    assert_ptr_equal(conf_find_instance(c, "b_2"), b);
    assert_ptr_equal(conf_find_instance(c, "cache-a"), a);
    assert_null(conf_find_instance(c, "nope"));
    conf_free(c);
}

static void
test_defaults(void **state)
{
    (void)state;
    struct conf *c = load_ok(ZK);
    char host[256] = "";

    gethostname(host, sizeof(host) - 1);
    assert_string_equal(c->name, host);
    assert_int_equal(c->interval_ms, 1000);
    assert_int_equal(c->timeout_ms, 500);
    assert_int_equal(c->rise, 2);
    assert_int_equal(c->fall, 2);
    assert_int_equal(c->max_inflight, 1024);
    assert_string_equal(c->stats_socket, "/run/sentinel-agent/stats.sock");
    assert_int_equal(c->stats_socket_mode, 0660);
    assert_int_equal(c->log_level, LOGL_INFO);
    assert_int_equal(c->shutdown_timeout_ms, 5000);
    assert_null(c->metrics_listen);
    assert_null(c->stats_socket_group);
    assert_int_equal(c->stats_socket_gid, (gid_t)-1);
    assert_string_equal(c->state_dir, "/var/lib/sentinel-agent");
    assert_string_equal(c->zk_hosts, "127.0.0.1:2181");
    assert_string_equal(c->zk_root, "/sentinel-agent");
    assert_int_equal(c->zk_session_timeout_ms, 10000);
    assert_null(c->zk_auth);
    assert_int_equal(c->ninstances, 0);
    assert_true(TAILQ_EMPTY(&c->instances));
    conf_free(c);
}

/* Instances inherit the [agent] values wherever [agent] stands in the file. */
static void
test_inheritance_any_order(void **state)
{
    (void)state;
    struct conf *c = load_ok("[instance early]\n"
                             "address = 127.0.0.1:1\n"
                             "rise = 7\n" ZK "[agent]\n"
                             "interval = 3s\n"
                             "timeout = 2s\n"
                             "rise = 5\n"
                             "fall = 6\n"
                             "[instance late]\n"
                             "address = 127.0.0.1:2\n"
                             "timeout = 3s\n");
    const struct conf_instance *e = conf_find_instance(c, "early");
    const struct conf_instance *l = conf_find_instance(c, "late");

    assert_non_null(e);
    assert_non_null(l);
    assert_ptr_equal(TAILQ_FIRST(&c->instances), e);
    assert_int_equal(e->interval_ms, 3000);
    assert_int_equal(e->timeout_ms, 2000);
    assert_int_equal(e->rise, 7);
    assert_int_equal(e->fall, 6);
    assert_int_equal(l->interval_ms, 3000);
    assert_int_equal(l->timeout_ms, 3000);
    assert_int_equal(l->rise, 5);
    assert_int_equal(l->fall, 6);
    conf_free(c);
}

/* Indentation, inline comments, CRLF, a BOM, '#' comments and blank lines. */
static void
test_syntax_variants(void **state)
{
    (void)state;
    struct conf *c = load_ok("\xEF\xBB\xBF"
                             "# comment\r\n"
                             "[zookeeper]   ; trailing comment\r\n"
                             "  hosts = 127.0.0.1:2181 ; inline\r\n"
                             "    root=/x\r\n"
                             "\r\n"
                             "   \t\n"
                             "[ instance   a ]\n"
                             "\taddress = 127.0.0.1:6379\n"
                             "\tpassword = p;w ; ';' after a space starts a comment\n"
                             "\tusername = u");
    const struct conf_instance *a = conf_find_instance(c, "a");

    assert_string_equal(c->zk_hosts, "127.0.0.1:2181");
    assert_string_equal(c->zk_root, "/x");
    assert_non_null(a);
    assert_string_equal(a->password, "p;w");
    assert_string_equal(a->username, "u");
    assert_int_equal(a->line, 7);
    conf_free(c);
}

static void
test_example_config(void **state)
{
    (void)state;
    char path[4096];
    const char *slash = strrchr(__FILE__, '/');
    struct conf_errors errs = {0};
    struct conf *c;

    /* this file is tests/unit/test_conf.c; the example is config/sentinel-agent.conf */
    snprintf(path, sizeof(path), "%.*s/../../config/sentinel-agent.conf",
             slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
    /* Its stats_socket_group is the package's: a host without the package lacks the group. */
    c = conf_load_flags(path, getgrnam("sentinel-agent-ops") ? 0 : CONF_NO_RESOLVE, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msg[i]);
    assert_non_null(c);
    assert_string_equal(c->stats_socket_group, "sentinel-agent-ops");
    assert_string_equal(c->state_dir, "/var/lib/sentinel-agent");
    assert_int_equal(c->ninstances, 2);
    assert_string_equal(c->zk_hosts, "127.0.0.1:2181");
    assert_string_equal(c->stats_socket, "/run/sentinel-agent/stats.sock");
    assert_non_null(conf_find_instance(c, "cache-a"));
    assert_int_equal(conf_find_instance(c, "sessions-1")->fall, 3);
    conf_free(c);
    conf_errors_free(&errs);
}

static void
test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_conf.XXXXXX";
    char want[128];
    int fd = mkstemp(path);
    struct conf_errors errs = {0};
    struct conf *c;
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs(ZK "[instance a]\naddress = localhost:6379\n[instance b]\n", f);
    fclose(f);

    c = conf_load(path, &errs);
    assert_null(c);
    assert_int_equal(errs.n, 1);
    snprintf(want, sizeof(want), "%s:5: error: missing address in [instance b]", path);
    assert_string_equal(errs.msg[0], want);
    conf_errors_free(&errs);

    f = fopen(path, "a");
    fputs("address = unix:/tmp/x.sock\n", f);
    fclose(f);
    c = conf_load(path, &errs);
    assert_non_null(c);
    assert_int_equal(errs.n, 0);
    assert_string_equal(c->path, path);
    assert_int_equal(c->ninstances, 2);
    conf_free(c);
    unlink(path);

    c = conf_load(path, &errs);
    assert_null(c);
    assert_int_equal(errs.n, 1);
    snprintf(want, sizeof(want), "%s: error: cannot open: No such file or directory", path);
    assert_string_equal(errs.msg[0], want);
    conf_errors_free(&errs);

    c = conf_load("/tmp", &errs);
    assert_null(c);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msg[0], "/tmp: error: cannot read: Is a directory");
    conf_errors_free(&errs);
}

/* CONF_NO_RESOLVE: the same checks, but no host name is looked up (sentinel-agentctl). */
static void
test_load_no_resolve(void **state)
{
    (void)state;
    char path[] = "/tmp/test_conf.XXXXXX";
    int fd = mkstemp(path);
    struct conf_errors errs = {0};
    struct conf *c;
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("[agent]\nstats_socket = /tmp/x.sock\nmetrics_listen = metrics.invalid:9\n" ZK
          "[instance a]\naddress = redis.invalid:6379\n[instance b]\naddress = 127.0.0.1:1\n",
          f);
    fclose(f);

    c = conf_load_flags(path, CONF_NO_RESOLVE, &errs);
    assert_non_null(c);
    assert_string_equal(c->stats_socket, "/tmp/x.sock");
    assert_int_equal(c->metrics_addr.family, AF_UNSPEC);
    assert_int_equal(conf_find_instance(c, "a")->addr.family, AF_UNSPEC);
    assert_int_equal(conf_find_instance(c, "a")->addr.port, 6379);
    assert_string_equal(conf_find_instance(c, "b")->addr.host, "127.0.0.1");
    conf_free(c);

    /* resolving, the names fail; without, every other error is still found */
    c = conf_load(path, &errs);
    assert_null(c);
    assert_int_equal(errs.n, 2);
    assert_non_null(strstr(errs.msg[0], ":3: error: bad metrics_listen"));
    assert_non_null(strstr(errs.msg[1], ":7: error: bad address \"redis.invalid:6379\""));
    conf_errors_free(&errs);
    f = fopen(path, "a");
    fputs("rise = 0\n", f);
    fclose(f);
    c = conf_load_flags(path, CONF_NO_RESOLVE, &errs);
    assert_null(c);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msg[0], ":10: error: rise 0 out of range"));
    conf_errors_free(&errs);
    unlink(path);
}

/* sentinel-agentctl loads without resolving: a group name is then kept, not looked up. */
static void
test_group_no_resolve(void **state)
{
    (void)state;
    char path[] = "/tmp/test_conf.XXXXXX";
    int fd = mkstemp(path);
    struct conf_errors errs = {0};
    struct conf *c;
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("[agent]\nstats_socket_group = no-such-group-sa\n" ZK, f);
    fclose(f);
    c = conf_load_flags(path, CONF_NO_RESOLVE, &errs);
    assert_non_null(c);
    assert_string_equal(c->stats_socket_group, "no-such-group-sa");
    assert_int_equal(c->stats_socket_gid, (gid_t)-1);
    conf_free(c);
    assert_null(conf_load(path, &errs));
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msg[0], ":2: error: bad stats_socket_group"));
    conf_errors_free(&errs);
    unlink(path);
}

static void
test_missing_zookeeper(void **state)
{
    (void)state;
    EXPECT_ERRORS("", "1|missing section [zookeeper] (hosts is required)");
    EXPECT_ERRORS("\n\n[agent]\nrise = 3\n", "1|missing section [zookeeper] (hosts is required)");
    EXPECT_ERRORS("[agent]\n\n[zookeeper]\nroot = /x\n", "3|missing hosts in [zookeeper]");
}

static void
test_sections(void **state)
{
    (void)state;
    EXPECT_ERRORS(ZK "[agnet]\nrise = 3\nbogus = 1\n", "3|unknown section [agnet]");
    EXPECT_ERRORS(ZK "[Agent]\n", "3|unknown section [Agent]");
    EXPECT_ERRORS(ZK "[]\n", "3|unknown section []");
    EXPECT_ERRORS(ZK "[instances a]\n", "3|unknown section [instances a]");
    EXPECT_ERRORS("rise = 2\n" ZK, "1|key \"rise\" before any section");
    EXPECT_ERRORS(ZK "[agent]\nrise = 3\n[agent]\nfall = 3\nrise = 4\n",
                  "5|duplicate section [agent] (first on line 3)",
                  "7|duplicate key \"rise\" in [agent] (first given on line 4)");
    EXPECT_ERRORS(ZK "[zookeeper]\n", "3|duplicate section [zookeeper] (first on line 1)");
}

static void
test_unknown_keys(void **state)
{
    (void)state;
    EXPECT_ERRORS(ZK "[agent]\nintervall = 1s\n", "4|unknown key \"intervall\" in [agent]");
    EXPECT_ERRORS(ZK "chroot = /x\n", "3|unknown key \"chroot\" in [zookeeper]");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\nport = 1\n",
                  "5|unknown key \"port\" in [instance a]");
    EXPECT_ERRORS(ZK "[agent]\nName = x\n", "4|unknown key \"Name\" in [agent]");
    EXPECT_ERRORS(ZK "[agent]\nlog level = info\n", "4|unknown key \"log level\" in [agent]");
}

static void
test_duplicate_keys(void **state)
{
    (void)state;
    EXPECT_ERRORS(ZK "[agent]\ninterval = 1s\ntimeout = 1s\ninterval = 2s\n",
                  "6|duplicate key \"interval\" in [agent] (first given on line 4)");
    EXPECT_ERRORS(ZK "hosts = 127.0.0.1:2182\n",
                  "3|duplicate key \"hosts\" in [zookeeper] (first given on line 2)");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\npassword = " SECRET
                     "\npassword = " SECRET "x\n",
                  "6|duplicate key \"password\" in [instance a] (first given on line 5)");
}

/* The key table: each key is known only in its own sections, wherever it is otherwise valid. */
static void
test_key_sections(void **state)
{
    (void)state;
    EXPECT_ERRORS(ZK "[agent]\naddress = 127.0.0.1:1\n", "4|unknown key \"address\" in [agent]");
    EXPECT_ERRORS(ZK "[agent]\nhosts = 127.0.0.1:1\n", "4|unknown key \"hosts\" in [agent]");
    EXPECT_ERRORS(ZK "interval = 1s\n", "3|unknown key \"interval\" in [zookeeper]");
    EXPECT_ERRORS(ZK "name = x\n", "3|unknown key \"name\" in [zookeeper]");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\nmax_inflight = 1\n",
                  "5|unknown key \"max_inflight\" in [instance a]");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\nroot = /x\n",
                  "5|unknown key \"root\" in [instance a]");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\nname = x\n",
                  "5|unknown key \"name\" in [instance a]");
    /* one section's keys do not count in another's: not duplicates */
    struct conf *c = load_ok("[agent]\nrise = 3\n[instance a]\naddress = 127.0.0.1:1\nrise = 4\n"
                             "[instance b]\naddress = 127.0.0.1:2\nrise = 5\n" ZK);
    assert_int_equal(c->rise, 3);
    assert_int_equal(conf_find_instance(c, "a")->rise, 4);
    assert_int_equal(conf_find_instance(c, "b")->rise, 5);
    conf_free(c);
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\naddress = 127.0.0.1:2\n",
                  "5|duplicate key \"address\" in [instance a] (first given on line 4)");
}

/* Overrides have the [agent] ranges; each one not given is the [agent] value, key by key. */
static void
test_key_overrides(void **state)
{
    (void)state;
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ninterval = 61m\ntimeout = 9\n"
                     "rise = 101\nfall = 0\n",
                  "5|interval \"61m\" out of range (100ms..60m)",
                  "6|timeout \"9\" out of range (10ms..60m)", "7|rise 101 out of range (1..100)",
                  "8|fall 0 out of range (1..100)");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\nrise =\n", "5|empty value for rise");

    static const char *const one[] = {"interval = 4s", "timeout = 300ms", "rise = 9", "fall = 8"};
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 ZK "[agent]\ninterval = 3s\ntimeout = 200ms\nrise = 4\nfall = 5\n"
                    "[instance a]\naddress = 127.0.0.1:1\n%s\n",
                 one[i]);
        struct conf *c = load_ok(text);
        const struct conf_instance *a = conf_find_instance(c, "a");
        assert_int_equal(a->interval_ms, i == 0 ? 4000 : 3000);
        assert_int_equal(a->timeout_ms, i == 1 ? 300 : 200);
        assert_int_equal(a->rise, i == 2 ? 9 : 4);
        assert_int_equal(a->fall, i == 3 ? 8 : 5);
        conf_free(c);
    }
}

/* downinter: [agent] and per instance, 50ms .. interval; unset: min(250ms, interval). */
static void
test_downinter(void **state)
{
    (void)state;
    struct conf *c = load_ok(ZK "[agent]\ninterval = 1s\n[instance a]\naddress = 127.0.0.1:1\n"
                                "[instance b]\naddress = 127.0.0.1:2\ninterval = 100ms\n"
                                "timeout = 50ms\n"
                                "[instance c]\naddress = 127.0.0.1:3\ndowninter = 50ms\n");
    assert_int_equal(c->downinter_ms, 250);
    assert_int_equal(conf_find_instance(c, "a")->downinter_ms, 250);
    assert_int_equal(conf_find_instance(c, "b")->downinter_ms, 100); /* min(250ms, 100ms) */
    assert_int_equal(conf_find_instance(c, "c")->downinter_ms, 50);
    conf_free(c);

    /* an [agent] value is inherited; the default follows the agent's own interval */
    c = load_ok(ZK "[agent]\ninterval = 2s\ndowninter = 1s\n[instance a]\naddress = 127.0.0.1:1\n"
                   "[instance b]\naddress = 127.0.0.1:2\ninterval = 5s\ndowninter = 5s\n");
    assert_int_equal(conf_find_instance(c, "a")->downinter_ms, 1000);
    assert_int_equal(conf_find_instance(c, "b")->downinter_ms, 5000);
    conf_free(c);
    c = load_ok(ZK "[agent]\ninterval = 200ms\ntimeout = 100ms\n");
    assert_int_equal(c->downinter_ms, 200);
    conf_free(c);

    /* out of range, not a duration, above the interval: errors naming the key and the line */
    EXPECT_ERRORS(ZK "[agent]\ndowninter = 49ms\n[instance a]\naddress = 127.0.0.1:1\n"
                     "downinter = soon\n",
                  "4|downinter \"49ms\" out of range (50ms..60m)",
                  "7|bad duration \"soon\" for downinter");
    EXPECT_ERRORS(ZK "[agent]\ninterval = 1s\ndowninter = 2s\n",
                  "5|downinter 2s exceeds interval 1s");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ninterval = 1s\ndowninter = 1500ms\n",
                  "6|downinter 1500ms exceeds interval 1s");
    /* an explicit [agent] value above an instance's own interval: on the section header */
    EXPECT_ERRORS(ZK "[agent]\ndowninter = 500ms\n[instance a]\naddress = 127.0.0.1:1\n"
                     "interval = 300ms\ntimeout = 100ms\n",
                  "5|downinter 500ms (inherited from [agent]) exceeds interval 300ms");
    /* an instance's own value above the [agent] interval it inherits */
    EXPECT_ERRORS(ZK "[agent]\ninterval = 1s\n[instance a]\naddress = 127.0.0.1:1\n"
                     "downinter = 2s\n",
                  "7|downinter 2s exceeds interval 1s (inherited from [agent])");

    /* a changed downinter is a changed instance for a reload */
    struct conf *x = load_ok(ZK "[instance a]\naddress = 127.0.0.1:1\n");
    struct conf *y = load_ok(ZK "[instance a]\naddress = 127.0.0.1:1\ndowninter = 100ms\n");
    assert_false(conf_instance_equal(conf_find_instance(x, "a"), conf_find_instance(y, "a")));
    conf_free(x);
    conf_free(y);
}

static void
test_bad_lines(void **state)
{
    (void)state;
    EXPECT_ERRORS(ZK "garbage\n", "3|expected '[section]' or 'key = value'");
    EXPECT_ERRORS(ZK "hosts: 127.0.0.1:2181\n", "3|expected '[section]' or 'key = value'");
    EXPECT_ERRORS(ZK "= 1\n", "3|expected '[section]' or 'key = value'");
    EXPECT_ERRORS(ZK "[agent\n", "3|expected '[section]' or 'key = value'");
    EXPECT_ERRORS(ZK "[agent] rise = 2\n", "3|expected '[section]' or 'key = value'");
    EXPECT_ERRORS(ZK "[agent ;x]\n", "3|expected '[section]' or 'key = value'");
    EXPECT_ERRORS(ZK "rise ;= 2\n", "3|expected '[section]' or 'key = value'");
    /* a wrapped value is not inih's continuation: it is a line of its own */
    EXPECT_ERRORS("[zookeeper]\nhosts = 127.0.0.1:2181,\n  127.0.0.2:2181\n",
                  "2|bad hosts entry \"\": empty entry", "3|expected '[section]' or 'key = value'");
    EXPECT_ERRORS(ZK "[agent]\nrise =\n", "4|empty value for rise");
}

static void
test_line_length(void **state)
{
    (void)state;
    char text[1024], longv[300];
    struct conf *c;

    /* "root = /" is 8 characters: the line is 197 characters, the longest inih accepts */
    memset(longv, 'r', 189);
    longv[189] = '\0';
    snprintf(text, sizeof(text), ZK "root = /%s\n", longv);
    c = load_ok(text);
    assert_int_equal(strlen(c->zk_root), 190);
    conf_free(c);

    snprintf(text, sizeof(text), ZK "root = /%sr\n", longv);
    EXPECT_ERRORS(text, "3|line too long (more than 197 characters)");

    /* the rest of a long line must not be read as a line of its own */
    memset(longv, 'x', 250);
    longv[250] = '\0';
    snprintf(text, sizeof(text),
             ZK "[instance a]\naddress = 127.0.0.1:1\npassword = %s" SECRET "\nrise = 0\n", longv);
    EXPECT_ERRORS(text, "5|line too long", "6|rise 0 out of range (1..100)");

    /* comment lines may be longer */
    snprintf(text, sizeof(text), ZK "; %s\n", longv);
    conf_free(load_ok(text));
}

static void
test_bad_durations(void **state)
{
    (void)state;
    EXPECT_ERRORS(ZK "[agent]\ninterval = 5x\n", "4|bad duration \"5x\" for interval");
    EXPECT_ERRORS(ZK "[agent]\ninterval = 1.5s\n", "4|bad duration \"1.5s\" for interval");
    EXPECT_ERRORS(ZK "[agent]\ninterval = -1s\n", "4|bad duration \"-1s\" for interval");
    EXPECT_ERRORS(ZK "[agent]\ninterval = 10 s\n", "4|bad duration \"10 s\" for interval");
    EXPECT_ERRORS(ZK "[agent]\ninterval = 1H\n", "4|bad duration \"1H\" for interval");
    EXPECT_ERRORS(ZK "[agent]\ninterval = 2h\n", "4|interval \"2h\" out of range (100ms..60m)");
    EXPECT_ERRORS(ZK "[agent]\ninterval = 99ms\n", "4|interval \"99ms\" out of range (100ms..60m)");
    EXPECT_ERRORS(ZK "[agent]\ninterval = 61m\n", "4|interval \"61m\" out of range (100ms..60m)");
    EXPECT_ERRORS(ZK "[agent]\ntimeout = 9\n", "4|timeout \"9\" out of range (10ms..60m)");
    EXPECT_ERRORS(ZK "[agent]\nshutdown_timeout = 99ms\n",
                  "4|shutdown_timeout \"99ms\" out of range (100ms..10m)");
    EXPECT_ERRORS(ZK "[agent]\nshutdown_timeout = 601s\n",
                  "4|shutdown_timeout \"601s\" out of range (100ms..10m)");
    EXPECT_ERRORS(ZK "session_timeout = 999ms\n",
                  "3|session_timeout \"999ms\" out of range (1s..10m)");
    EXPECT_ERRORS(ZK "session_timeout = 11m\n", "3|session_timeout \"11m\" out of range (1s..10m)");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ninterval = 0\n",
                  "5|interval \"0\" out of range (100ms..60m)");

    struct conf *c = load_ok(ZK "session_timeout = 1s\n[agent]\ninterval = 100ms\ntimeout = 10\n"
                                "shutdown_timeout = 10m\n");
    assert_int_equal(c->interval_ms, 100);
    assert_int_equal(c->timeout_ms, 10);
    assert_int_equal(c->shutdown_timeout_ms, 600000);
    assert_int_equal(c->zk_session_timeout_ms, 1000);
    conf_free(c);
    c = load_ok(ZK "session_timeout = 600s\n[agent]\ninterval = 60m\ntimeout = 3600000\n");
    assert_int_equal(c->interval_ms, 3600000);
    assert_int_equal(c->timeout_ms, 3600000);
    assert_int_equal(c->zk_session_timeout_ms, 600000);
    conf_free(c);
}

static void
test_timeout_vs_interval(void **state)
{
    (void)state;
    /* [agent]: an explicit timeout names its line, the default one the header's */
    EXPECT_ERRORS(ZK "[agent]\ninterval = 1s\ntimeout = 2s\n", "5|timeout 2s exceeds interval 1s");
    EXPECT_ERRORS(ZK "[agent]\ninterval = 200ms\n",
                  "3|timeout 500ms (default) exceeds interval 200ms");
    /* an instance's own timeout */
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ntimeout = 1001\n",
                  "5|timeout 1001ms exceeds interval 1s (inherited from [agent])");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ntimeout = 3s\ninterval = 2s\n",
                  "5|timeout 3s exceeds interval 2s");
    /* inherited timeout, own interval: the header line, even with [agent] further down */
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ninterval = 1s\n"
                     "[agent]\ninterval = 5s\ntimeout = 2s\n",
                  "3|timeout 2s (inherited from [agent]) exceeds interval 1s");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ninterval = 400ms\n",
                  "3|timeout 500ms (inherited from [agent]) exceeds interval 400ms");
    /* a rejected value is reported once, not again as a timeout problem */
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ninterval = 1x\ntimeout = 2s\n",
                  "5|bad duration \"1x\" for interval");
    /* an instance that inherits both does not repeat [agent]'s error */
    EXPECT_ERRORS(ZK "[agent]\ninterval = 200ms\n[instance a]\naddress = 127.0.0.1:1\n",
                  "3|timeout 500ms (default) exceeds interval 200ms");
    /* equal is fine */
    conf_free(load_ok(ZK "[instance a]\naddress = 127.0.0.1:1\ntimeout = 1s\n"));
}

static void
test_instance_names(void **state)
{
    (void)state;
    char text[512], want[512], name[80];

    memset(name, 'n', 65);
    name[65] = '\0';
    snprintf(text, sizeof(text), ZK "[instance %s]\naddress = 127.0.0.1:1\n", name);
    snprintf(want, sizeof(want), "3|bad instance name \"%s\" (expected [A-Za-z0-9._-]{1,64})",
             name);
    EXPECT_ERRORS(text, want);
    name[64] = '\0';
    snprintf(text, sizeof(text), ZK "[instance %s]\naddress = 127.0.0.1:1\n", name);
    struct conf *c = load_ok(text);
    assert_non_null(conf_find_instance(c, name));
    conf_free(c);

    EXPECT_ERRORS(ZK "[instance a/b]\naddress = 127.0.0.1:1\n", "3|bad instance name \"a/b\"");
    EXPECT_ERRORS(ZK "[instance]\naddress = 127.0.0.1:1\n", "3|bad instance name \"\"");
    EXPECT_ERRORS(ZK "[instance  ]\naddress = 127.0.0.1:1\n", "3|bad instance name \"\"");
    EXPECT_ERRORS(ZK "[instance a b]\naddress = 127.0.0.1:1\n", "3|bad instance name \"a b\"");
    EXPECT_ERRORS(ZK "[instance ..]\naddress = 127.0.0.1:1\n", "3|bad instance name \"..\"");
    c = load_ok(ZK "[instance A.z_0-9]\naddress = 127.0.0.1:1\n");
    conf_free(c);
}

static void
test_duplicate_instance(void **state)
{
    (void)state;
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\n\n[instance b]\naddress = "
                     "127.0.0.1:2\n[instance a]\naddress = 127.0.0.1:3\n",
                  "8|duplicate instance \"a\" (first defined on line 3)");
}

static void
test_instance_keys(void **state)
{
    (void)state;
    EXPECT_ERRORS(ZK "[instance a]\n[instance b]\naddress = 127.0.0.1:1\n",
                  "3|missing address in [instance a]");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\nusername = app\n",
                  "5|username without password in [instance a]");
    conf_free(load_ok(ZK "[instance a]\naddress = 127.0.0.1:1\npassword = " SECRET "\n"));
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ncluster = a/b\n",
                  "5|bad cluster name \"a/b\"");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\ncluster = agents\n",
                  "5|cluster name \"agents\" is reserved");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1\n",
                  "4|bad address \"127.0.0.1\": missing port");
    EXPECT_ERRORS(ZK "[instance a]\naddress = unix:run/redis.sock\n",
                  "4|bad address \"unix:run/redis.sock\": unix socket path must be absolute");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\nrise = 0\nfall = 101\n",
                  "5|rise 0 out of range (1..100)", "6|fall 101 out of range (1..100)");
    EXPECT_ERRORS(ZK "[instance a]\naddress = 127.0.0.1:1\nfall = two\n",
                  "5|bad number \"two\" for fall");
}

static void
test_agent_values(void **state)
{
    (void)state;
    char text[512], longp[200];

    EXPECT_ERRORS(ZK "[agent]\nname = a/b\n", "4|bad name \"a/b\": must not contain '/'");
    EXPECT_ERRORS(ZK "[agent]\nname = ..\n", "4|bad name \"..\"");
    EXPECT_ERRORS(ZK "[agent]\nname = a\tb\n", "4|bad name");
    EXPECT_ERRORS(ZK "[agent]\nrise = 0\n", "4|rise 0 out of range (1..100)");
    EXPECT_ERRORS(ZK "[agent]\nfall = 101\n", "4|fall 101 out of range (1..100)");
    EXPECT_ERRORS(ZK "[agent]\nrise = +1\n", "4|bad number \"+1\" for rise");
    EXPECT_ERRORS(ZK "[agent]\nrise = 99999999999999999999\n",
                  "4|bad number \"99999999999999999999\" for rise");
    EXPECT_ERRORS(ZK "[agent]\nmax_inflight = 0\n", "4|max_inflight 0 out of range (1..1000000)");
    EXPECT_ERRORS(ZK "[agent]\nmax_inflight = 1000001\n", "4|max_inflight 1000001 out of range");
    EXPECT_ERRORS(ZK "[agent]\nstats_socket = run/s.sock\n",
                  "4|bad stats_socket \"run/s.sock\": must be an absolute path");
    memset(longp, 'p', 108);
    longp[108] = '\0';
    snprintf(text, sizeof(text), ZK "[agent]\nstats_socket = /%s\n", longp);
    EXPECT_ERRORS(text, "4|longer than 107 bytes");
    EXPECT_ERRORS(ZK "[agent]\nstats_socket_mode = 0778\n",
                  "4|bad stats_socket_mode \"0778\" (expected octal 0..0777)");
    EXPECT_ERRORS(ZK "[agent]\nstats_socket_mode = 1000\n", "4|bad stats_socket_mode \"1000\"");
    EXPECT_ERRORS(ZK "[agent]\nstats_socket_mode = rw\n", "4|bad stats_socket_mode \"rw\"");
    EXPECT_ERRORS(ZK "[agent]\nlog_level = loud\n", "4|bad log_level \"loud\"");
    EXPECT_ERRORS(ZK "[agent]\nmetrics_listen = unix:/tmp/m.sock\n",
                  "4|bad metrics_listen \"unix:/tmp/m.sock\": must be HOST:PORT");
    EXPECT_ERRORS(ZK "[agent]\nmetrics_listen = 127.0.0.1:0\n",
                  "4|bad metrics_listen \"127.0.0.1:0\": bad port");

    /* state_dir: an absolute path; stats_socket_group: a group name (looked up) or a gid */
    EXPECT_ERRORS(ZK "[agent]\nstate_dir = var/lib/sa\n",
                  "4|bad state_dir \"var/lib/sa\": must be an absolute path");
    EXPECT_ERRORS(ZK "[agent]\nstats_socket_group = no-such-group-sa\n",
                  "4|bad stats_socket_group \"no-such-group-sa\": no such group");
    EXPECT_ERRORS(ZK "[agent]\nstats_socket_group = 4294967295\n",
                  "4|bad stats_socket_group \"4294967295\": no such group");
    struct conf *c = load_ok(ZK "[agent]\nstate_dir = /srv/sa-state\nstats_socket_group = 4242\n");
    assert_string_equal(c->state_dir, "/srv/sa-state");
    assert_string_equal(c->stats_socket_group, "4242");
    assert_int_equal(c->stats_socket_gid, 4242);
    conf_free(c);
    struct group *gr = getgrgid(getegid());
    if (gr != NULL) {
        char conf[256];
        snprintf(conf, sizeof(conf), ZK "[agent]\nstats_socket_group = %s\n", gr->gr_name);
        c = load_ok(conf);
        assert_int_equal(c->stats_socket_gid, getegid());
        conf_free(c);
    }
    c = load_ok(ZK "[agent]\nstats_socket_mode = 0\nlog_level = error\n"
                   "metrics_listen = [::]:9121\nname = a b.c\n");
    assert_int_equal(c->stats_socket_mode, 0);
    assert_int_equal(c->log_level, LOGL_ERROR);
    assert_int_equal(c->metrics_addr.family, AF_INET6);
    assert_string_equal(c->metrics_addr.host, "::");
    assert_string_equal(c->name, "a b.c");
    conf_free(c);
    c = load_ok(ZK "[agent]\nstats_socket_mode = 00777\nlog_level = warn\n");
    assert_int_equal(c->stats_socket_mode, 0777);
    assert_int_equal(c->log_level, LOGL_WARN);
    conf_free(c);
}

static void
test_zookeeper_values(void **state)
{
    (void)state;
    static const struct {
        const char *hosts, *msg;
    } bad_hosts[] = {
        {"zk1", "bad hosts entry \"zk1\": missing port"},
        {":2181", "bad hosts entry \":2181\": empty host"},
        {"[]:2181", "bad hosts entry \"[]:2181\": empty host"},
        {"zk1:0", "bad hosts entry \"zk1:0\": bad port"},
        {"zk1:65536", "bad hosts entry \"zk1:65536\": bad port"},
        {"zk1:", "bad hosts entry \"zk1:\": bad port"},
        {"zk1:21x", "bad hosts entry \"zk1:21x\": bad port"},
        {"zk1:2181/chroot", "bad hosts entry \"zk1:2181/chroot\": bad port"},
        {"zk1:2181,,zk2:2181", "bad hosts entry \"\": empty entry"},
        {"zk1:2181,", "bad hosts entry \"\": empty entry"},
        {"zk1:2181, zk2:2181", "bad hosts entry \" zk2:2181\": spaces are not allowed"},
    };
    char text[256], want[256];

    for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
        snprintf(text, sizeof(text), "[zookeeper]\nhosts = %s\n", bad_hosts[i].hosts);
        snprintf(want, sizeof(want), "2|%s", bad_hosts[i].msg);
        EXPECT_ERRORS(text, want);
    }
    EXPECT_ERRORS(ZK "root = sa\n", "3|bad root \"sa\": must be an absolute path");
    EXPECT_ERRORS(ZK "root = /\n", "3|bad root \"/\": must not be \"/\"");
    EXPECT_ERRORS(ZK "root = /sa/\n", "3|bad root \"/sa/\": must not end with '/'");
    EXPECT_ERRORS(ZK "root = /a//b\n", "3|bad root \"/a//b\": must not contain empty components");
    EXPECT_ERRORS(ZK "root = /a/../b\n", "3|bad root \"/a/../b\": must not contain");
    EXPECT_ERRORS(ZK "auth = " SECRET "\n", "3|bad auth: expected user:password");
    EXPECT_ERRORS(ZK "auth = :" SECRET "\n", "3|bad auth: expected user:password");
    EXPECT_ERRORS(ZK "auth = user:\n", "3|bad auth: expected user:password");

    struct conf *c = load_ok("[zookeeper]\nhosts = 127.0.0.1:1,[::1]:2,zk.example:65535\n"
                             "root = /a/b.c/d\nauth = u:p:q\n");
    assert_string_equal(c->zk_hosts, "127.0.0.1:1,[::1]:2,zk.example:65535");
    assert_string_equal(c->zk_root, "/a/b.c/d");
    assert_string_equal(c->zk_auth, "u:p:q");
    conf_free(c);
}

/* Every error of the file, in line order, though they are found in another order. */
static void
test_many_errors(void **state)
{
    (void)state;
    EXPECT_ERRORS("[instance a]\n"          /* 1: missing address, found at the end */
                  "rise = 0\n"              /* 2 */
                  "[agent]\n"               /* 3 */
                  "interval = 10x\n"        /* 4 */
                  "nonsense\n"              /* 5 */
                  "colour = blue\n"         /* 6 */
                  "[instance a]\n"          /* 7 */
                  "address = 127.0.0.1:1\n" /* 8 */
                  "[zookeeper]\n"           /* 9: missing hosts, found at the end */
                  "session_timeout = 1\n",  /* 10 */
                  "1|missing address in [instance a]", "2|rise 0 out of range",
                  "4|bad duration \"10x\" for interval", "5|expected '[section]' or 'key = value'",
                  "6|unknown key \"colour\" in [agent]",
                  "7|duplicate instance \"a\" (first defined on line 1)",
                  "9|missing hosts in [zookeeper]", "10|session_timeout \"1\" out of range");
}

/* No message ever shows a password or the auth value, whatever is wrong around them. */
static void
test_no_secret_in_errors(void **state)
{
    (void)state;
    struct conf_errors errs;
    struct conf *c = load("[zookeeper]\n"
                          "hosts = 127.0.0.1:2181\n"
                          "auth = " SECRET "\n"
                          "auth = u:" SECRET "\n"
                          "[instance a]\n"
                          "address = 127.0.0.1:1\n"
                          "password = " SECRET "\n"
                          "password = " SECRET "\n"
                          "password =\n" SECRET "\n"
                          "  " SECRET "\n"
                          "password: " SECRET "\n"
                          "[instance b/c]\n"
                          "password = " SECRET "\n"
                          "username = bob\n"
                          "[unknown]\n"
                          "password = " SECRET "\n",
                          &errs);

    assert_null(c);
    /* lines 3, 4, 8, 9, 10, 11, 12, 13 (twice) and 16; load() checked each message */
    assert_int_equal(errs.n, 10);
    conf_errors_free(&errs);
}

static void
test_instance_equal(void **state)
{
    (void)state;
    struct conf *c =
        load_ok(ZK "[agent]\ninterval = 2s\n"
                   "[instance a]\naddress = 127.0.0.1:1\npassword = p\n"
                   "[instance b]\naddress = 127.0.0.1:1\npassword = p\n"
                   "[instance c]\naddress = 127.0.0.1:1\npassword = q\n"
                   "[instance d]\naddress = 127.0.0.1:1\npassword = p\ninterval = 2s\n"
                   "[instance e]\naddress = 127.0.0.1:1\npassword = p\nfall = 3\n"
                   "[instance f]\naddress = 127.0.0.1:01\npassword = p\n"
                   "[instance g]\naddress = 127.0.0.1:1\npassword = p\ncluster = x\n"
                   "[instance h]\naddress = 127.0.0.1:1\npassword = p\nusername = u\n");
    const struct conf_instance *a = conf_find_instance(c, "a");

    assert_true(conf_instance_equal(a, a));
    assert_true(conf_instance_equal(a, conf_find_instance(c, "b")));
    assert_true(conf_instance_equal(a, conf_find_instance(c, "d")));
    assert_false(conf_instance_equal(a, conf_find_instance(c, "c")));
    assert_false(conf_instance_equal(a, conf_find_instance(c, "e")));
    assert_false(conf_instance_equal(a, conf_find_instance(c, "f"))); /* as written differs */
    assert_false(conf_instance_equal(a, conf_find_instance(c, "g")));
    assert_false(conf_instance_equal(a, conf_find_instance(c, "h")));
    conf_free(c);

    /* the same text loaded twice compares equal; a changed inherited value does not */
    struct conf *x = load_ok(ZK "[instance a]\naddress = unix:/s\nusername = u\npassword = p\n");
    struct conf *y = load_ok(ZK "[instance a]\naddress = unix:/s\nusername = u\npassword = p\n");
    struct conf *z = load_ok(ZK "[agent]\nrise = 9\n[instance a]\naddress = unix:/s\n"
                                "username = u\npassword = p\n");
    assert_true(conf_instance_equal(conf_find_instance(x, "a"), conf_find_instance(y, "a")));
    assert_false(conf_instance_equal(conf_find_instance(x, "a"), conf_find_instance(z, "a")));
    conf_free(x);
    conf_free(y);
    conf_free(z);
}

static void
test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"0", 0},
        {"10ms", 10},
        {"1s", 1000},
        {"2m", 120000},
        {"1500", 1500},
        {"0s", 0},
        {"007s", 7000},
        {"1440m", 86400000},
        {"86400s", 86400000},
        {"86400000", 86400000},
        {"1h", 3600000},
        {"10h", 36000000},
        {"24h", 86400000},
        {"0h", 0},
    };
    static const char *const bad[] = {
        "",
        "s",
        "ms",
        "1.5s",
        "-1s",
        "+1s",
        "10 s",
        " 10s",
        "10s ",
        "25h",
        "1H",
        "1hr",
        "1h30m",
        "1S",
        "1Ms",
        "1sec",
        "1min",
        "1mss",
        "0x10",
        "1e3",
        "1441m",
        "86401s",
        "86400001",
        "99999999999999999999",
        "99999999999999999999ms",
        "9223372036854775808",
    };
    int64_t ms;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ms = -1;
        if (conf_parse_duration(good[i].s, &ms) != 0 || ms != good[i].ms)
            fail_msg("\"%s\" should be %lld ms, got %lld", good[i].s, (long long)good[i].ms,
                     (long long)ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 42;
        if (conf_parse_duration(bad[i], &ms) != -1 || ms != 42)
            fail_msg("\"%s\" should be rejected", bad[i]);
    }
}

static void
test_errors_accumulate(void **state)
{
    (void)state;
    struct conf_errors errs = {0};

    assert_null(conf_load_string("a.conf", "[x]\n", &errs));
    assert_int_equal(errs.n, 2);
    assert_null(conf_load_string("b.conf", ZK "[y]\n", &errs));
    assert_int_equal(errs.n, 3);
    /* on one line, in the order found */
    assert_string_equal(errs.msg[0], "a.conf:1: error: unknown section [x] (expected [agent], "
                                     "[zookeeper] or [instance NAME])");
    assert_string_equal(errs.msg[1], "a.conf:1: error: missing section [zookeeper] (hosts is "
                                     "required)");
    assert_string_equal(errs.msg[2], "b.conf:3: error: unknown section [y] (expected [agent], "
                                     "[zookeeper] or [instance NAME])");
    conf_errors_free(&errs);
    conf_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_inheritance_any_order),
        cmocka_unit_test(test_syntax_variants),
        cmocka_unit_test(test_example_config),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_no_resolve),
        cmocka_unit_test(test_group_no_resolve),
        cmocka_unit_test(test_missing_zookeeper),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_key_sections),
        cmocka_unit_test(test_key_overrides),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_line_length),
        cmocka_unit_test(test_bad_durations),
        cmocka_unit_test(test_timeout_vs_interval),
        cmocka_unit_test(test_instance_names),
        cmocka_unit_test(test_duplicate_instance),
        cmocka_unit_test(test_instance_keys),
        cmocka_unit_test(test_agent_values),
        cmocka_unit_test(test_zookeeper_values),
        cmocka_unit_test(test_many_errors),
        cmocka_unit_test(test_no_secret_in_errors),
        cmocka_unit_test(test_instance_equal),
        cmocka_unit_test(test_downinter),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_errors_accumulate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
