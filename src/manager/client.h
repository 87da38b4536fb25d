/* A client for a VM's API socket: one request, one answer, with a
 * deadline, so a hung VM process cannot hang the manager. */
#ifndef CELLVM_MANAGER_CLIENT_H
#define CELLVM_MANAGER_CLIENT_H

#include <stddef.h>

/* A connected Unix stream socket (blocking, close-on-exec) to path; paths
 * longer than sun_path are reached from their directory. -errno on
 * failure. */
int unix_connect(const char *path);

/* Sends METHOD path with an optional JSON body over the Unix socket at
 * sock. On success returns 0 with the status and a malloc'ed body (NUL
 * terminated, possibly empty); CV_EFAIL if there was no answer in time. */
int api_call(const char *sock, const char *method, const char *path, const char *body, int timeout_ms,
	     int *status, char **reply);

/* The fault_message of an error reply, or the reply itself. */
const char *api_fault(const char *reply, char *buf, size_t cap);

#endif
