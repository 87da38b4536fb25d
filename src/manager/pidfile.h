/* Which process runs a VM, in a way that survives crashes: the VM process
 * holds an exclusive flock on its pid file for as long as it lives (the
 * kernel drops it when the process dies, kill -9 included), and the PID
 * written inside is only believed while the lock is held. */
#ifndef CELLVM_MANAGER_PIDFILE_H
#define CELLVM_MANAGER_PIDFILE_H

#include <sys/types.h>

/* Takes the lock and writes our PID. Returns the open fd (keep it open
 * until exit), or CV_EINPUT if another live process holds it. */
int pidfile_acquire(const char *path);
/* Empties the file (the lock goes with the fd). */
void pidfile_release(int fd, const char *path);

/* The PID of the live process holding path's lock, 0 if none (no file, or
 * a leftover from a dead process), -1 if held but its PID is not yet
 * written (the process is starting). */
pid_t pidfile_owner(const char *path);

#endif
