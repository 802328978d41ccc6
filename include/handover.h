/* handover.h -- the record one image of the agent hands to the next across an upgrade's execve. */
#ifndef SA_HANDOVER_H
#define SA_HANDOVER_H

#include <stddef.h>
#include <stdint.h>

#include "health.h"
#include "zkpub.h"

/*
 * The record's format version. An image reads only the version it knows; any other is not
 * guessed at: that image starts fresh (and closes what it inherited). Bump it on any change
 * of meaning, not only of layout.
 */
#define HANDOVER_VERSION 1
/* The environment variable naming the record's fd; the new image reads it once and unsets it. */
#define HANDOVER_ENV "SA_HANDOVER_FD"

/* One instance's health as the previous image knew it; restored if name and address match. */
struct handover_inst {
    char *name;
    char *address;
    struct health health;
};

/*
 * What is handed over. Owner: whoever made it (upgrade.c fills one before the exec;
 * handover_read() returns one); released by handover_free(), which wipes the session password.
 */
struct handover {
    int stats_fd;      /* the stats socket's listening fd, inherited; -1: none */
    uint64_t upgrades; /* upgrades this process has gone through, this one included */
    char old_version[32];
    int has_session; /* session below is valid */
    struct zkpub_session session;
    size_t ninst;
    struct handover_inst *inst;
};

/*
 * Writes H as a version HANDOVER_VERSION record to FD (a fresh memfd or pipe, at offset 0).
 * Returns 0, or -1 with the reason in ERR.
 */
int handover_write(int fd, const struct handover *h, char *err, size_t errlen);

/*
 * Reads a record from FD (from offset 0). Returns it, owned by the caller, or NULL with the
 * reason in ERR (an unknown version, a malformed record). Does not close FD.
 */
struct handover *handover_read(int fd, char *err, size_t errlen);

/* Returns the instance NAME at ADDRESS in H, or NULL. */
const struct handover_inst *handover_find(const struct handover *h, const char *name,
                                          const char *address);

/* Wipes the password and frees H. NULL is allowed. */
void handover_free(struct handover *h);

#endif
