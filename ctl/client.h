/* client.h -- one command to the agent's stats socket, one answer back. */
#ifndef SA_CTL_CLIENT_H
#define SA_CTL_CLIENT_H

#include <stddef.h>

#include "util.h"

#define CLIENT_TIMEOUT_MS 5000 /* for the connect, and for each wait for answer bytes */

/*
 * Connects to the unix socket PATH, sends the line CMD (LF-terminated by the caller), and
 * reads the whole answer into ANS: the bytes up to EOF, checked to end with the empty line
 * that closes every answer. Returns 0, or -1 with a message in ERR.
 */
int client_ask(const char *path, const char *cmd, struct sbuf *ans, char *err, size_t errlen);

#endif
