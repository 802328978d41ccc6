/* report.h -- what the agent says about itself: stats socket answers, metrics, status documents. */
#ifndef SA_REPORT_H
#define SA_REPORT_H

#include "util.h"

struct agent;
struct inst;

struct stats_peer;

/* Answers one stats-socket command line of PEER for A into OUT (a stats_answer_fn). */
void report_answer(void *a, const struct stats_peer *peer, const char *cmd, struct sbuf *out);

/* Keys of the status document whose change alone causes no write (NULL-terminated). */
extern const char *const report_volatile_keys[];

/* Appends the `stats` JSON object (one line, no newline) to OUT. */
void report_stats_json(struct agent *a, struct sbuf *out);

/* Appends the `instances` JSON array (one line, no newline) to OUT. */
void report_instances_json(struct agent *a, struct sbuf *out);

/* Appends the Prometheus text exposition (format 0.0.4) to OUT. */
void report_metrics(struct agent *a, struct sbuf *out);

/* Appends the ZooKeeper status document of INST (SPEC "Status document") to OUT. */
void report_status_doc(const struct inst *inst, const char *agent_name, struct sbuf *out);

#endif
