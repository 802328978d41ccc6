/* main.c -- sentinel-agentctl: options, then one command to the stats socket (as a table on a
 * terminal, JSON otherwise) or the `cluster` view read from ZooKeeper. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "client.h"
#include "cluster.h"
#include "conf.h"
#include "table.h"
#include "util.h"

#define CTL_DEFAULT_SOCKET "/run/sentinel-agent/stats.sock"
#define CTL_DEFAULT_ROOT   "/sentinel-agent"
#define CTL_DEFAULT_ZK_MS  10000

/* Exit codes, as SPEC.md "Binaries" says. */
#define EXIT_ANSWER 0
#define EXIT_ERRANS 1 /* the answer is an error object */
#define EXIT_CONNECT                                                                               \
    2                 /* no connection, timeout, an answer cut off, a config that does not load    \
                       */
#define EXIT_USAGE 64 /* EX_USAGE */

static const char *progname = "sentinel-agentctl";

static void
usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [-s SOCKET | -c CONFIG] [-j] COMMAND...\n"
            "       %s [-c CONFIG] [-z HOSTS] [-r ROOT] [-j] cluster [CLUSTER] [--watch]\n"
            "Sends COMMAND (words joined by spaces) to the sentinel-agent stats socket and\n"
            "prints the answer; `cluster` reads every agent's instances from ZooKeeper.\n"
            "\n"
            "  -s, --socket SOCKET    stats socket to use\n"
            "  -c, --config CONFIG    use the stats_socket and [zookeeper] of CONFIG\n"
            "                         (default: %s; without it, %s)\n"
            "  -j, --json             print JSON (the default when stdout is not a terminal)\n"
            "  -z, --zookeeper HOSTS  cluster: ZooKeeper hosts instead of the config's\n"
            "  -r, --root ROOT        cluster: ZooKeeper root instead of the config's\n"
            "                         (default with -z: %s)\n"
            "  -h, --help             show this help and exit\n"
            "  -V, --version          show the version and exit\n"
            "\n"
            "Commands: help, stats, instances, metrics, maint NAME on [DURATION] [REASON],\n"
            "maint NAME off, upgrade, cluster [CLUSTER] [-w|--watch].\n"
            "Exit status: 0 answer, 1 error answer, 2 no connection, answer cut off or config\n"
            "not loaded, 3 ZooKeeper not reachable, 64 usage error.\n",
            progname, progname, CONF_DEFAULT_PATH, CTL_DEFAULT_SOCKET, CTL_DEFAULT_ROOT);
}

/* Prints every error of a config that did not load (or a generic line when there is none). */
static void
print_conf_errors(const char *path, const struct conf_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msg[i]);
    if (errs->n == 0)
        fprintf(stderr, "%s: cannot load %s\n", progname, path);
}

/*
 * Loads the config at PATH without resolving addresses (finding the socket or ZooKeeper
 * never waits on DNS). With REPORT set, a config that does not load has its errors printed;
 * else it is silently NULL. The config belongs to the caller.
 */
static struct conf *
load_conf(const char *path, int report)
{
    struct conf_errors errs = {0};
    struct conf *conf = conf_load_flags(path, CONF_NO_RESOLVE, &errs);

    if (conf == NULL && report)
        print_conf_errors(path, &errs);
    conf_errors_free(&errs);
    return conf;
}

/* The terminal's width, or 0 when stdout is not one. */
static int
term_width(void)
{
    struct winsize ws;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 0;
}

/*
 * Prints an answer: an error object on stderr (exit 1); `stats` and `instances` as tables
 * unless JSON; anything else, and anything that does not parse as expected, unchanged.
 */
static int
print_answer(const char *cmd, struct sbuf *ans, int json)
{
    struct sbuf out = {0};
    int rc = EXIT_ANSWER;

    ans->buf[--ans->len] = '\0'; /* the final empty line */
    if (strncmp(ans->buf, "{\"error\"", 8) == 0) {
        json_t *o = json_loads(ans->buf, 0, NULL);
        const char *msg = json_string_value(json_object_get(o, "error"));
        if (json || msg == NULL)
            fprintf(stderr, "%s", ans->buf);
        else
            fprintf(stderr, "%s: %s\n", progname, msg);
        json_decref(o);
        return EXIT_ERRANS;
    }
    if (!json && strcmp(cmd, "stats") == 0 && table_stats(ans->buf, &out) == 0)
        ;
    else if (!json && strcmp(cmd, "instances") == 0 &&
             table_instances(ans->buf, util_wall_ms(), term_width(), &out) == 0)
        ;
    else
        sbuf_add(&out, ans->buf, ans->len);
    if (fwrite(out.buf, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        fprintf(stderr, "%s: writing the answer: %s\n", progname, strerror(errno));
        rc = EXIT_CONNECT;
    }
    sbuf_free(&out);
    return rc;
}

/* The socket commands: WORDS joined by spaces, sent to the socket SOCK_OPT or the config's. */
static int
run_socket(const char *sock_opt, const char *conf_opt, int json, char **words, int nwords)
{
    struct sbuf cmd = {0}, ans = {0};
    char err[512];
    char *sock = NULL;
    int rc;

    for (int i = 0; i < nwords; i++) {
        if (i > 0)
            sbuf_adds(&cmd, " ");
        sbuf_adds(&cmd, words[i]);
    }
    if (cmd.len == 0 || strpbrk(cmd.buf, "\r\n") != NULL) {
        fprintf(stderr, "%s: COMMAND must be one non-empty line\n", progname);
        usage(stderr);
        sbuf_free(&cmd);
        return EXIT_USAGE;
    }
    if (sock_opt != NULL) {
        sock = xstrdup(sock_opt);
    } else {
        /* The default config may be unreadable (an operator in the socket's group only):
         * then the default socket. A config named with -c must load. */
        struct conf *conf =
            load_conf(conf_opt != NULL ? conf_opt : CONF_DEFAULT_PATH, conf_opt != NULL);
        if (conf == NULL && conf_opt != NULL) {
            sbuf_free(&cmd);
            return EXIT_CONNECT;
        }
        if (conf != NULL && conf->stats_socket != NULL)
            sock = xstrdup(conf->stats_socket);
        conf_free(conf);
    }
    if (sock == NULL)
        sock = xstrdup(CTL_DEFAULT_SOCKET);

    sbuf_adds(&cmd, "\n");
    if (client_ask(sock, cmd.buf, &ans, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", progname, err);
        rc = EXIT_CONNECT;
    } else {
        cmd.buf[--cmd.len] = '\0';
        rc = print_answer(cmd.buf, &ans, json);
    }
    free(sock);
    sbuf_free(&cmd);
    sbuf_free(&ans);
    return rc;
}

/* `cluster [CLUSTER] [--watch]`: ARGV[0] is "cluster". */
static int
run_cluster(const char *conf_opt, const char *zk_opt, const char *root_opt, int json, int argc,
            char **argv)
{
    static const struct option longopts[] = {
        {"watch", no_argument, NULL, 'w'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct cluster_opts o = {
        .progname = progname,
        .root = CTL_DEFAULT_ROOT,
        .session_timeout_ms = CTL_DEFAULT_ZK_MS,
        .json = json,
    };
    struct conf *conf = NULL;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "+wj", longopts, NULL)) != -1) {
        switch (opt) {
        case 'w':
            o.watch = 1;
            break;
        case 'j':
            o.json = 1;
            break;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        o.only = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "%s: cluster takes one CLUSTER at most\n", progname);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (o.only != NULL && (o.only[0] == '\0' || strchr(o.only, '/') != NULL)) {
        fprintf(stderr, "%s: bad cluster name: %s\n", progname, o.only);
        return EXIT_USAGE;
    }
    /* With -z the config is optional: an operator who may not read it names ZooKeeper. */
    if (zk_opt == NULL || conf_opt != NULL) {
        conf = load_conf(conf_opt != NULL ? conf_opt : CONF_DEFAULT_PATH, 1);
        if (conf == NULL && (zk_opt == NULL || conf_opt != NULL)) {
            if (zk_opt == NULL)
                fprintf(stderr,
                        "%s: cluster needs the [zookeeper] section of a config "
                        "(-c CONFIG) or -z HOSTS\n",
                        progname);
            return EXIT_CONNECT;
        }
    }
    if (conf != NULL) {
        o.hosts = conf->zk_hosts;
        o.root = conf->zk_root;
        o.auth = conf->zk_auth;
        o.session_timeout_ms = conf->zk_session_timeout_ms;
    }
    if (zk_opt != NULL)
        o.hosts = zk_opt;
    if (root_opt != NULL)
        o.root = root_opt;
    if (o.root[0] != '/' || (strlen(o.root) > 1 && o.root[strlen(o.root) - 1] == '/')) {
        fprintf(stderr, "%s: ROOT must be absolute, without a trailing slash: %s\n", progname,
                o.root);
        conf_free(conf);
        return EXIT_USAGE;
    }
    if (!o.json)
        o.width = term_width();
    rc = cluster_run(&o);
    conf_free(conf);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},         {"zookeeper", required_argument, NULL, 'z'},
        {"root", required_argument, NULL, 'r'},   {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    const char *sock_opt = NULL, *conf_opt = NULL, *zk_opt = NULL, *root_opt = NULL;
    int json = 0;
    int opt;

    /* "+": options stop at the first word of the command. */
    while ((opt = getopt_long(argc, argv, "+s:c:jz:r:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            sock_opt = optarg;
            break;
        case 'c':
            conf_opt = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'z':
            zk_opt = optarg;
            break;
        case 'r':
            root_opt = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_ANSWER;
        case 'V':
            printf("%s %s\n", progname, SA_VERSION);
            return EXIT_ANSWER;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "%s: missing COMMAND\n", progname);
        usage(stderr);
        return EXIT_USAGE;
    }
    /* JSON unchanged for scripts: asked for, or stdout is not a terminal. */
    if (!isatty(STDOUT_FILENO))
        json = 1;
    if (strcmp(argv[optind], "cluster") == 0) {
        if (sock_opt != NULL) {
            fprintf(stderr, "%s: cluster reads ZooKeeper, not a socket: -s does not apply\n",
                    progname);
            return EXIT_USAGE;
        }
        return run_cluster(conf_opt, zk_opt, root_opt, json, argc - optind, argv + optind);
    }
    if (zk_opt != NULL || root_opt != NULL) {
        fprintf(stderr, "%s: -z and -r apply to cluster only\n", progname);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (sock_opt != NULL && conf_opt != NULL) {
        fprintf(stderr, "%s: -s and -c are exclusive\n", progname);
        usage(stderr);
        return EXIT_USAGE;
    }
    return run_socket(sock_opt, conf_opt, json, argv + optind, argc - optind);
}
