/* cpuid_for_vcpu: per-vCPU topology and PVM feature masking on top of a
 * fake KVM_GET_SUPPORTED_CPUID table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arch/x86/cpuid.h"

#define BIT(n) (1u << (n))
#define IDX KVM_CPUID_FLAG_SIGNIFCANT_INDEX

/* Leaf 1 */
#define L1_ECX_PCID BIT(17)
#define L1_ECX_HYPERVISOR BIT(31)
#define L1_EDX_HTT BIT(28)
/* Leaf 7 subleaf 0 */
#define L7_EBX_FSGSBASE BIT(0)
#define L7_EBX_SMEP BIT(7)
#define L7_EBX_INVPCID BIT(10)
#define L7_EBX_SMAP BIT(20)
#define L7_ECX_UMIP BIT(2)
#define L7_ECX_PKU BIT(3)
#define L7_ECX_LA57 BIT(16)
#define L7_ECX_RDPID BIT(22)
#define L7_EDX_CET_IBT BIT(20)
/* Leaf 0xd subleaf 1 */
#define LD_EAX_XSAVEOPT BIT(0)
#define LD_EAX_XSAVES BIT(3)

#define L7_EBX_PVM_HIDDEN (L7_EBX_SMEP | L7_EBX_INVPCID | L7_EBX_SMAP)
#define L7_ECX_PVM_HIDDEN (L7_ECX_UMIP | L7_ECX_PKU | L7_ECX_LA57)

/* Leaf 4 EAX: cache type (1 data, 3 unified) and level; a type of 0 ends the list. */
#define CACHE(type, level) ((type) | ((level) << 5))

static void add(struct cpuid_table *t, uint32_t fn, uint32_t idx, uint32_t flags, uint32_t eax, uint32_t ebx,
		uint32_t ecx, uint32_t edx)
{
	assert_true(t->nent < CPUID_MAX_ENTRIES);
	t->e[t->nent++] = (struct kvm_cpuid_entry2){ .function = fn, .index = idx, .flags = flags,
						     .eax = eax, .ebx = ebx, .ecx = ecx, .edx = edx };
}

/* What a modern host might report; every feature bit of interest set. */
static void fake_supported(struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	add(t, 0, 0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69); /* "GenuineIntel" */
	/* Leaf 1: family/model, EBX[15:8] CLFLUSH size 8 and brand index 0x5a
	 * (kept); stale APIC ID and count (replaced); HTT off. */
	add(t, 1, 0, 0, 0x000806f8, 0xab100800 | 0x5a, L1_ECX_PCID | BIT(0), BIT(0) | BIT(25));
	add(t, 4, 0, IDX, CACHE(1, 1) | BIT(8) | (7u << 26) | (1u << 14), 0x01c0003f, 0x3f, 0);
	add(t, 4, 1, IDX, CACHE(3, 3) | BIT(8) | (7u << 26) | (15u << 14), 0x03c0003f, 0x3fff, 0);
	add(t, 4, 2, IDX, 0, 0, 0, 0);
	add(t, 7, 0, IDX, 2, ~0u, ~0u, ~0u);
	add(t, 0xb, 0, IDX, 1, 2, 0x100, 77);
	add(t, 0xb, 1, IDX, 5, 32, 0x201, 77);
	add(t, 0xd, 0, IDX, 0x2e7, 0xa88, 0xa88, 0);
	add(t, 0xd, 1, IDX, LD_EAX_XSAVEOPT | LD_EAX_XSAVES | BIT(1), 0, 0, 0);
	add(t, 0x1f, 0, IDX, 1, 2, 0x100, 77);
	add(t, 0x1f, 1, IDX, 5, 32, 0x201, 77);
	add(t, 0x80000000, 0, 0, 0x8000001e, 0, 0, 0);
	add(t, 0x80000008, 0, 0, 0x3030, 0, 0xf0ff, 0);
	add(t, 0x8000001e, 0, 0, 99, 0x12345678, 0x0301, 0);
}

struct fixture {
	struct cpuid_table base, out;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	fake_supported(&f->base);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static struct kvm_cpuid_entry2 *leaf(struct cpuid_table *t, unsigned fn, unsigned idx)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(t, fn, idx);

	if (!e)
		fail_msg("leaf %#x subleaf %u missing", fn, idx);
	return e;
}

static unsigned count_leaf(const struct cpuid_table *t, unsigned fn)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t->nent; i++)
		n += t->e[i].function == fn;
	return n;
}

static struct cpuid_table *vcpu(struct fixture *f, unsigned index, unsigned ncpus, bool pvm)
{
	cpuid_for_vcpu(&f->base, &f->out, index, ncpus, 1, pvm);
	return &f->out;
}

static void test_leaf1_apic_id_and_count(void **state)
{
	struct fixture *f = *state;
	struct cpuid_table *t = vcpu(f, 3, 4, false);
	struct kvm_cpuid_entry2 *e = leaf(t, 1, 0);

	assert_int_equal(e->ebx >> 24, 3);
	assert_int_equal((e->ebx >> 16) & 0xff, 4);
	assert_int_equal(e->ebx & 0xffff, 0x085a);
	assert_true(e->edx & L1_EDX_HTT);
	assert_true(e->ecx & L1_ECX_HYPERVISOR);
	assert_int_equal(e->eax, 0x000806f8);
	assert_int_equal(e->edx & ~L1_EDX_HTT, BIT(0) | BIT(25));
}

static void test_leaf1_single_cpu_has_no_htt(void **state)
{
	struct fixture *f = *state;
	struct kvm_cpuid_entry2 *e;

	f->base.e[1].edx |= L1_EDX_HTT; /* the host has it; a 1-CPU guest must not */
	e = leaf(vcpu(f, 0, 1, false), 1, 0);
	assert_int_equal(e->ebx >> 16, 0x0001);
	assert_false(e->edx & L1_EDX_HTT);
}

static void test_leaf_b_topology(void **state)
{
	struct fixture *f = *state;
	struct cpuid_table *t = vcpu(f, 3, 4, false);
	struct kvm_cpuid_entry2 *smt = leaf(t, 0xb, 0), *core = leaf(t, 0xb, 1), *end = leaf(t, 0xb, 2);

	/* SMT level: one thread per core, APIC ID shift 0. */
	assert_int_equal(smt->eax & 0x1f, 0);
	assert_int_equal(smt->ebx & 0xffff, 1);
	assert_int_equal((smt->ecx >> 8) & 0xff, 1);
	assert_int_equal(smt->ecx & 0xff, 0);
	assert_int_equal(smt->edx, 3);
	/* Core level: 4 logical CPUs, shift 2 to the package ID. */
	assert_int_equal(core->eax & 0x1f, 2);
	assert_int_equal(core->ebx & 0xffff, 4);
	assert_int_equal((core->ecx >> 8) & 0xff, 2);
	assert_int_equal(core->ecx & 0xff, 1);
	assert_int_equal(core->edx, 3);
	/* Then an invalid level ends the enumeration. */
	assert_int_equal((end->ecx >> 8) & 0xff, 0);
	assert_int_equal(end->ebx, 0);
	/* The host's own 0xB entries are replaced, not kept alongside. */
	assert_int_equal(count_leaf(t, 0xb), 3);
}

static void test_leaf_b_shift_rounds_up(void **state)
{
	struct fixture *f = *state;
	static const struct {
		unsigned ncpus, shift;
	} cases[] = { { 1, 0 }, { 2, 1 }, { 3, 2 }, { 5, 3 }, { 8, 3 }, { 9, 4 }, { 64, 6 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kvm_cpuid_entry2 *core = leaf(vcpu(f, cases[i].ncpus - 1, cases[i].ncpus, false), 0xb, 1);

		assert_int_equal(core->eax & 0x1f, cases[i].shift);
		assert_int_equal(core->ebx & 0xffff, cases[i].ncpus);
		assert_int_equal(core->edx, cases[i].ncpus - 1);
	}
}

static void test_leaf_1f_removed(void **state)
{
	struct fixture *f = *state;
	struct cpuid_table *t = vcpu(f, 3, 4, false);

	assert_null(cpuid_find(t, 0x1f, 0));
	assert_null(cpuid_find(t, 0x1f, 1));
	assert_int_equal(count_leaf(t, 0x1f), 0);
	/* Nothing else was lost on the way. */
	assert_int_equal(t->nent, f->base.nent - 2 /* 0x1f */ - 2 /* old 0xb */ + 3 /* new 0xb */);
	assert_non_null(cpuid_find(t, 0x80000000, 0));
	assert_non_null(cpuid_find(t, 0xd, 0));
}

static void test_leaf4_cache_sharing(void **state)
{
	struct fixture *f = *state;
	struct cpuid_table *t = vcpu(f, 3, 4, false);
	struct kvm_cpuid_entry2 *l1 = leaf(t, 4, 0), *l3 = leaf(t, 4, 1), *none = leaf(t, 4, 2);

	/* EAX[31:26]: cores per package - 1; EAX[25:14]: CPUs sharing - 1. */
	assert_int_equal(l1->eax >> 26, 3);
	assert_int_equal((l1->eax >> 14) & 0xfff, 0);
	assert_int_equal(l1->eax & 0x3fff, CACHE(1, 1) | BIT(8));
	assert_int_equal(l3->eax >> 26, 3);
	assert_int_equal((l3->eax >> 14) & 0xfff, 3);
	assert_int_equal(l3->eax & 0x3fff, CACHE(3, 3) | BIT(8));
	assert_int_equal(l3->ebx, 0x03c0003f);
	assert_int_equal(none->eax, 0);
}

static void test_amd_leaves(void **state)
{
	struct fixture *f = *state;
	struct cpuid_table *t = vcpu(f, 3, 4, false);
	struct kvm_cpuid_entry2 *e8 = leaf(t, 0x80000008, 0), *e1e = leaf(t, 0x8000001e, 0);

	assert_int_equal((e8->ecx >> 12) & 0xf, 2); /* APIC ID bits for the core ID */
	assert_int_equal(e8->ecx & 0xff, 3);        /* cores - 1 */
	assert_int_equal(e8->eax, 0x3030);
	assert_int_equal(e1e->eax, 3);              /* extended APIC ID */
	assert_int_equal(e1e->ebx & 0xff, 3);       /* core ID */
	assert_int_equal((e1e->ebx >> 8) & 0xff, 0); /* one thread per core */
	assert_int_equal(e1e->ecx & 0xff, 0);       /* node 0 */
}

/* Firecracker's smt: vCPUs pair into cores of two threads. */
static void test_smt_topology(void **state)
{
	struct fixture *f = *state;
	struct cpuid_table *t;

	cpuid_for_vcpu(&f->base, &f->out, 3, 4, 2, false);
	t = &f->out;
	assert_int_equal(leaf(t, 0xb, 0)->eax & 0x1f, 1); /* one APIC ID bit for the thread */
	assert_int_equal(leaf(t, 0xb, 0)->ebx & 0xffff, 2);
	assert_int_equal(leaf(t, 0xb, 1)->ebx & 0xffff, 4);
	assert_int_equal(leaf(t, 4, 0)->eax >> 26, 1);               /* 2 cores */
	assert_int_equal((leaf(t, 4, 0)->eax >> 14) & 0xfff, 1);     /* L1 shared by the core's 2 threads */
	assert_int_equal((leaf(t, 4, 1)->eax >> 14) & 0xfff, 3);     /* L3 by all */
	assert_int_equal(leaf(t, 0x8000001e, 0)->ebx & 0xff, 1);    /* core 1 */
	assert_int_equal((leaf(t, 0x8000001e, 0)->ebx >> 8) & 0xff, 1); /* 2 threads per core */
	/* An odd count cannot pair: one thread per core. */
	cpuid_for_vcpu(&f->base, &f->out, 0, 3, 2, false);
	assert_int_equal(leaf(&f->out, 0xb, 0)->ebx & 0xffff, 1);
}

static void test_pvm_hides_features(void **state)
{
	struct fixture *f = *state;
	struct cpuid_table *t = vcpu(f, 0, 2, true);
	struct kvm_cpuid_entry2 *l1 = leaf(t, 1, 0), *l7 = leaf(t, 7, 0), *ld = leaf(t, 0xd, 1);

	assert_int_equal(l1->ecx & L1_ECX_PCID, 0);
	assert_int_equal(l7->ebx & L7_EBX_PVM_HIDDEN, 0);
	assert_int_equal(l7->ecx & L7_ECX_PVM_HIDDEN, 0);
	assert_int_equal(l7->edx & L7_EDX_CET_IBT, 0);
	assert_int_equal(ld->eax & LD_EAX_XSAVES, 0);
	/* Only those: unrelated features stay. */
	assert_true(l1->ecx & BIT(0));
	assert_true(l7->ebx & L7_EBX_FSGSBASE);
	assert_true(l7->ecx & L7_ECX_RDPID);
	assert_true(ld->eax & LD_EAX_XSAVEOPT);
	assert_int_equal(l7->eax, 2);
}

static void test_no_pvm_keeps_features(void **state)
{
	struct fixture *f = *state;
	struct cpuid_table *t = vcpu(f, 0, 2, false);

	assert_true(leaf(t, 1, 0)->ecx & L1_ECX_PCID);
	assert_int_equal(leaf(t, 7, 0)->ebx, ~0u);
	assert_int_equal(leaf(t, 7, 0)->ecx, ~0u);
	assert_int_equal(leaf(t, 7, 0)->edx, ~0u);
	assert_true(leaf(t, 0xd, 1)->eax & LD_EAX_XSAVES);
}

static void test_base_unchanged_and_vcpus_independent(void **state)
{
	struct fixture *f = *state;
	struct cpuid_table *copy = malloc(sizeof(*copy)), *first = malloc(sizeof(*first));

	assert_non_null(copy);
	assert_non_null(first);
	*copy = f->base;
	cpuid_for_vcpu(&f->base, first, 0, 4, 1, true);
	vcpu(f, 1, 4, true);
	assert_memory_equal(&f->base, copy, sizeof(*copy));
	assert_int_equal(leaf(first, 1, 0)->ebx >> 24, 0);
	assert_int_equal(leaf(&f->out, 1, 0)->ebx >> 24, 1);
	assert_int_equal(leaf(first, 0xb, 0)->edx, 0);
	assert_int_equal(leaf(&f->out, 0xb, 0)->edx, 1);
	free(copy);
	free(first);
}

static void test_find(void **state)
{
	struct fixture *f = *state;

	assert_ptr_equal(cpuid_find(&f->base, 4, 1), &f->base.e[3]);
	assert_null(cpuid_find(&f->base, 4, 3));
	/* Without a significant index, any subleaf matches. */
	assert_ptr_equal(cpuid_find(&f->base, 1, 7), &f->base.e[1]);
	assert_null(cpuid_find(&f->base, 0x40000000, 0));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_leaf1_apic_id_and_count),
		T(test_leaf1_single_cpu_has_no_htt),
		T(test_leaf_b_topology),
		T(test_leaf_b_shift_rounds_up),
		T(test_leaf_1f_removed),
		T(test_leaf4_cache_sharing),
		T(test_amd_leaves),
		T(test_smt_topology),
		T(test_pvm_hides_features),
		T(test_no_pvm_keeps_features),
		T(test_base_unchanged_and_vcpus_independent),
		T(test_find),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
