/* table.h -- sentinel-agentctl's human-readable views: aligned tables of the JSON answers. */
#ifndef SA_CTL_TABLE_H
#define SA_CTL_TABLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* An aligned text table. Owner: the caller of table_new(); released by table_free(). */
struct table;

/*
 * Returns a new table of NCOLS columns headed by HEADERS (copied), or without a header line
 * when HEADERS is NULL.
 */
struct table *table_new(size_t ncols, const char *const *headers);
/* Releases T; NULL is allowed. */
void table_free(struct table *t);
/* Appends a row of NCOLS cells (copied; NULL stands for "-"). Control characters become '?'. */
void table_add_row(struct table *t, const char *const *cells);
/* Number of rows added so far. */
size_t table_rows(const struct table *t);
/* Names the column whose cells are shortened (with an ellipsis) to fit a width; -1: none. */
void table_set_flex(struct table *t, int col);
/*
 * Appends the table to OUT: columns two spaces apart, no trailing blanks. WIDTH > 0 is the
 * terminal's width: the flex column is then cut so that lines fit, but never below 12
 * characters. WIDTH 0 cuts nothing.
 */
void table_render(const struct table *t, int width, struct sbuf *out);

/* Writes how long ago SINCE_MS was at NOW_MS ("45s ago", "3m12s ago", "2h05m ago",
 * "3d04h ago"), or "-" when SINCE_MS is not a positive time. */
void table_since(int64_t since_ms, int64_t now_ms, char *buf, size_t n);

/*
 * The views of the answers and documents. Each appends the rendered table to OUT and returns
 * 0, or returns -1 (OUT untouched) when JSON is not of the expected shape: the caller then
 * prints the answer unchanged.
 */
/* `stats`: one aligned "key  value" line per field, in the agent's order. */
int table_stats(const char *json, struct sbuf *out);
/* `instances`: NAME CLUSTER ADDRESS STATE ROLE MASTER LINK SINCE LATENCY REASON PUBLISHED. */
int table_instances(const char *json, int64_t now_ms, int width, struct sbuf *out);
/* `cluster`: DOCS, an array of status documents, as CLUSTER NAME ADDRESS AGENT STATE ROLE
 * MASTER LINK SINCE REASON. */
int table_cluster(const json_t *docs, int64_t now_ms, int width, struct sbuf *out);

#endif
