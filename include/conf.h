/* conf.h -- the agent's INI configuration: parse, validate, resolve addresses, free. */
#ifndef SA_CONF_H
#define SA_CONF_H

#include <stdint.h>
#include <stdio.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "addr.h"
#include "log.h"

#define CONF_DEFAULT_PATH "/etc/sentinel-agent/sentinel-agent.conf"
#define CONF_NAME_MAX     64  /* instance and cluster names: [A-Za-z0-9._-]{1,64} */
#define CONF_AGENT_MAX    255 /* agent name: a host name */

/*
 * One [instance NAME] section, with the [agent] defaults already applied.
 * Owner: its struct conf; freed by conf_free().
 */
struct conf_instance {
    TAILQ_ENTRY(conf_instance) link;
    char name[CONF_NAME_MAX + 1];
    char cluster[CONF_NAME_MAX + 1];
    char *address;    /* as written in the file, for display */
    struct addr addr; /* resolved */
    char *username;   /* NULL when not set */
    char *password;   /* NULL when not set; never logged nor shown */
    int64_t interval_ms;
    int64_t timeout_ms;
    int64_t downinter_ms; /* probe period while down: 50ms .. interval_ms */
    int rise;
    int fall;
    int line; /* line of the section header */
};

TAILQ_HEAD(conf_instance_list, conf_instance);

/* A whole validated configuration. Owner: the caller of conf_load(); freed by conf_free(). */
struct conf {
    char *path;
    /* [agent] */
    char name[CONF_AGENT_MAX + 1];
    int64_t interval_ms;
    int64_t timeout_ms;
    int64_t downinter_ms; /* when not set: min(250ms, interval), per instance */
    int rise;
    int fall;
    int max_inflight;
    char *stats_socket;
    mode_t stats_socket_mode;
    char *stats_socket_group; /* as written, NULL when not set */
    gid_t stats_socket_gid;   /* its gid, (gid_t)-1 when not set (or not resolved) */
    enum log_level log_level;
    int64_t shutdown_timeout_ms;
    char *metrics_listen;     /* NULL when off */
    struct addr metrics_addr; /* valid when metrics_listen is set */
    char *state_dir;          /* maintenance marks (maint.c) */
    /* [zookeeper] */
    char *zk_hosts;
    char *zk_root;
    int64_t zk_session_timeout_ms;
    char *zk_auth; /* "user:password" or NULL; never logged nor shown */
    /* [instance NAME]..., in file order */
    struct conf_instance_list instances;
    int ninstances;
};

/* Error messages collected while loading, each "FILE:LINE: error: MESSAGE", in line order. */
struct conf_errors {
    char **msg;
    size_t n;
};

/*
 * Reads, parses and validates the file at PATH, resolving host names in addresses.
 * Returns a new config owned by the caller, or NULL if there was any error; then ERRS holds
 * every error found in the file (not just the first). ERRS must be zeroed by the caller and
 * released with conf_errors_free() whatever the outcome.
 */
struct conf *conf_load(const char *path, struct conf_errors *errs);

#define CONF_NO_RESOLVE 0x1 /* conf_load_flags(): check addresses, resolve none (no DNS wait) */

/*
 * Same as conf_load(), with FLAGS. With CONF_NO_RESOLVE a host name in an address is checked
 * but not resolved (its addr is AF_UNSPEC): for readers of the config that never connect.
 */
struct conf *conf_load_flags(const char *path, int flags, struct conf_errors *errs);

/* Same as conf_load() on an in-memory text; NAME stands for the file name in messages. */
struct conf *conf_load_string(const char *name, const char *text, struct conf_errors *errs);

/* Releases a config; NULL is allowed. */
void conf_free(struct conf *conf);

/* Releases the messages in ERRS and zeroes it. */
void conf_errors_free(struct conf_errors *errs);

/* Returns the instance called NAME in CONF, or NULL. */
const struct conf_instance *conf_find_instance(const struct conf *conf, const char *name);

/* Returns 1 if A and B probe the same way (address, credentials, timings), 0 otherwise. */
int conf_instance_equal(const struct conf_instance *a, const struct conf_instance *b);

/*
 * Parses a duration: an integer followed by "ms", "s", "m" or "h"; a bare integer is
 * milliseconds. At most 24h.
 * Returns 0 and sets *MS, or -1 if S is not a duration.
 */
int conf_parse_duration(const char *s, int64_t *ms);

#endif
