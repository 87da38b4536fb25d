/* The host's /dev/kvm: opened once, checked for what cellvm uses. */
#ifndef CELLVM_VMM_KVM_H
#define CELLVM_VMM_KVM_H

#include <stdbool.h>

#include "arch/x86/cpuid.h"

struct kvm {
	int fd;
	int run_size;     /* size of each vCPU's kvm_run mapping */
	unsigned max_vcpus;
	bool pvm;         /* software "PVM" KVM: needs a PVM guest kernel */
	struct cpuid_table cpuid;
};

/* Returns 0, CV_EINPUT if /dev/kvm is missing or unusable (with advice),
 * CV_EFAIL on other errors. The device path may come from
 * $CELLVM_KVM_DEVICE. */
int kvm_open(struct kvm *k);
void kvm_close(struct kvm *k);

/* True when the host runs the kvm_pvm module. */
bool kvm_host_is_pvm(void);

#endif
