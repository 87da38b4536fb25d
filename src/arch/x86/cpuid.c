#include "arch/x86/cpuid.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/err.h"

static_assert(offsetof(struct cpuid_table, e) == offsetof(struct kvm_cpuid2, entries),
	      "cpuid_table must match struct kvm_cpuid2");

int cpuid_supported(int kvm_fd, struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	t->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, t) < 0) {
		cv_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, unsigned fn, unsigned idx)
{
	for (unsigned i = 0; i < t->nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->e[i];

		if (e->function == fn && (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == idx))
			return e;
	}
	return NULL;
}

static unsigned order_of(unsigned n)
{
	unsigned s = 0;

	while ((1u << s) < n)
		s++;
	return s;
}

static void drop_leaf(struct cpuid_table *t, unsigned fn)
{
	unsigned j = 0;

	for (unsigned i = 0; i < t->nent; i++)
		if (t->e[i].function != fn)
			t->e[j++] = t->e[i];
	t->nent = j;
}

static void add_entry(struct cpuid_table *t, struct kvm_cpuid_entry2 e)
{
	if (t->nent < CPUID_MAX_ENTRIES)
		t->e[t->nent++] = e;
}

/* Leaf 0xB: SMT level (threads per core), then core level (ncpus). */
static void topology_leaf(struct cpuid_table *t, unsigned apic, unsigned ncpus, unsigned threads)
{
	unsigned shift = order_of(ncpus);

	drop_leaf(t, 0xb);
	drop_leaf(t, 0x1f); /* would override 0xB; one level set is enough */
	add_entry(t, (struct kvm_cpuid_entry2){ .function = 0xb, .index = 0,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = order_of(threads), .ebx = threads, .ecx = 0x100,
		.edx = apic });
	add_entry(t, (struct kvm_cpuid_entry2){ .function = 0xb, .index = 1,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = shift, .ebx = ncpus, .ecx = 0x201, .edx = apic });
	add_entry(t, (struct kvm_cpuid_entry2){ .function = 0xb, .index = 2,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ecx = 2, .edx = apic });
}

void cpuid_for_vcpu(const struct cpuid_table *base, struct cpuid_table *out, unsigned index,
		    unsigned ncpus, unsigned threads, bool pvm)
{
	struct kvm_cpuid_entry2 *e;

	/* Two threads per core only pair whole cores. */
	if (threads != 2 || ncpus % 2)
		threads = 1;
	*out = *base;
	topology_leaf(out, index, ncpus, threads);
	for (unsigned i = 0; i < out->nent; i++) {
		e = &out->e[i];
		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffffu) | (index << 24) | ((ncpus & 0xff) << 16);
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: the count above is valid */
			else
				e->edx &= ~(1u << 28);
			e->ecx |= 1u << 31; /* hypervisor present */
			if (pvm)
				e->ecx &= ~(1u << 17); /* PCID */
			break;
		case 4: /* Intel caches: cores per package, L1/L2 shared by a core's threads, the LLC by all */
			if (e->eax & 0x1f) {
				unsigned level = (e->eax >> 5) & 7, share = level >= 3 ? ncpus - 1 : threads - 1;

				e->eax = (e->eax & 0x3fff) | (share << 14) | ((ncpus / threads - 1) << 26);
			}
			break;
		case 7:
			if (pvm && e->index == 0) {
				e->ebx &= ~((1u << 7) | (1u << 10) | (1u << 20)); /* SMEP INVPCID SMAP */
				e->ecx &= ~((1u << 2) | (1u << 3) | (1u << 7) | (1u << 16)); /* UMIP PKU CET_SS LA57 */
				e->edx &= ~(1u << 20); /* CET_IBT */
			}
			break;
		case 0xd:
			if (pvm && e->index == 1)
				e->eax &= ~(1u << 3); /* XSAVES */
			break;
		case 0x80000007:
			/* Invariant TSC makes Linux prefer the TSC to kvm-clock. A PVM
			 * guest reads the host's TSC natively (no offsetting), so only
			 * kvm-clock can be stopped across a pause (vm_pause()). */
			if (pvm)
				e->edx &= ~(1u << 8);
			break;
		case 0x80000008: /* AMD: cores per package and APIC ID bits */
			e->ecx = (e->ecx & ~0xf0ffu) | (order_of(ncpus) << 12) | ((ncpus - 1) & 0xff);
			break;
		case 0x8000001d: /* AMD caches: LLC shared by all cores */
			if (e->eax & 0x1f) {
				unsigned level = (e->eax >> 5) & 7, share = level >= 3 ? ncpus - 1 : threads - 1;

				e->eax = (e->eax & ~(0xfffu << 14)) | (share << 14);
			}
			break;
		case 0x8000001e: /* AMD topology extension */
			e->eax = index;
			e->ebx = ((index / threads) & 0xff) | ((threads - 1) << 8); /* core id, threads per core - 1 */
			e->ecx = 0;            /* node 0, one node */
			break;
		default:
			break;
		}
	}
}
