/* main.c -- sentinel-agent: options, process set-up, the event loop, teardown. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "agent.h"
#include "conf.h"
#include "handover.h"
#include "log.h"
#include "upgrade.h"

#define EXIT_USAGE  64   /* EX_USAGE */
#define EXIT_CONFIG 78   /* EX_CONFIG */
#define TRIM_PERIOD 10.0 /* seconds between malloc_trim() calls */

static void
usage(FILE *f)
{
    fprintf(f, "usage: sentinel-agent [-c FILE] [-t] [-l LEVEL] [-V] [-h]\n"
               "  -c, --config FILE      config file (default " CONF_DEFAULT_PATH ")\n"
               "  -t, --check-config     validate the config, print \"FILE: ok\", and exit\n"
               "  -l, --log-level LEVEL  error, warn, info or debug; overrides the config\n"
               "  -V, --version          print the version and exit\n"
               "  -h, --help             print this help and exit\n");
}

/* hiredis never closes fd 0 and later opens must not land on 0-2: keep them open. */
static void
keep_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int nfd = open("/dev/null", O_RDWR);
        if (nfd >= 0 && nfd != fd) {
            dup2(nfd, fd);
            close(nfd);
        }
    }
}

/*
 * glibc keeps freed heap pages resident: after a burst (a flood of stats clients, a reload,
 * a ZooKeeper re-init) RSS would stay at the burst's high-water mark, far above what is in
 * use, and drift with fragmentation. Giving free pages back every TRIM_PERIOD keeps RSS
 * following heap-in-use (docs/leak-safety.md). The timer is unref'd: it never keeps ev_run
 * from returning at shutdown.
 */
static void
on_trim(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    malloc_trim(0);
}

static void
print_errors(const struct conf_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msg[i]);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = CONF_DEFAULT_PATH;
    const char *level_arg = NULL;
    enum log_level level = LOGL_INFO;
    int check = 0, c;

    while ((c = getopt_long(argc, argv, "c:tl:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check = 1;
            break;
        case 'l':
            level_arg = optarg;
            if (log_level_parse(optarg, &level) < 0) {
                fprintf(stderr, "sentinel-agent: bad log level \"%s\" (error, warn, info, debug)\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'V':
            printf("sentinel-agent %s\n", SA_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sentinel-agent: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    keep_std_fds();
    /* Before anything opens an fd: an unreadable hand-over's fds are all closed. */
    struct handover *ho = upgrade_take_handover();
    /* hiredis and the stats socket write to sockets whose peers may be gone. */
    signal(SIGPIPE, SIG_IGN);
    /* The ZooKeeper client's threads would otherwise reserve an arena each. */
    mallopt(M_ARENA_MAX, 2);

    struct conf_errors errs = {0};
    struct conf *conf = conf_load(path, &errs);
    if (conf == NULL) {
        print_errors(&errs);
        conf_errors_free(&errs);
        handover_free(ho);
        return EXIT_CONFIG;
    }
    conf_errors_free(&errs);
    /* -t too: the upgrade path checks the new binary with -t under the agent's own limits */
    char err[256];
    if (agent_fit_fds(conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: error: %s\n", path, err);
        conf_free(conf);
        handover_free(ho);
        return EXIT_CONFIG;
    }
    if (check) {
        printf("%s: ok\n", path);
        conf_free(conf);
        handover_free(ho);
        return 0;
    }
    if (level_arg == NULL)
        level = conf->log_level;
    log_init(level);

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (loop == NULL) {
        log_error("agent", "cannot initialise the event loop");
        conf_free(conf);
        handover_free(ho);
        return 1;
    }
    struct agent *a = agent_new(loop, conf);
    a->upgrade = upgrade_new(a, argv, ho);
    a->log_level_forced = level_arg != NULL;
    int rc = 0;
    ev_timer trim;
    ev_timer_init(&trim, on_trim, TRIM_PERIOD, TRIM_PERIOD);
    ev_timer_start(loop, &trim);
    ev_unref(loop);
    if (agent_start(a) < 0)
        rc = 1;
    else
        ev_run(loop, 0);
    ev_ref(loop);
    ev_timer_stop(loop, &trim);
    agent_free(a);
    ev_loop_destroy(loop);
    return rc;
}
