/* x86_initrd_place: where the initrd goes in guest RAM. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/boot.h"
#include "helpers.h"

#define PAGE 4096ULL

/* Places an initrd that must fit and checks every rule for its address:
 * page-aligned, above the kernel, wholly below both the kernel's limit and
 * the end of low RAM, and within one page of the lower of the two. */
static uint64_t place_ok(uint64_t ram, uint64_t kernel_end, uint32_t addr_max, uint64_t size)
{
	struct guest_mem m;
	uint64_t at = 1, top = (uint64_t)addr_max + 1;

	guest_mem_layout(&m, ram, LAYOUT_MMIO_HOLE);
	if (top > m.low_size)
		top = m.low_size;
	assert_int_equal(x86_initrd_place(&m, kernel_end, addr_max, size, &at), 0);
	assert_int_equal(at % PAGE, 0);
	assert_true(at >= kernel_end);
	assert_true(at + size <= top);
	assert_true(at + size > top - PAGE);
	return at;
}

static void place_fails(uint64_t ram, uint64_t kernel_end, uint32_t addr_max, uint64_t size)
{
	struct guest_mem m;
	uint64_t at = 0;

	guest_mem_layout(&m, ram, LAYOUT_MMIO_HOLE);
	assert_int_equal(x86_initrd_place(&m, kernel_end, addr_max, size, &at), -1);
}

static void test_top_of_small_ram(void **state)
{
	(void)state;
	/* Limit above RAM: the end of RAM decides. */
	assert_int_equal(place_ok(512 * MiB, 20 * MiB, 0x7fffffff, 10 * MiB), 502 * MiB);
	/* Unaligned size: rounded down to a page, not up past the end. */
	assert_int_equal(place_ok(512 * MiB, 20 * MiB, 0x7fffffff, 10 * MiB + 123), 502 * MiB - PAGE);
	assert_int_equal(place_ok(512 * MiB, 20 * MiB, 0x7fffffff, 1), 512 * MiB - PAGE);
}

static void test_kernel_limit(void **state)
{
	(void)state;
	/* Old kernels: initrd_addr_max 0x37ffffff, below the 2 GiB of RAM. */
	assert_int_equal(place_ok(2 * GiB, 20 * MiB, 0x37ffffff, 16 * MiB), 0x38000000 - 16 * MiB);
	/* An unaligned limit still keeps the last byte at or below it. */
	place_ok(2 * GiB, 20 * MiB, 0x37fff7ff, 16 * MiB + 5);
}

static void test_high_ram_not_used(void **state)
{
	(void)state;
	/* 8 GiB guest, 4 GiB limit: low RAM ends at the hole. */
	assert_int_equal(place_ok(8 * GiB, 20 * MiB, 0xffffffff, 64 * MiB), LAYOUT_MMIO_HOLE - 64 * MiB);
}

static void test_just_fits_above_kernel(void **state)
{
	(void)state;
	/* Kernel ends mid-page: the initrd starts at the next page. */
	assert_int_equal(place_ok(64 * MiB, 0x1400001, 0x7fffffff, 64 * MiB - 0x1401000), 0x1401000);
	assert_int_equal(place_ok(64 * MiB, 0x1401000, 0x7fffffff, 64 * MiB - 0x1401000), 0x1401000);
}

static void test_too_big(void **state)
{
	(void)state;
	place_fails(64 * MiB, 0x1400001, 0x7fffffff, 64 * MiB - 0x1401000 + 1);
	place_fails(64 * MiB, 20 * MiB, 0x7fffffff, 64 * MiB);
	place_fails(64 * MiB, 20 * MiB, 0x7fffffff, 64 * MiB + 1);
	place_fails(64 * MiB, 20 * MiB, 0x7fffffff, UINT64_MAX);
	/* Fits in RAM, but not below the kernel's limit. */
	place_fails(2 * GiB, 20 * MiB, 0x37ffffff, 0x38000000 - 20 * MiB + 1);
	/* The kernel already takes all of RAM. */
	place_fails(64 * MiB, 64 * MiB, 0x7fffffff, 1);
	/* A zero limit (header without one) leaves no room at all. */
	place_fails(64 * MiB, 20 * MiB, 0, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_top_of_small_ram),
		cmocka_unit_test(test_kernel_limit),
		cmocka_unit_test(test_high_ram_not_used),
		cmocka_unit_test(test_just_fits_above_kernel),
		cmocka_unit_test(test_too_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
