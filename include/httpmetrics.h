/* httpmetrics.h -- a tiny non-blocking HTTP/1.x server on the loop that serves GET /metrics. */
#ifndef SA_HTTPMETRICS_H
#define SA_HTTPMETRICS_H

#include <ev.h>
#include <stddef.h>

#include "conf.h"
#include "util.h"

#define HTTPMETRICS_HEAD_MAX 8192 /* longest request head (request line + headers) accepted */
#define HTTPMETRICS_MAX_CLIENTS                                                                    \
    16                              /* connections beyond this are accepted and closed at once...  \
                                     */
#define HTTPMETRICS_EVICT_AFTER 1.0 /* ...unless one has sent no whole head for this long */
#define HTTPMETRICS_TIMEOUT                                                                        \
    10.0 /* seconds to send the whole head, however it trickles in                                 \
            (slowloris); then seconds without write progress */

struct httpmetrics;

/* Appends the whole exposition (Prometheus text format 0.0.4) to OUT. */
typedef void (*httpmetrics_body_fn)(void *ud, struct sbuf *out);

/*
 * Listens on ADDR (AF_INET or AF_INET6, numeric) and answers GET /metrics with what BODY
 * appends, one request per connection. Returns the server, owned by the caller, or NULL
 * with the reason in ERR (nothing is left open then).
 */
struct httpmetrics *httpmetrics_listen(struct ev_loop *loop, const struct addr *addr,
                                       httpmetrics_body_fn body, void *ud, char *err,
                                       size_t errlen);

/* Returns 1 if H listens on ADDR (same family, host and port), 0 otherwise. NULL H: 0. */
int httpmetrics_is_on(const struct httpmetrics *h, const struct addr *addr);

/*
 * Replaces HTTPMETRICS_TIMEOUT and HTTPMETRICS_EVICT_AFTER for clients accepted from now on
 * (for tests).
 */
void httpmetrics_set_limits(struct httpmetrics *h, double timeout, double evict_after);

/* Closes every client and the listener and frees H. NULL is allowed. */
void httpmetrics_close(struct httpmetrics *h);

#endif
