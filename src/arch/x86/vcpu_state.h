/* A vCPU's whole architectural state as data: CPUID, registers, FPU/XSAVE
 * and XCRs, every MSR KVM lists, local APIC, pending events, MP state and
 * debug registers. The KVM structures are kernel ABI (fixed layout), so
 * they are stored as sized blobs; a size that does not match is refused. */
#ifndef CELLVM_ARCH_X86_VCPU_STATE_H
#define CELLVM_ARCH_X86_VCPU_STATE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/cpuid.h"
#include "snapshot/stream.h"

#define VCPU_STATE_VERSION 1
#define VCPU_MAX_MSRS 1024

struct x86_vcpu_state {
	struct cpuid_table cpuid;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	bool has_xsave, has_xcrs;
	struct kvm_fpu fpu;        /* when there is no XSAVE */
	uint8_t *xsave;            /* malloc'ed, xsave_len bytes */
	uint32_t xsave_len;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_debugregs debugregs;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[VCPU_MAX_MSRS];
	uint32_t tsc_khz;
};

/* Reads everything from a stopped vCPU whose CPUID was set to `cpuid`
 * (kept by the caller: KVM_GET_CPUID2 may answer with what the host made
 * of it). `tsc`, when given, replaces the TSC read now (the value frozen
 * when the VM paused). */
int x86_vcpu_get(int kvm_fd, int vm_fd, int vcpu_fd, const struct cpuid_table *cpuid, const uint64_t *tsc,
		 struct x86_vcpu_state *s);
/* Applies s to a new vCPU whose CPUID is already s->cpuid. */
int x86_vcpu_set(int vcpu_fd, const struct x86_vcpu_state *s);
void x86_vcpu_state_free(struct x86_vcpu_state *s);

void x86_vcpu_encode(struct snap_writer *w, const struct x86_vcpu_state *s);
/* 0, or CV_EINPUT with r marked bad. */
int x86_vcpu_decode(struct snap_reader *r, struct x86_vcpu_state *s);

/* Moves the TSC on by `ns` nanoseconds of guest time (a restore catching
 * up with the host's clock). */
void x86_vcpu_advance_tsc(struct x86_vcpu_state *s, uint64_t ns);

/* Checks that the host can give the guest every CPU feature its saved
 * CPUID shows; names the first missing one in err. */
int x86_cpuid_check(const struct cpuid_table *saved, const struct cpuid_table *host, char *err, size_t errlen);

#endif
