/* Split virtqueue (src/virtio/queue.c), virtq_start: the checks on the
 * rings' size, alignment and placement in guest RAM (holes and its end
 * included) before they are mapped. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vq_fixture.h"

/* ---- virtq_start ------------------------------------------------------- */

static void test_start_accepts_minimal_alignment(void **state)
{
	struct env *e = *state;

	/* desc 16, avail 2, used 4 (virtio 1.2, 2.7). */
	assert_true(try_start(e, QSIZE, DESC_GPA + 16, AVAIL_GPA + 2, USED_GPA + 4));
	assert_ptr_equal(e->q.desc, e->m.host + DESC_GPA + 16);
	assert_ptr_equal(e->q.avail, e->m.host + AVAIL_GPA + 2);
	assert_ptr_equal(e->q.used, e->m.host + USED_GPA + 4);
	assert_int_equal(e->q.last_avail, 0);
	assert_int_equal(e->q.used_idx, 0);
}

static void test_start_accepts_size_1_and_32768(void **state)
{
	struct env *e = *state;

	assert_true(try_start(e, 1, DESC_GPA, AVAIL_GPA, USED_GPA));
	assert_true(try_start(e, 32768, DESC_GPA, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_size_0(void **state)
{
	struct env *e = *state;

	assert_false(try_start(e, 0, DESC_GPA, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, (uint16_t)65536, DESC_GPA, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_non_power_of_two(void **state)
{
	struct env *e = *state;
	static const uint16_t sizes[] = { 3, 6, 17, 100, 255, 1000, 32767 };

	for (size_t i = 0; i < N_ELEMS(sizes); i++)
		assert_false(try_start(e, sizes[i], DESC_GPA, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_size_over_32768(void **state)
{
	struct env *e = *state;

	assert_false(try_start(e, 32769, DESC_GPA, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, 49152, DESC_GPA, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, 65535, DESC_GPA, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_misaligned_desc(void **state)
{
	struct env *e = *state;

	for (unsigned off = 1; off < 16; off++)
		assert_false(try_start(e, QSIZE, DESC_GPA + off, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_misaligned_avail(void **state)
{
	struct env *e = *state;

	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA + 1, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA + 3, USED_GPA));
}

static void test_start_rejects_misaligned_used(void **state)
{
	struct env *e = *state;

	for (unsigned off = 1; off < 4; off++)
		assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA + off));
}

static void test_start_rings_at_end_of_ram(void **state)
{
	struct env *e = *state;
	const uint64_t end = RAM_SIZE;

	/* Each ring ending exactly at the end of RAM fits ... */
	assert_true(try_start(e, QSIZE, end - 16 * QSIZE, AVAIL_GPA, USED_GPA));
	assert_true(try_start(e, QSIZE, DESC_GPA, end - (6 + 2 * QSIZE), USED_GPA));
	assert_true(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, end - (6 + 8 * QSIZE) - 2)); /* 4-aligned */
	/* ... one entry more does not (used_event / avail_event included). */
	assert_false(try_start(e, QSIZE, end - 16 * QSIZE + 16, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, end - (6 + 2 * QSIZE) + 2, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, end - (6 + 8 * QSIZE) + 2));
}

static void test_start_rejects_rings_outside_ram(void **state)
{
	struct env *e = *state;
	static const uint64_t bad[] = {
		RAM_SIZE,                 /* just past the end */
		RAM_SIZE + 0x10000,
		LAYOUT_MMIO_HOLE,
		LAYOUT_4G,                /* no high RAM in this layout */
		UINT64_MAX & ~15ULL,      /* gpa + len wraps */
		UINT64_MAX - 0xff,        /* 16-aligned, wraps with any length */
	};

	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		assert_false(try_start(e, QSIZE, bad[i], AVAIL_GPA, USED_GPA));
		assert_false(try_start(e, QSIZE, DESC_GPA, bad[i], USED_GPA));
		assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, bad[i]));
	}
	/* A 32768-entry table that starts in RAM but runs past its end. */
	assert_false(try_start(e, 32768, RAM_SIZE - 0x10000, AVAIL_GPA, USED_GPA));
}

/* Layout with RAM split around a hole at 8 MiB. */
static void test_start_rings_around_hole(void **state)
{
	struct env *e = *state;
	const uint64_t lo = SMALL_HOLE, hi_end = LAYOUT_4G + (RAM_SIZE - SMALL_HOLE);

	assert_int_equal(e->m.low_size, SMALL_HOLE);
	/* Straddling low RAM and the hole. */
	assert_false(try_start(e, QSIZE, lo - 128, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, lo - 16, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, lo - 64));
	/* Inside the hole, and straddling the end of high RAM. */
	assert_false(try_start(e, QSIZE, lo, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, QSIZE, LAYOUT_4G - 128, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, hi_end - 16, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, hi_end));
	/* Entirely in high RAM is fine, and maps after the low part. */
	assert_true(try_start(e, QSIZE, LAYOUT_4G, LAYOUT_4G + 0x1000, hi_end - (6 + 8 * QSIZE) - 2));
	assert_ptr_equal(e->q.desc, e->m.host + SMALL_HOLE);
	assert_ptr_equal(e->q.avail, e->m.host + SMALL_HOLE + 0x1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_start_accepts_minimal_alignment),
		T(test_start_accepts_size_1_and_32768),
		T(test_start_rejects_size_0),
		T(test_start_rejects_non_power_of_two),
		T(test_start_rejects_size_over_32768),
		T(test_start_rejects_misaligned_desc),
		T(test_start_rejects_misaligned_avail),
		T(test_start_rejects_misaligned_used),
		T(test_start_rings_at_end_of_ram),
		T(test_start_rejects_rings_outside_ram),
		TH(test_start_rings_around_hole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
