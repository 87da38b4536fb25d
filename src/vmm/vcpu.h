/* One vCPU: a KVM vCPU fd and the host thread that runs it. */
#ifndef CELLVM_VMM_VCPU_H
#define CELLVM_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/cpuid.h"
#include "snapshot/stream.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	uint64_t tsc;    /* the guest's TSC when paused */
	bool tsc_saved;
	struct cpuid_table cpuid; /* what the vCPU was given */
	double nap_at;            /* throttled: when it sleeps next (vm_throttle_nap) */
	int64_t quota_cpu_ns;     /* its CPU time when last charged (vm_quota_nap) */
	/* Exit counts for the metrics (written by the vCPU thread). */
	atomic_ulong exits_io, exits_mmio, exits_other;
};

/* Creates the KVM vCPU with its CPUID and initial state; vCPU 0 is the
 * boot CPU, the others wait for the guest's INIT/SIPI. */
int vcpu_create(struct vcpu *c, struct vm *vm, unsigned index, uint64_t entry, uint64_t boot_params);
int vcpu_start(struct vcpu *c);
/* Makes a running KVM_RUN return; the thread then sees the VM stopping. */
void vcpu_kick(struct vcpu *c);
void vcpu_join(struct vcpu *c);
void vcpu_destroy(struct vcpu *c);

/* While the vCPU is parked: tells the guest's kvmclock it was stopped (no
 * soft-lockup alarms) and saves its TSC; thaw puts the TSC back, so the
 * guest's clock does not count the pause. */
void vcpu_freeze_time(struct vcpu *c);
void vcpu_thaw_time(struct vcpu *c);

/* Snapshot hooks (dev = struct vcpu *), for a parked vCPU: the TSC saved
 * is the one frozen at the pause; a load sets the saved CPUID and moves
 * the TSC on by the VM's restore_elapsed_ns. */
int vcpu_save(void *dev, struct snap_writer *w);
int vcpu_load(void *dev, struct snap_reader *r);

/* Installs the kick signal handler; call once before any vCPU starts. */
int vcpu_signals_init(void);

#endif
