/* reply.h -- classification of Redis replies and connection errors into probe outcomes. */
#ifndef SA_REPLY_H
#define SA_REPLY_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "probe.h"

/*
 * Classifies the reply to PING. Returns PROBE_OK for +PONG, PROBE_FAILED otherwise, with the
 * cause in REASON: "loading", "busy", "masterdown", "auth failed", "error: TEXT", or
 * "unexpected reply" for a reply of the wrong type. A NULL reply is "connection lost".
 */
enum probe_status reply_classify_ping(const redisReply *r, char *reason, size_t len);

/* Returns 1 if the reply to AUTH says the credentials were refused, 0 if it is +OK. */
int reply_auth_failed(const redisReply *r);

#define REPLY_ROLE_NOPERM 1 /* reply_parse_role(): -NOPERM, the user lacks +role */

/*
 * Parses the reply to ROLE into OUT, which is always filled: master (with the number of
 * replicas it lists), replica ("slave": its master as "host:port", "[v6]:port" for an IPv6
 * literal, and its link state), sentinel, or unknown with "" and 0 for a role ROLE does not
 * know (KeyDB's "active-replica"). Returns 0 for a reply of a form it knows (the role may
 * still be unknown), REPLY_ROLE_NOPERM for a -NOPERM error, -1 for any other error or a
 * malformed reply (OUT unknown). Pure: allocates nothing.
 */
int reply_parse_role(const redisReply *r, struct role_info *out);

/*
 * Classifies a hiredis context error (ERR is c->err, ERRSTR c->errstr) seen while connecting
 * or talking. Returns PROBE_AGENT_ERROR when the cause is the agent's own (hiredis's text
 * ends with the strerror() of EMFILE, ENFILE, ENOMEM or ENOBUFS: "Can't create socket: Too
 * many open files"), PROBE_CONCLUSIVE for a refused connection or a missing unix socket,
 * PROBE_FAILED otherwise, with a short cause in REASON ("connection refused", "no such
 * socket", "protocol error", "connection lost", ...).
 */
enum probe_status reply_classify_error(int err, const char *errstr, char *reason, size_t len);

/*
 * The class of a failed probe from its STATUS (PROBE_FAILED, PROBE_CONCLUSIVE or
 * PROBE_TIMEOUT) and REASON, as reply_classify_ping(), reply_classify_error() and the probe
 * module write them: "timeout" is PROBE_CLASS_TIMEOUT, "connection refused" and "no such
 * socket" PROBE_CLASS_REFUSED, "protocol error..." and "unexpected reply"
 * PROBE_CLASS_PROTOCOL, "auth failed" PROBE_CLASS_AUTH, "loading", "busy", "masterdown" their
 * own, "error: TEXT" PROBE_CLASS_ERROR, and any other reason PROBE_CLASS_CONNECTION. Pure.
 */
enum probe_class reply_reason_class(enum probe_status status, const char *reason);

/* The class's label value: "timeout", "refused", "connection", "protocol", "auth", "loading",
 * "busy", "masterdown" or "error". */
const char *reply_class_name(enum probe_class c);

#endif
