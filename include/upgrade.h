/* upgrade.h -- the zero-gap upgrade: check the installed binary, then re-execute it in place,
 * handing the stats socket and the ZooKeeper session over to the new image. */
#ifndef SA_UPGRADE_H
#define SA_UPGRADE_H

#include "stats.h"
#include "util.h"
#include "zkpub.h"

struct agent;
struct handover;
struct inst;
struct upgrade;

/*
 * Reads the record the previous image handed over (HANDOVER_ENV), if any: unsets the
 * variable and closes the record's fd. A record this image does not understand is not guessed
 * at: it is logged, every inherited fd above 2 is closed, and NULL is returned (a fresh start,
 * which takes the nodes over as after a crash). Call it first thing, before anything opens an
 * fd. The returned record belongs to the caller (upgrade_new() takes it).
 */
struct handover *upgrade_take_handover(void);

/*
 * Makes the upgrade machinery of A: resolves the installed binary's absolute path from ARGV[0]
 * now (a package upgrade replaces the file at that path), keeps a copy of ARGV for the exec,
 * takes ownership of HO (NULL: a fresh start) and starts the SIGUSR2 watcher.
 */
struct upgrade *upgrade_new(struct agent *a, char **argv, struct handover *ho);

/* The record handed over by the previous image while agent_start() uses it, else NULL. */
const struct handover *upgrade_handover(const struct upgrade *up);

/*
 * The stats server on the listening socket the previous image handed over, or NULL (none, or
 * it does not fit the config: then it is closed and the caller binds anew). ANSWER and UD as
 * for stats_listen().
 */
struct stats_server *upgrade_stats_adopt(struct upgrade *up, stats_answer_fn answer, void *ud);

/* The ZooKeeper session the previous image handed over, or NULL. */
const struct zkpub_session *upgrade_session(const struct upgrade *up);

/* Gives INST the health the previous image knew, if it had the same name and address. */
void upgrade_restore(struct upgrade *up, struct inst *inst);

/* agent_start() is done with the hand-over: wipe and free it, log what was resumed. */
void upgrade_started(struct upgrade *up);

/*
 * The stats socket's `upgrade` command from PEER: checks that it may (agent_peer_may_change()),
 * starts the upgrade and defers the answer until the config check is done, or answers an error
 * to OUT.
 */
void upgrade_command(struct upgrade *up, const struct stats_peer *peer, struct sbuf *out);

/* Upgrades this process has been through (0 for a fresh start). */
unsigned long upgrade_count(const struct upgrade *up);

/* The version of the image this one was upgraded from, "" for a fresh start. */
const char *upgrade_from(const struct upgrade *up);

/* Abandons an upgrade in progress (shutdown): kills a config check still running. */
void upgrade_cancel(struct upgrade *up);

/* Stops everything and frees UP. NULL is allowed. */
void upgrade_free(struct upgrade *up);

#endif
