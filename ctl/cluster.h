/* cluster.h -- `sentinel-agentctl cluster`: the fleet view, read from ZooKeeper directly. */
#ifndef SA_CTL_CLUSTER_H
#define SA_CTL_CLUSTER_H

#include <stdint.h>

#define CLUSTER_CONNECT_MS 5000 /* no session within this: ZooKeeper cannot be reached */
#define CLUSTER_EXIT_ZK    3    /* SPEC.md "Binaries": ZooKeeper cannot be reached */

/* What `cluster` needs: values, not the config. Strings belong to the caller. */
struct cluster_opts {
    const char *progname;
    const char *hosts;          /* ZooKeeper connect string */
    const char *root;           /* absolute, no trailing slash */
    const char *auth;           /* "user:password" for digest auth, or NULL */
    int64_t session_timeout_ms; /* asked of the server */
    const char *only;           /* one cluster's name, or NULL for all */
    int watch;                  /* reprint on every change until SIGINT/SIGTERM */
    int json;                   /* one line of JSON per view instead of a table */
    int width;                  /* terminal width for the table, 0 for no limit */
};

/*
 * Prints the instances published under ROOT (or ROOT/ONLY): once, or on every change with
 * WATCH. Returns the exit status: 0, or CLUSTER_EXIT_ZK after a message on stderr when
 * ZooKeeper cannot be reached (or, without WATCH, a read fails).
 */
int cluster_run(const struct cluster_opts *o);

#endif
