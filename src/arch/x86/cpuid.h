/* The CPUID a vCPU sees: what KVM supports, with this VM's topology. */
#ifndef CELLVM_ARCH_X86_CPUID_H
#define CELLVM_ARCH_X86_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#define CPUID_MAX_ENTRIES 256

/* Laid out as struct kvm_cpuid2 with room for its entries. */
struct cpuid_table {
	uint32_t nent, padding;
	struct kvm_cpuid_entry2 e[CPUID_MAX_ENTRIES];
};

/* Reads KVM_GET_SUPPORTED_CPUID from the /dev/kvm fd. */
int cpuid_supported(int kvm_fd, struct cpuid_table *t);

/* Rewrites `base` for vCPU `index` of `ncpus` (one socket, `threads` (1,
 * or 2 for SMT with an even ncpus) threads per core, APIC ID = index).
 * `pvm` hides what a PVM host cannot virtualize. */
void cpuid_for_vcpu(const struct cpuid_table *base, struct cpuid_table *out, unsigned index,
		    unsigned ncpus, unsigned threads, bool pvm);

/* Looks up an entry, NULL if absent. */
struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, unsigned fn, unsigned idx);

#endif
