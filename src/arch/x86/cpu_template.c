#include "arch/x86/cpu_template.h"

#include <string.h>

#include "util/err.h"

struct clear {
	uint32_t leaf, subleaf;
	enum cpuid_reg reg;
	uint32_t bits;
};

#define B(n) (1u << (n))

/* T2: a Haswell-like baseline. Hidden: leaf 1 ecx dtes64, monitor, ds_cpl,
 * vmx, smx, eist, tm2, cnxt_id, sdbg, xtpr, pdcm, dca; edx ds, acpi, tm,
 * pbe. Leaf 7 ebx everything after Haswell (sgx, hle, rtm, mpx, avx512*,
 * rdseed, adx, smap, clflushopt, clwb, sha, ...) except fsgsbase, bmi1,
 * avx2, fdp_excptn, smep, bmi2, erms, invpcid, fpcsds; ecx all; edx all but
 * the speculation controls (md_clear, spec_ctrl, stibp, l1d_flush,
 * arch_capabilities, ssbd), which guests need for their mitigations. Leaf
 * 0xd.1 eax all but xsaveopt. Leaf 0x80000001 ecx all but lahf, abm and
 * prefetchw. */
static const struct clear t2[] = {
	{ 1, 0, CPUID_ECX, B(2) | B(3) | B(4) | B(5) | B(6) | B(7) | B(8) | B(10) | B(11) | B(14) | B(15) | B(18) },
	{ 1, 0, CPUID_EDX, B(21) | B(22) | B(29) | B(31) },
	{ 7, 0, CPUID_EBX, ~(B(0) | B(3) | B(5) | B(6) | B(7) | B(8) | B(9) | B(10) | B(13)) },
	{ 7, 0, CPUID_ECX, ~0u },
	{ 7, 0, CPUID_EDX, ~(B(10) | B(26) | B(27) | B(28) | B(29) | B(31)) },
	{ 0xd, 1, CPUID_EAX, ~B(0) },
	{ 0x80000001, 0, CPUID_ECX, ~(B(0) | B(5) | B(8)) },
};

/* C3: an Ivy-Bridge-like baseline: T2, and also no avx2, bmi1, bmi2,
 * invpcid (leaf 7 ebx), fma, movbe (leaf 1 ecx), abm, prefetchw. */
static const struct clear c3[] = {
	{ 1, 0, CPUID_ECX,
	  B(2) | B(3) | B(4) | B(5) | B(6) | B(7) | B(8) | B(10) | B(11) | B(12) | B(14) | B(15) | B(18) | B(22) },
	{ 1, 0, CPUID_EDX, B(21) | B(22) | B(29) | B(31) },
	{ 7, 0, CPUID_EBX, ~(B(0) | B(6) | B(7) | B(9) | B(13)) },
	{ 7, 0, CPUID_ECX, ~0u },
	{ 7, 0, CPUID_EDX, ~(B(10) | B(26) | B(27) | B(28) | B(29) | B(31)) },
	{ 0xd, 1, CPUID_EAX, ~B(0) },
	{ 0x80000001, 0, CPUID_ECX, ~B(0) },
};

static void from_clears(struct cpu_template *t, const char *name, const struct clear *c, size_t n)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->name, name);
	for (size_t i = 0; i < n; i++)
		t->m[t->n++] = (struct cpuid_modifier){
			.leaf = c[i].leaf, .subleaf = c[i].subleaf, .by_subleaf = true, .reg = c[i].reg, .mask = c[i].bits
		};
}

int cpu_template_static(const char *name, struct cpu_template *t, char *err, size_t errlen)
{
	if (!strcmp(name, "T2"))
		from_clears(t, "T2", t2, sizeof(t2) / sizeof(t2[0]));
	else if (!strcmp(name, "C3"))
		from_clears(t, "C3", c3, sizeof(c3) / sizeof(c3[0]));
	else if (!strcmp(name, "None"))
		memset(t, 0, sizeof(*t));
	else
		return cv_fmt(err, errlen, "invalid cpu template '%.32s': use T2, C3 or None (or a custom one)", name);
	return 0;
}

int cpu_template_add(struct cpu_template *t, uint32_t leaf, uint32_t subleaf, bool by_subleaf, const char *reg,
		     const char *bitmap, char *err, size_t errlen)
{
	static const char *const regs[] = { "eax", "ebx", "ecx", "edx" };
	struct cpuid_modifier m = { .leaf = leaf, .subleaf = subleaf, .by_subleaf = by_subleaf };
	size_t r;

	for (r = 0; r < 4 && strcmp(reg, regs[r]); r++)
		;
	if (r == 4)
		return cv_fmt(err, errlen, "invalid register '%.16s': eax, ebx, ecx or edx", reg);
	m.reg = (enum cpuid_reg)r;
	if (strncmp(bitmap, "0b", 2) || strlen(bitmap) != 34 || strspn(bitmap + 2, "01x") != 32)
		return cv_fmt(err, errlen, "invalid bitmap '%.40s': 0b and 32 of 0, 1 or x", bitmap);
	for (int i = 0; i < 32; i++) {
		char c = bitmap[2 + i];
		uint32_t bit = 1u << (31 - i);

		if (c != 'x')
			m.mask |= bit;
		if (c == '1')
			m.value |= bit;
	}
	if (t->n == CPU_TEMPLATE_MAX)
		return cv_fmt(err, errlen, "too many cpuid modifiers (at most %d)", CPU_TEMPLATE_MAX);
	t->m[t->n++] = m;
	strcpy(t->name, "custom");
	return 0;
}

void cpu_template_apply(const struct cpu_template *t, struct cpuid_table *cpuid)
{
	for (unsigned i = 0; i < t->n; i++) {
		const struct cpuid_modifier *m = &t->m[i];

		for (uint32_t k = 0; k < cpuid->nent; k++) {
			struct kvm_cpuid_entry2 *e = &cpuid->e[k];
			uint32_t *regs[] = { &e->eax, &e->ebx, &e->ecx, &e->edx };

			/* A leaf without subleaves matches whatever index KVM left in it. */
			if (e->function != m->leaf ||
			    (m->by_subleaf && (e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != m->subleaf))
				continue;
			*regs[m->reg] = (*regs[m->reg] & ~m->mask) | (m->value & m->mask);
		}
	}
}
