/* Address-range dispatch for port I/O and MMIO. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "vmm/bus.h"

/* A device that records its last access and answers reads with its id. */
struct dev {
	uint8_t id;
	unsigned calls;
	uint64_t addr;
	unsigned size;
	bool write;
	uint8_t data;
};

static void dev_io(void *opaque, uint64_t addr, uint8_t *data, unsigned size, bool write)
{
	struct dev *d = opaque;

	d->calls++;
	d->addr = addr;
	d->size = size;
	d->write = write;
	if (write)
		d->data = data[0];
	else
		memset(data, d->id, size);
}

static int setup(void **state)
{
	struct bus *b = calloc(1, sizeof(*b));

	if (!b)
		return -1;
	*state = b;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static int reg(struct bus *b, uint64_t base, uint64_t len, struct dev *d)
{
	return bus_register(b, base, len, dev_io, d);
}

static void test_overlaps_rejected(void **state)
{
	struct bus *b = *state;
	struct dev d = { .id = 1 };

	assert_int_equal(reg(b, 0x3f8, 8, &d), 0);
	assert_int_equal(reg(b, 0x3f8, 8, &d), -1);  /* exact */
	assert_int_equal(reg(b, 0x3f0, 9, &d), -1);  /* covers the first byte */
	assert_int_equal(reg(b, 0x3ff, 4, &d), -1);  /* covers the last byte */
	assert_int_equal(reg(b, 0x3fa, 2, &d), -1);  /* inside */
	assert_int_equal(reg(b, 0x300, 0x200, &d), -1); /* containing */
	assert_int_equal(b->n, 1);
	/* Adjacent on either side is fine. */
	assert_int_equal(reg(b, 0x3f0, 8, &d), 0);
	assert_int_equal(reg(b, 0x400, 1, &d), 0);
	assert_int_equal(b->n, 3);
}

static void test_bad_ranges_rejected(void **state)
{
	struct bus *b = *state;
	struct dev d = { .id = 1 };

	assert_int_equal(reg(b, 0x70, 0, &d), -1);
	assert_int_equal(reg(b, UINT64_MAX - 1, 4, &d), -1);  /* wraps past 2^64 */
	assert_int_equal(reg(b, 0x1000, UINT64_MAX, &d), -1);
	assert_int_equal(b->n, 0);
	/* A range ending just below the top is fine. */
	assert_int_equal(reg(b, UINT64_MAX - 0x10, 0x10, &d), 0);
}

static void test_dispatch(void **state)
{
	struct bus *b = *state;
	struct dev devs[5] = { { .id = 0x10 }, { .id = 0x20 }, { .id = 0x30 }, { .id = 0x40 }, { .id = 0x50 } };
	/* Registered out of order: lookups must not depend on it. */
	static const uint64_t base[5] = { 0xcf9, 0x70, 0x3f8, 0xfee00000, 0x60 };
	static const uint64_t len[5] = { 1, 2, 8, 0x1000, 1 };
	uint8_t v;

	for (int i = 0; i < 5; i++)
		assert_int_equal(reg(b, base[i], len[i], &devs[i]), 0);
	for (int i = 0; i < 5; i++) {
		uint64_t last = base[i] + len[i] - 1;

		/* First and last byte, read and write, absolute address passed on. */
		v = 0;
		assert_true(bus_access(b, base[i], &v, 1, false));
		assert_int_equal(v, devs[i].id);
		assert_int_equal(devs[i].addr, base[i]);
		assert_false(devs[i].write);
		v = (uint8_t)(0xa0 + i);
		assert_true(bus_access(b, last, &v, 1, true));
		assert_int_equal(devs[i].addr, last);
		assert_true(devs[i].write);
		assert_int_equal(devs[i].data, 0xa0 + i);
		assert_int_equal(devs[i].calls, 2);
	}
	/* Wider accesses keep their size. */
	{
		uint8_t w[4] = { 0 };

		assert_true(bus_access(b, 0xfee00300, w, 4, false));
		assert_int_equal(devs[3].size, 4);
		assert_int_equal(devs[3].addr, 0xfee00300);
		assert_memory_equal(w, "\x40\x40\x40\x40", 4);
	}
}

static void test_unclaimed(void **state)
{
	struct bus *b = *state;
	struct dev d = { .id = 7 };
	uint8_t w[8];

	memset(w, 0, sizeof(w));
	assert_false(bus_access(b, 0x80, w, 4, false)); /* empty bus */
	assert_memory_equal(w, "\xff\xff\xff\xff\0\0\0\0", 8);
	assert_int_equal(reg(b, 0x3f8, 8, &d), 0);
	memset(w, 0, sizeof(w));
	assert_false(bus_access(b, 0x3f7, w, 2, false)); /* just below */
	assert_memory_equal(w, "\xff\xff\0\0", 4);
	assert_false(bus_access(b, 0x400, w, 1, false)); /* just above */
	/* An unclaimed write goes nowhere and leaves the data alone. */
	w[0] = 0x12;
	assert_false(bus_access(b, 0x400, w, 1, true));
	assert_int_equal(w[0], 0x12);
	assert_int_equal(d.calls, 0);
}

static void test_full_bus(void **state)
{
	struct bus *b = *state;
	struct dev d = { .id = 9 };
	uint8_t v;

	for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
		assert_int_equal(reg(b, 0x1000 + 0x10 * (BUS_MAX_RANGES - i), 0x10, &d), 0);
	assert_int_equal(reg(b, 0x100000, 1, &d), -1);
	assert_int_equal(b->n, BUS_MAX_RANGES);
	/* Every range is still found in a full, reverse-registered bus. */
	for (unsigned i = 1; i <= BUS_MAX_RANGES; i++) {
		assert_true(bus_access(b, 0x1000 + 0x10 * i + 0xf, &v, 1, false));
		assert_int_equal(d.addr, 0x1000 + 0x10 * i + 0xf);
	}
	assert_false(bus_access(b, 0x1000 + 0x10 * (BUS_MAX_RANGES + 1), &v, 1, false));
	assert_false(bus_access(b, 0x100f, &v, 1, false));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_overlaps_rejected),
		T(test_bad_ranges_rejected),
		T(test_dispatch),
		T(test_unclaimed),
		T(test_full_bus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
