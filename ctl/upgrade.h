/* upgrade.h -- sentinel-agentctl upgrade: ask for the upgrade, then report what happened. */
#ifndef SA_CTL_UPGRADE_H
#define SA_CTL_UPGRADE_H

/*
 * Sends `upgrade` to the agent at the socket SOCK, waits until the same pid answers as the
 * new image, and prints what happened (old and new version, the ZooKeeper session kept or
 * not; JSON with JSON set). Returns 0, 1 for an error answer or no new image in time, 2 when
 * the agent cannot be reached.
 */
int ctl_upgrade(const char *progname, const char *sock, int json);

#endif
