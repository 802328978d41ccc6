/* notify.h -- talking to systemd through sd_notify: readiness, status, watchdog, reload, stop. */
#ifndef SA_NOTIFY_H
#define SA_NOTIFY_H

#include <ev.h>

struct agent;

/*
 * Starts the watchdog pings (at half of WATCHDOG_USEC, from a loop timer, so a stalled loop
 * stops them) and the STATUS refresher. Does nothing without NOTIFY_SOCKET.
 */
void notify_start(struct agent *a);
/* READY=1 plus a STATUS line. */
void notify_ready(struct agent *a);
/* RELOADING=1. */
void notify_reloading(void);
/* STOPPING=1, and stops the watchdog and status timers. */
void notify_stopping(struct agent *a);
/* Stops the timers (idempotent). */
void notify_stop(struct agent *a);
/* Writes the one-line summary ("3 instances: 2 up, 1 down; zookeeper connected") to BUF. */
void notify_summary(struct agent *a, char *buf, size_t len);

#endif
