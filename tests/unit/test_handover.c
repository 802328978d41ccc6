/* test_handover.c -- the hand-over record: round trip, version check, malformed records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "handover.h"

static int
memfd_with(const char *text)
{
    int fd = memfd_create("test", MFD_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    return fd;
}

static void
round_trip(void **state)
{
    struct handover_inst inst[2] = {{"a", "127.0.0.1:1", {0}}, {"b\"q", "unix:/x", {0}}};
    struct handover h = {.stats_fd = 7, .upgrades = 3, .has_session = 1, .ninst = 2, .inst = inst};
    struct handover *r;
    char err[256];
    int fd = memfd_create("test", MFD_CLOEXEC);

    (void)state;
    strcpy(h.old_version, "0.1.0");
    h.session.id = 0x1000028601a0000;
    for (int i = 0; i < 16; i++)
        h.session.passwd[i] = (char)(i * 17);
    inst[0].health.state = INST_UP;
    inst[0].health.role.role = ROLE_MASTER;
    inst[0].health.role.replicas = 2;
    inst[0].health.since_ms = 1700000000123;
    inst[1].health.state = INST_DOWN;
    inst[1].health.role.role = ROLE_REPLICA;
    strcpy(inst[1].health.role.master, "[::1]:6379");
    strcpy(inst[1].health.role.link, "connected");
    strcpy(inst[1].health.reason, "connection refused");
    assert_int_equal(handover_write(fd, &h, err, sizeof(err)), 0);
    r = handover_read(fd, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(r->stats_fd, 7);
    assert_int_equal(r->upgrades, 3);
    assert_string_equal(r->old_version, "0.1.0");
    assert_true(r->has_session);
    assert_true(r->session.id == h.session.id);
    assert_memory_equal(r->session.passwd, h.session.passwd, 16);
    assert_int_equal(r->ninst, 2);
    assert_non_null(handover_find(r, "a", "127.0.0.1:1"));
    assert_null(handover_find(r, "a", "127.0.0.1:2")); /* moved: not restored */
    const struct handover_inst *b = handover_find(r, "b\"q", "unix:/x");
    assert_non_null(b);
    assert_int_equal(b->health.state, INST_DOWN);
    assert_string_equal(b->health.reason, "connection refused");
    /* the role info (issue 11) travels whole: the new image renders the same document */
    assert_int_equal(b->health.role.role, ROLE_REPLICA);
    assert_string_equal(b->health.role.master, "[::1]:6379");
    assert_string_equal(b->health.role.link, "connected");
    assert_int_equal(b->health.role.replicas, 0);
    const struct handover_inst *a = handover_find(r, "a", "127.0.0.1:1");
    assert_int_equal(a->health.since_ms, 1700000000123);
    assert_int_equal(a->health.role.role, ROLE_MASTER);
    assert_int_equal(a->health.role.replicas, 2);
    assert_string_equal(a->health.role.master, "");
    handover_free(r);
    close(fd);
}

static void
unknown_version_is_refused(void **state)
{
    char err[256];
    int fd = memfd_with("sentinel-agent handover 2\n{\"stats_fd\":3,\"instances\":[]}");

    (void)state;
    assert_null(handover_read(fd, err, sizeof(err)));
    assert_non_null(strstr(err, "version \"2\" not understood"));
    close(fd);
    fd = memfd_with("sentinel-agent handover 1x\n{\"stats_fd\":3,\"instances\":[]}");
    assert_null(handover_read(fd, err, sizeof(err)));
    close(fd);
    fd = memfd_with("sentinel-agent handover 0\n{\"stats_fd\":3,\"instances\":[]}");
    assert_null(handover_read(fd, err, sizeof(err)));
    close(fd);
}

static void
malformed_is_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "something else\n{}",
        "sentinel-agent handover 1\nnot json",
        "sentinel-agent handover 1\n{\"instances\":[]}",
        "sentinel-agent handover 1\n{\"stats_fd\":3,\"instances\":[{\"name\":\"a\"}]}",
        "sentinel-agent handover 1\n{\"stats_fd\":3,\"instances\":[],\"zk\":{\"session\":\"0x1\","
        "\"passwd\":\"zz\"}}",
        /* an instance without the role info: not guessed at */
        "sentinel-agent handover 1\n{\"stats_fd\":3,\"instances\":[{\"name\":\"a\",\"address\":"
        "\"h:1\",\"state\":\"up\",\"role\":\"master\",\"reason\":\"\"}]}",
    };
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = memfd_with(bad[i]);
        assert_null(handover_read(fd, err, sizeof(err)));
        close(fd);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(unknown_version_is_refused),
        cmocka_unit_test(malformed_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
