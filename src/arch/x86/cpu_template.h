/* CPU templates: rewrites of the CPUID a guest sees, so that VMs on hosts
 * of different CPU generations look alike (and a snapshot moves between
 * them). Static ones by name (Firecracker's "T2", "C3" style), custom ones
 * from Firecracker's cpu-config JSON: per leaf, subleaf and register, a
 * bitmap of 32 characters, most significant first, '0' or '1' forcing a
 * bit and 'x' keeping the host's. */
#ifndef CELLVM_ARCH_X86_CPU_TEMPLATE_H
#define CELLVM_ARCH_X86_CPU_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/cpuid.h"

#define CPU_TEMPLATE_MAX 128

enum cpuid_reg { CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX };

struct cpuid_modifier {
	uint32_t leaf, subleaf;
	bool by_subleaf; /* else every subleaf of the leaf */
	enum cpuid_reg reg;
	uint32_t mask;	/* the bits the template decides */
	uint32_t value; /* what they become */
};

struct cpu_template {
	char name[16]; /* "T2", "C3", or "custom"; "" for none */
	struct cpuid_modifier m[CPU_TEMPLATE_MAX];
	unsigned n;
};

/* A static template by name ("None" clears t). CV_EINPUT naming the choices. */
int cpu_template_static(const char *name, struct cpu_template *t, char *err, size_t errlen);
/* Adds one modifier from Firecracker's bitmap text ("0bxx10...", 32
 * positions after 0b). CV_EINPUT with the reason. */
int cpu_template_add(struct cpu_template *t, uint32_t leaf, uint32_t subleaf, bool by_subleaf, const char *reg,
		     const char *bitmap, char *err, size_t errlen);
/* Rewrites every matching entry of cpuid. */
void cpu_template_apply(const struct cpu_template *t, struct cpuid_table *cpuid);

#endif
