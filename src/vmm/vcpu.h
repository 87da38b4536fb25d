/* One vCPU: a KVM vCPU fd and the host thread that runs it. */
#ifndef CELLVM_VMM_VCPU_H
#define CELLVM_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
};

/* Creates the KVM vCPU with its CPUID and initial state; vCPU 0 is the
 * boot CPU, the others wait for the guest's INIT/SIPI. */
int vcpu_create(struct vcpu *c, struct vm *vm, unsigned index, uint64_t entry, uint64_t boot_params);
int vcpu_start(struct vcpu *c);
/* Makes a running KVM_RUN return; the thread then sees the VM stopping. */
void vcpu_kick(struct vcpu *c);
void vcpu_join(struct vcpu *c);
void vcpu_destroy(struct vcpu *c);

/* Installs the kick signal handler; call once before any vCPU starts. */
int vcpu_signals_init(void);

#endif
