/* maint.h -- maintenance marks: who is in maintenance, until when, kept in state_dir. */
#ifndef SA_MAINT_H
#define SA_MAINT_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "util.h"

#define MAINT_REASON_MAX     128 /* bytes of a mark's reason, NUL included */
#define MAINT_DEFAULT_REASON "maintenance"
#define MAINT_FILE           "maint.json" /* in state_dir */
#define MAINT_FILE_VERSION   1

/* One instance's mark: a value the caller reads, owned by its struct maint. */
struct maint_mark {
    char name[CONF_NAME_MAX + 1];
    int64_t since_ms; /* wall time the mark was put on (kept when a mark is renewed) */
    int64_t until_ms; /* wall time it ends; 0: until `maint NAME off` */
    char reason[MAINT_REASON_MAX];
};

/* A parsed `maint NAME on [DURATION] [REASON]` or `maint NAME off`. */
struct maint_cmd {
    char name[CONF_NAME_MAX + 1];
    int on;
    int64_t duration_ms; /* 0: no end */
    char reason[MAINT_REASON_MAX];
};

struct maint;

/* Called when the marks of NAME ended by themselves (their end time passed). */
typedef void (*maint_ended_fn)(void *ud, const char *name);

/*
 * Creates the mark store for STATE_DIR (copied) on LOOP; ENDED(UD, NAME) runs on the loop for
 * every mark whose end time passes. Nothing is read until maint_load(). Owned by the caller:
 * maint_free().
 */
struct maint *maint_new(struct ev_loop *loop, const char *state_dir, maint_ended_fn ended,
                        void *ud);

/*
 * Reads STATE_DIR/maint.json, keeping the marks of instances CONF has whose end has not
 * passed. A missing state_dir (one warn line: marks then live in memory only), an unreadable
 * or corrupt file (warn, no marks) is never fatal. Marks dropped here are written back.
 */
void maint_load(struct maint *m, const struct conf *conf);

/*
 * Puts NAME in maintenance for DURATION_MS (0: no end) with REASON ("" for the default), at
 * wall time NOW_MS, and writes the file. A mark already on NAME keeps its since_ms. Returns
 * the mark (owned by M, valid until the next change of M's marks).
 */
const struct maint_mark *maint_set(struct maint *m, const char *name, int64_t duration_ms,
                                   const char *reason, int64_t now_ms);

/* Ends NAME's mark and writes the file. Returns 1 if there was one, 0 otherwise. */
int maint_clear(struct maint *m, const char *name);

/* NAME's mark, or NULL (also when M is NULL). Owned by M, valid until M's marks change. */
const struct maint_mark *maint_get(const struct maint *m, const char *name);

/* The number of marks (0 when M is NULL). */
int maint_count(const struct maint *m);

/*
 * Drops the marks of instances CONF no longer has (a reload removed them), calling
 * DROPPED(UD, NAME) for each before it goes, and writes the file if any went.
 */
void maint_prune(struct maint *m, const struct conf *conf, maint_ended_fn dropped, void *ud);

/* Moves the store to STATE_DIR (a reload changed it) and writes the marks there. */
void maint_set_dir(struct maint *m, const char *state_dir);

/* Stops the expiry watcher and frees M and its marks; the file stays. NULL is allowed. */
void maint_free(struct maint *m);

/*
 * Parses the words after `maint`: `NAME on [DURATION] [REASON...]` or `NAME off`. A word
 * after `on` that is a duration (ms, s, m or h; at least 1 ms) is the duration; the rest of
 * the line is the reason. Returns 0, or -1 with the error in ERR.
 */
int maint_parse_cmd(const char *args, struct maint_cmd *cmd, char *err, size_t errlen);

/* Appends the state file's JSON for M's marks to OUT. */
void maint_dump(const struct maint *m, struct sbuf *out);

/*
 * Replaces M's marks with those of the state file's TEXT. Returns 0, or -1 with the reason in
 * ERR (M's marks are then left as they were).
 */
int maint_parse_file(struct maint *m, const char *text, char *err, size_t errlen);

#endif
