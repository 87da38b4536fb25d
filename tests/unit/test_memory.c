/* Guest RAM layout around the MMIO hole: guest_mem_ptr, guest_mem_end and
 * the e820 map built from it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/e820.h"
#include "hw/pci.h"
#include "helpers.h"

#define G4 LAYOUT_4G
#define NONE UINT64_MAX /* probe expected to return NULL */

struct probe {
	uint64_t gpa, len;
	uint64_t host_off; /* expected offset into the host mapping, or NONE */
};

/* Lays out `size` bytes of RAM, checks the split, and runs the probes. */
static void check_layout(uint64_t size, uint64_t want_low, uint64_t want_end, const struct probe *p, size_t n)
{
	struct guest_mem m;

	test_mem_map(&m, size);
	assert_int_equal(m.size, size);
	assert_int_equal(m.low_size, want_low);
	assert_int_equal(guest_mem_end(&m), want_end);
	for (size_t i = 0; i < n; i++) {
		uint8_t *got = guest_mem_ptr(&m, p[i].gpa, p[i].len);
		uint8_t *want = p[i].host_off == NONE ? NULL : m.host + p[i].host_off;

		if (got != want)
			fail_msg("size %#llx: guest_mem_ptr(%#llx, %#llx) gave host offset %lld, want %lld (-1: NULL)",
				 (unsigned long long)size, (unsigned long long)p[i].gpa, (unsigned long long)p[i].len,
				 got ? (long long)(got - m.host) : -1LL, want ? (long long)p[i].host_off : -1LL);
	}
	test_mem_unmap(&m);
}

/* Probes every layout must pass, whatever its size. */
static const struct probe common[] = {
	{ 0, 1, 0 },
	{ 0x1000, UINT64_MAX, NONE },           /* len overflows gpa + len */
	{ 0x1000, UINT64_MAX - 0xfff, NONE },   /* gpa + len == 2^64 exactly */
	{ UINT64_MAX, 1, NONE },
	{ UINT64_MAX - 0xf, 0x100, NONE },
	{ LAYOUT_MMIO_HOLE, 1, NONE },          /* the hole itself */
	{ LAYOUT_IOAPIC, 4, NONE },
	{ G4 - 1, 1, NONE },
};

static void check_common(uint64_t size, uint64_t low, uint64_t end)
{
	check_layout(size, low, end, common, sizeof(common) / sizeof(common[0]));
}

static void test_256m_all_low(void **state)
{
	const uint64_t sz = 256 * MiB;
	const struct probe p[] = {
		{ 0, sz, 0 },
		{ 0x100000, 0x1000, 0x100000 },
		{ sz - 1, 1, sz - 1 },
		{ sz - 1, 2, NONE }, /* straddles the end of RAM */
		{ 0, sz + 1, NONE },
		{ sz, 1, NONE },
		{ G4, 1, NONE },     /* no high RAM */
	};

	(void)state;
	check_common(sz, sz, sz);
	check_layout(sz, sz, sz, p, sizeof(p) / sizeof(p[0]));
}

static void test_3g_exactly_fills_low(void **state)
{
	const uint64_t sz = 3 * GiB;
	const struct probe p[] = {
		{ 0, sz, 0 },
		{ sz - 0x1000, 0x1000, sz - 0x1000 },
		{ sz - 0x1000, 0x1001, NONE },
		{ sz, 1, NONE },
		{ G4, 1, NONE },
	};

	(void)state;
	check_common(sz, sz, sz);
	check_layout(sz, sz, sz, p, sizeof(p) / sizeof(p[0]));
}

static void test_3g_plus_one_page(void **state)
{
	const uint64_t sz = 3 * GiB + 0x1000;
	const struct probe p[] = {
		{ 3 * GiB - 1, 1, 3 * GiB - 1 },
		{ 3 * GiB - 1, 2, NONE },        /* from low RAM into the hole */
		{ G4, 0x1000, 3 * GiB },         /* the extra page moved to 4 GiB */
		{ G4 + 0xfff, 1, 3 * GiB + 0xfff },
		{ G4, 0x1001, NONE },
		{ G4 + 0x1000, 1, NONE },
		{ G4 + 0x800, UINT64_MAX, NONE },
		{ G4 - 0x800, 0x1000, NONE },    /* from the hole into high RAM */
	};

	(void)state;
	check_common(sz, 3 * GiB, G4 + 0x1000);
	check_layout(sz, 3 * GiB, G4 + 0x1000, p, sizeof(p) / sizeof(p[0]));
}

static void test_8g_split(void **state)
{
	const uint64_t sz = 8 * GiB, high = 5 * GiB;
	const struct probe p[] = {
		{ 0, 3 * GiB, 0 },
		{ 0, sz, NONE },                 /* RAM is not contiguous in GPA space */
		{ 3 * GiB + 0x1000, 1, NONE },
		{ 3 * GiB + 512 * MiB, 0x1000, NONE },
		{ G4, high, 3 * GiB },
		{ G4 + 2 * GiB, 0x1000, 5 * GiB },
		{ G4 + high - 1, 1, sz - 1 },
		{ G4 + high - 1, 2, NONE },
		{ G4 + high, 1, NONE },
		{ G4 + high, 0, NONE },
		{ G4, high + 1, NONE },
		{ 1ULL << 40, 1, NONE },
	};

	(void)state;
	check_common(sz, 3 * GiB, G4 + high);
	check_layout(sz, 3 * GiB, G4 + high, p, sizeof(p) / sizeof(p[0]));
}

static void test_custom_hole(void **state)
{
	struct guest_mem m;

	(void)state;
	guest_mem_layout(&m, 3 * GiB, 2 * GiB);
	assert_null(m.host);
	assert_int_equal(m.low_size, 2 * GiB);
	assert_int_equal(m.hole, 2 * GiB);
	assert_int_equal(guest_mem_end(&m), G4 + GiB);
}

/* ---- e820 ------------------------------------------------------------- */

static void check_e820(uint64_t size)
{
	struct boot_e820_entry e[E820_MAX_ENTRIES_ZEROPAGE];
	struct guest_mem m;
	uint64_t ram = 0, total = 0;
	unsigned n;

	test_mem_map(&m, size);
	n = e820_build(&m, e);
	assert_in_range(n, 3, 8);

	/* Conventional memory, the EBDA/BIOS area, then RAM from 1 MiB. */
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].size, 0x9fc00);
	assert_int_equal(e[0].type, E820_RAM);
	assert_int_equal(e[1].addr, 0x9fc00);
	assert_int_equal(e[1].addr + e[1].size, 0x100000);
	assert_int_equal(e[1].type, E820_RESERVED);
	assert_int_equal(e[2].addr, 0x100000);
	assert_int_equal(e[2].addr + e[2].size, m.low_size);
	assert_int_equal(e[2].type, E820_RAM);
	/* The PCI ECAM window is reserved so the kernel trusts MCFG. */
	assert_int_equal(e[3].addr, LAYOUT_PCI_ECAM);
	assert_int_equal(e[3].size, PCI_ECAM_SIZE);
	assert_int_equal(e[3].type, E820_RESERVED);
	if (size > LAYOUT_MMIO_HOLE) {
		assert_int_equal(n, 5);
		assert_int_equal(e[4].addr, G4);
		assert_int_equal(e[4].size, size - LAYOUT_MMIO_HOLE);
		assert_int_equal(e[4].type, E820_RAM);
	} else {
		assert_int_equal(n, 4);
	}

	for (unsigned i = 0; i < n; i++) {
		assert_true(e[i].size > 0);
		if (i)
			assert_true(e[i].addr >= e[i - 1].addr + e[i - 1].size); /* sorted, disjoint */
		total += e[i].size;
		if (e[i].type == E820_RAM) {
			/* All RAM the guest is told about is backed by ours. */
			assert_non_null(guest_mem_ptr(&m, e[i].addr, e[i].size));
			ram += e[i].size;
		}
	}
	assert_int_equal(total, size + PCI_ECAM_SIZE);
	assert_int_equal(ram, size - (0x100000 - 0x9fc00));
	test_mem_unmap(&m);
}

static void test_e820(void **state)
{
	static const uint64_t sizes[] = { 16 * MiB, 256 * MiB, 3 * GiB, 3 * GiB + 0x1000, 8 * GiB };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_e820(sizes[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_256m_all_low),
		cmocka_unit_test(test_3g_exactly_fills_low),
		cmocka_unit_test(test_3g_plus_one_page),
		cmocka_unit_test(test_8g_split),
		cmocka_unit_test(test_custom_hole),
		cmocka_unit_test(test_e820),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
