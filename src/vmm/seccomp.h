/* Per-thread syscall filters for the VMM process (libseccomp).
 *
 * The filters are compiled once, before any of them is loaded, so that a
 * thread installing its own needs no allocation. The main thread's filter is
 * loaded before the first guest instruction and is inherited by every thread
 * it starts afterwards; vCPU threads and disk workers load a narrower one on
 * top (stacked filters: a call must pass both). */
#ifndef CELLVM_VMM_SECCOMP_H
#define CELLVM_VMM_SECCOMP_H

#include <stddef.h>

enum seccomp_mode {
	SECCOMP_KILL, /* a refused call ends the VMM, naming the call and thread */
	SECCOMP_LOG,  /* let it through; the kernel logs it (audit type=1326) */
	SECCOMP_OFF,
};

enum seccomp_kind { SECCOMP_VMM, SECCOMP_VCPU, SECCOMP_WORKER, SECCOMP_KINDS };

/* "kill", "log" or "off"; CV_EINPUT with a message naming v otherwise. */
int seccomp_parse_mode(const char *v, enum seccomp_mode *out, char *err, size_t errlen);
/* The default mode: kill, or $CELLVM_SECCOMP (for a whole test run in log
 * mode while the lists grow). CV_EINPUT if the variable is bad. */
int seccomp_default_mode(enum seccomp_mode *out, char *err, size_t errlen);

/* Compiles the filters for mode and installs the handler that reports a
 * refused call. Nothing is filtered until seccomp_enter. */
int seccomp_configure(enum seccomp_mode mode);
/* Loads kind's filter on the calling thread (nothing if the mode is off or
 * seccomp_configure was not called: cellvm disk's tools use the same
 * workers). label names the thread in a refusal message. */
int seccomp_enter(enum seccomp_kind kind, const char *label);
/* seccomp_enter for a disk worker (async_set_thread_start's hook). */
int seccomp_worker_start(void);

#endif
