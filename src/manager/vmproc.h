/* The process behind a managed VM: starting it in the background
 * (`cellvm run` on the bundle's vm.json, API and console on sockets in the
 * bundle), finding out what it is doing without trusting leftovers (the pid
 * file's lock says whether it lives, its API says whether it is paused),
 * and stopping it: the guest first, signals after. */
#ifndef CELLVM_MANAGER_VMPROC_H
#define CELLVM_MANAGER_VMPROC_H

#include <stdbool.h>
#include <sys/types.h>

enum vm_state {
	VMS_STOPPED,      /* not running, ended cleanly (or never ran) */
	VMS_CRASHED,      /* not running; its process died without cleaning up */
	VMS_STARTING,     /* the process runs, the VM is not built yet */
	VMS_RUNNING,
	VMS_PAUSED,
	VMS_UNRESPONSIVE, /* the process runs but its API does not answer */
};

struct vm_status {
	enum vm_state state;
	pid_t pid;   /* 0 unless the process is alive */
	long uptime; /* seconds since the process started, -1 if unknown */
	/* Its last migration out (GET /migrate): "active", "failed",
	 * "unknown" (maybe moved, paused here), or "" for none. */
	char migration[16];
	/* From the VM process: its resident memory (KiB, -1 unknown) and its
	 * balloon (GET /balloon/statistics; -1 when it has none). */
	long rss_kib;
	long balloon_mib, guest_free_mib;
};

const char *vm_state_name(enum vm_state s);
int vmproc_status(const char *name, struct vm_status *st);
/* Starts NAME from its vm.json, or (restore: a snapshot directory
 * relative to the bundle) from that snapshot. */
int vmproc_start(const char *name, const char *restore);
int vmproc_stop(const char *name, int timeout_s, bool force);
int vmproc_pause(const char *name, bool pause);
/* The last line of the VM's log (why it did not start, how it moved), or
 * "see vm.log". */
void vmproc_last_log(const char *name, char *buf, size_t cap);
/* The same, of the bundle being built in dir. */
void vmproc_last_log_in(const char *dir, char *buf, size_t cap);
/* Starts `cellvm run HOW... --api-sock ... --name NAME` in the background
 * in bundle directory dir (its log: vm.log there): the pid, or -1. */
pid_t vmproc_spawn(const char *dir, const char *name, const char *const *how);
/* The API call behind pause and stop, with the reply's fault on failure. */
#define VMPROC_API_TIMEOUT_MS 3000
int vmproc_api(const char *name, const char *method, const char *path, const char *body, int timeout_ms);

#endif
