/* test_addr.c -- unit tests of addr.c: address syntax, resolution to numeric form, ZooKeeper hosts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "addr.h"

static void
test_parse_address(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        int family;
    } good[] = {
        {"127.0.0.1:6379", "127.0.0.1:6379", AF_INET},
        {"10.1.2.3:1", "10.1.2.3:1", AF_INET},
        {"0.0.0.0:65535", "0.0.0.0:65535", AF_INET},
        {"[::1]:6379", "[::1]:6379", AF_INET6},
        {"[2001:db8:0::1]:80", "[2001:db8::1]:80", AF_INET6},
        {"unix:/run/redis/redis.sock", "unix:/run/redis/redis.sock", AF_UNIX},
        {"127.0.0.1:06379", "127.0.0.1:6379", AF_INET},
    };
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"127.0.0.1:0", "bad port"},
        {"127.0.0.1:65536", "bad port"},
        {"127.0.0.1:abc", "bad port"},
        {"127.0.0.1:-1", "bad port"},
        {"127.0.0.1: 1", "bad port"},
        {"127.0.0.1", "missing port"},
        {"127.0.0.1:", "missing port"},
        {":6379", "missing host"},
        {"[::1]", "missing port"},
        {"[::1]:", "missing port"},
        {"[::1:6379", "missing ']'"},
        {"[]:6379", "missing host"},
        {"::1:6379", "[ADDRESS]:PORT"},
        {"[127.0.0.1]:6379", "cannot resolve"},
        {"unix:relative/path", "must be absolute"},
        {"unix:", "must be absolute"},
        {"", "missing port"},
    };
    struct addr a;
    char err[256], buf[256], longpath[200];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        err[0] = '\0';
        if (addr_parse(good[i].in, 0, &a, err, sizeof(err)) != 0)
            fail_msg("\"%s\" rejected: %s", good[i].in, err);
        assert_int_equal(a.family, good[i].family);
        addr_format(&a, buf, sizeof(buf));
        assert_string_equal(buf, good[i].out);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (addr_parse(bad[i].in, 0, &a, err, sizeof(err)) != -1)
            fail_msg("\"%s\" accepted", bad[i].in);
        if (strstr(err, bad[i].why) == NULL)
            fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad[i].in, err, bad[i].why);
    }

    /* a host name is resolved once, to a numeric address; IPv4 first when it has both */
    assert_int_equal(addr_parse("localhost:6379", 0, &a, err, sizeof(err)), 0);
    addr_format(&a, buf, sizeof(buf));
    if (strcmp(buf, "127.0.0.1:6379") != 0)
        fail_msg("localhost resolved to %s", buf);
    assert_int_equal(addr_parse("[::1]:6379", 0, &a, err, sizeof(err)), 0);
    assert_int_equal(a.family, AF_INET6);

    /* sun_path holds 107 bytes and the NUL */
    longpath[0] = '/';
    memset(longpath + 1, 'p', 106);
    strcpy(longpath + 107, "");
    snprintf(buf, sizeof(buf), "unix:%s", longpath);
    assert_int_equal(addr_parse(buf, 0, &a, err, sizeof(err)), 0);
    assert_string_equal(a.path, longpath);
    snprintf(buf, sizeof(buf), "unix:%sp", longpath);
    assert_int_equal(addr_parse(buf, 0, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "longer than 107 bytes"));
}

/* Without resolution a name is checked but left alone; numeric addresses come out the same. */
static void
test_parse_no_resolve(void **state)
{
    (void)state;
    struct addr a, b;
    char err[256], buf[256];

    assert_int_equal(addr_parse("redis.invalid:6379", ADDR_NO_RESOLVE, &a, err, sizeof(err)), 0);
    assert_int_equal(a.family, AF_UNSPEC);
    assert_string_equal(a.host, "");
    assert_int_equal(a.port, 6379);
    assert_int_equal(addr_parse("redis.invalid:6379", 0, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot resolve \"redis.invalid\""));

    assert_int_equal(addr_parse("[::1]:1", ADDR_NO_RESOLVE, &a, err, sizeof(err)), 0);
    assert_int_equal(addr_parse("[::1]:1", 0, &b, err, sizeof(err)), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    addr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "[::1]:1");
    assert_int_equal(addr_parse("10.0.0.1:2", ADDR_NO_RESOLVE, &a, err, sizeof(err)), 0);
    assert_int_equal(a.family, AF_INET);
    assert_string_equal(a.host, "10.0.0.1");

    /* the syntax is checked all the same */
    assert_int_equal(addr_parse("redis.invalid", ADDR_NO_RESOLVE, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "missing port"));
    assert_int_equal(addr_parse("[127.0.0.1]:1", ADDR_NO_RESOLVE, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot resolve"));
    assert_int_equal(addr_parse("unix:x", ADDR_NO_RESOLVE, &a, err, sizeof(err)), -1);
}

static void
test_check_hosts(void **state)
{
    (void)state;
    static const char *const good[] = {
        "127.0.0.1:2181",
        "zk1:2181,10.0.0.2:2182,[::1]:2183",
        "zk.example:65535",
        "zk:0000080",
    };
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"zk1", "\"zk1\": missing port"},
        {":2181", "empty host"},
        {"[]:2181", "empty host"},
        {"zk1:0", "bad port"},
        {"zk1:65536", "bad port"},
        {"zk1:", "bad port"},
        {"zk:00000080", "bad port"},
        {"zk1:2181/chroot", "bad port"},
        {"zk1:2181,,zk2:2181", "empty entry"},
        {"zk1:2181, zk2:2181", "spaces are not allowed"},
        {"", "empty entry"},
    };
    char err[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (addr_check_hosts(good[i], err, sizeof(err)) != 0)
            fail_msg("\"%s\" rejected: %s", good[i], err);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (addr_check_hosts(bad[i].in, err, sizeof(err)) != -1)
            fail_msg("\"%s\" accepted", bad[i].in);
        if (strstr(err, bad[i].why) == NULL || strstr(err, "(expected host:port,...)") == NULL)
            fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad[i].in, err, bad[i].why);
    }
}

/* Names become every numeric address they have; numeric entries and unknown names stay. */
static void
test_resolve_hosts(void **state)
{
    (void)state;
    char *s;

    s = addr_resolve_hosts("127.0.0.1:2181,[::1]:2182");
    assert_string_equal(s, "127.0.0.1:2181,[::1]:2182");
    free(s);
    s = addr_resolve_hosts("zk.invalid:2181,10.1.2.3:1");
    assert_string_equal(s, "zk.invalid:2181,10.1.2.3:1");
    free(s);
    s = addr_resolve_hosts("localhost:2181");
    assert_non_null(strstr(s, "127.0.0.1:2181"));
    assert_null(strstr(s, "localhost"));
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_address),
        cmocka_unit_test(test_parse_no_resolve),
        cmocka_unit_test(test_check_hosts),
        cmocka_unit_test(test_resolve_hosts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
