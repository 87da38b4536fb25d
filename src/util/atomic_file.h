/* Writing a file so that a crash leaves the old one or the new one, never
 * half of one: write a temporary file beside it, sync, rename. */
#ifndef CELLVM_UTIL_ATOMIC_FILE_H
#define CELLVM_UTIL_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Creates PATH.tmp.PID (its name in tmp); the fd, or CV_EINPUT reported
 * with `what` ("snapshot file"). */
int atomic_file_open(const char *path, const char *what, char *tmp, size_t cap);
/* Writes len bytes at off; 0 or -1 (errno set). */
int atomic_file_pwrite(int fd, const void *p, size_t len, uint64_t off);
/* Syncs, closes and renames tmp to path; on failure removes tmp. 0 or
 * CV_EFAIL, reported. */
int atomic_file_commit(int fd, const char *tmp, const char *path, const char *what);
/* Gives up: closes and removes tmp, reporting the errno of the failure. */
int atomic_file_abort(int fd, const char *tmp, const char *what);

#endif
