/* virtio-blk (src/virtio/blk.c) against requests it must refuse or survive:
 * out-of-range and partial sectors, short headers, missing status bytes,
 * unknown types, writes to a read-only disk, bad discard ranges, and
 * completions that arrive after a reset or once the guest broke the queue. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "blk_fixture.h"

static void test_beyond_capacity(void **state)
{
	static const struct {
		uint64_t sector;
		uint32_t len;
	} bad[] = {
		{ DISK_SECTORS - 1, 1024 }, /* last sector plus one */
		{ DISK_SECTORS, 512 },
		{ DISK_SECTORS + 1, 0 },
		{ UINT64_MAX / 512, 512 },
		{ UINT64_MAX, 512 },
		{ 1ULL << 55, 512 }, /* sector * 512 wraps to 0 */
	};
	struct env *e = *state;
	unsigned n = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (uint32_t type = VIRTIO_BLK_T_IN; type <= VIRTIO_BLK_T_OUT; type++) {
			uint16_t head;
			uint64_t st = rw_request(e, type, bad[i].sector, bad[i].len, &head);

			kick(e);
			if (byte_at(e, st) != VIRTIO_BLK_S_IOERR)
				fail_msg("type %u sector %llu len %u: status %u", type,
					 (unsigned long long)bad[i].sector, bad[i].len, byte_at(e, st));
			assert_int_equal(used_idx(e), ++n);
			assert_int_equal(used_elem(e, n - 1).id, head);
		}
	}
	assert_int_equal(backend_calls(e), 0);

	/* The last sector itself is fine. */
	{
		uint16_t head;
		uint64_t st = rw_request(e, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 512, &head);

		kick(e);
		assert_int_equal(e->disk.calls[OP_READ], 1);
		assert_int_equal(e->disk.last_off, DISK_SIZE - 512);
		complete_all(e);
		assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	}
}

static void test_partial_sector_length(void **state)
{
	static const uint32_t lens[] = { 1, 100, 511, 513, 1000 };
	struct env *e = *state;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (uint32_t type = VIRTIO_BLK_T_IN; type <= VIRTIO_BLK_T_OUT; type++) {
			uint16_t head;
			uint64_t st = rw_request(e, type, 0, lens[i], &head);

			kick(e);
			if (byte_at(e, st) != VIRTIO_BLK_S_IOERR)
				fail_msg("type %u of %u bytes: status %u", type, lens[i], byte_at(e, st));
		}
	}
	assert_int_equal(backend_calls(e), 0);
}

static void test_short_header(void **state)
{
	static const uint32_t lens[] = { 0, 1, 8, 15 };
	struct env *e = *state;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint64_t st = alloc(e, 1, STATUS_UNTOUCHED);
		/* A flush whose header is cut short. */
		uint16_t head = offer(
			e, (struct seg[]){ { header(e, VIRTIO_BLK_T_FLUSH, 0), lens[i], false }, { st, 1, true } }, 2);

		kick(e);
		if (byte_at(e, st) != VIRTIO_BLK_S_IOERR)
			fail_msg("%u-byte header: status %u", lens[i], byte_at(e, st));
		expect_used(e, (unsigned)i, head, 1);
	}
	assert_int_equal(backend_calls(e), 0);
}

static void test_no_writable_byte(void **state)
{
	struct env *e = *state;
	uint64_t h = header(e, VIRTIO_BLK_T_IN, 0), data = alloc(e, 512, 0x66), empty = alloc(e, 16, 0x66);
	uint16_t h0, h1, h2;

	/* Header only. */
	h0 = offer(e, (struct seg[]){ { h, 16, false } }, 1);
	/* Header, data, but the "writable" part is empty. */
	h1 = offer(e, (struct seg[]){ { h, 16, false }, { data, 512, false }, { empty, 0, true } }, 3);
	/* A flush with a zero-length status buffer. */
	h2 = offer(e, (struct seg[]){ { header(e, VIRTIO_BLK_T_FLUSH, 0), 16, false }, { empty, 0, true } }, 2);
	kick(e);
	assert_int_equal(used_idx(e), 3);
	expect_used(e, 0, h0, 0);
	expect_used(e, 1, h1, 0);
	expect_used(e, 2, h2, 0);
	assert_int_equal(backend_calls(e), 0);
	assert_true(test_all_bytes(gpa(e, empty, 16), 16, 0x66));
	assert_true(virtio_ready(e->dev));
}

static void test_unknown_type(void **state)
{
	static const uint32_t types[] = { 99, VIRTIO_BLK_T_SCSI_CMD, VIRTIO_BLK_T_SECURE_ERASE, 0x7fffffff };
	struct env *e = *state;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint64_t st = alloc(e, 1, STATUS_UNTOUCHED);
		uint16_t head =
			offer(e, (struct seg[]){ { header(e, types[i], 0), 16, false }, { st, 1, true } }, 2);

		kick(e);
		if (byte_at(e, st) != VIRTIO_BLK_S_UNSUPP)
			fail_msg("type 0x%x: status %u", types[i], byte_at(e, st));
		expect_used(e, (unsigned)i, head, 1);
	}
	assert_int_equal(backend_calls(e), 0);
}

static void test_read_only_disk(void **state)
{
	struct env *e = *state;
	struct virtio_blk_discard_write_zeroes r = { .sector = 0, .num_sectors = 8 };
	uint16_t head;
	uint64_t st;

	assert_true(e->dev->device_features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(e->dev->device_features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_false(e->dev->device_features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));

	st = rw_request(e, VIRTIO_BLK_T_OUT, 0, 512, &head);
	kick(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
	st = range_request(e, VIRTIO_BLK_T_DISCARD, &r, 1, &head);
	kick(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
	st = range_request(e, VIRTIO_BLK_T_WRITE_ZEROES, &r, 1, &head);
	kick(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
	assert_int_equal(backend_calls(e), 0);
	assert_int_equal(used_idx(e), 3);

	/* Reads still work. */
	st = rw_request(e, VIRTIO_BLK_T_IN, 1, 512, &head);
	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 1);
	assert_int_equal(e->disk.calls[OP_WRITE], 0);
	complete_all(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
}

static void test_discard_invalid_ranges(void **state)
{
	static const struct {
		uint32_t type;
		struct virtio_blk_discard_write_zeroes r[2];
		unsigned n;
		uint8_t want; /* 0xff: IOERR or UNSUPP */
	} cases[] = {
		{ VIRTIO_BLK_T_DISCARD, { { 0, 0, 0 } }, 1, VIRTIO_BLK_S_IOERR },            /* no sectors */
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 0, 0, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		{ VIRTIO_BLK_T_DISCARD, { { DISK_SECTORS - 8, 16, 0 } }, 1, VIRTIO_BLK_S_IOERR }, /* runs past the end */
		{ VIRTIO_BLK_T_DISCARD, { { DISK_SECTORS, 1, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { UINT64_MAX, 1, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 1ULL << 55, 1, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		{ VIRTIO_BLK_T_DISCARD, { { 0, UINT32_MAX, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		/* Flags: DISCARD takes none, WRITE_ZEROES only UNMAP. */
		{ VIRTIO_BLK_T_DISCARD, { { 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP } }, 1, VIRTIO_BLK_S_UNSUPP },
		{ VIRTIO_BLK_T_DISCARD, { { 0, 8, 2 } }, 1, 0xff },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 0, 8, 2 } }, 1, 0xff },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 0, 8, 0x80000001 } }, 1, 0xff },
		/* More than the one range we advertise. */
		{ VIRTIO_BLK_T_DISCARD, { { 0, 8, 0 }, { 16, 8, 0 } }, 2, 0xff },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 0, 8, 0 }, { 16, 8, 0 } }, 2, 0xff },
	};
	struct env *e = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint16_t head;
		uint64_t st = range_request(e, cases[i].type, cases[i].r, cases[i].n, &head);
		uint8_t got;

		kick(e);
		got = byte_at(e, st);
		if (cases[i].want == 0xff ? got != VIRTIO_BLK_S_IOERR && got != VIRTIO_BLK_S_UNSUPP
					  : got != cases[i].want)
			fail_msg("case %zu (type %u, sector %llu, %u sectors, flags 0x%x, %u ranges): status %u", i,
				 cases[i].type, (unsigned long long)cases[i].r[0].sector, cases[i].r[0].num_sectors,
				 cases[i].r[0].flags, cases[i].n, got);
		expect_used(e, (unsigned)i, head, 1);
		if (backend_calls(e))
			fail_msg("case %zu reached the back-end", i);
	}
	/* A range given short (8 bytes) is malformed too. */
	{
		uint64_t st = alloc(e, 1, STATUS_UNTOUCHED), r = alloc(e, 8, 0);

		offer(e,
		      (struct seg[]){ { header(e, VIRTIO_BLK_T_DISCARD, 0), 16, false }, { r, 8, false }, { st, 1, true } },
		      3);
		kick(e);
		assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
		assert_int_equal(backend_calls(e), 0);
	}
}

static void test_reset_drops_late_completion(void **state)
{
	struct env *e = *state;
	uint16_t head;
	uint64_t st = rw_request(e, VIRTIO_BLK_T_IN, 4, 512, &head);
	unsigned sig;

	kick(e);
	assert_int_equal(e->disk.npending, 1);
	reset_dev(e);
	sig = e->sig_queue;
	complete_all(e); /* the back-end finishes after the driver reset */
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);
	assert_int_equal(e->sig_queue, sig);

	/* Also when the driver has brought the device up again meanwhile. */
	bring_up(e);
	st = rw_request(e, VIRTIO_BLK_T_IN, 4, 512, &head);
	kick(e);
	reset_dev(e);
	bring_up(e);
	complete_all(e);
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);

	/* The device still works. */
	st = rw_request(e, VIRTIO_BLK_T_IN, 4, 512, &head);
	kick(e);
	complete_all(e);
	assert_int_equal(used_idx(e), 1);
	expect_used(e, 0, head, 513);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
}

static void test_broken_queue_needs_reset(void **state)
{
	struct env *e = *state;
	uint64_t h = header(e, VIRTIO_BLK_T_IN, 0);
	struct vring_desc loop = { .addr = h, .len = 16, .flags = VRING_DESC_F_NEXT, .next = 0 };
	struct vring_avail *a = gpa(e, AVAIL_GPA, 6 + 2ULL * QSIZE);
	uint32_t gen = e->dev->config_generation;

	/* Descriptor 0 chains to itself. */
	memcpy(gpa(e, DESC_GPA, 16), &loop, 16);
	a->ring[0] = 0;
	a->idx = 1;
	kick(e);
	assert_true(e->dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(e->dev->status & 0x40, 0x40);
	assert_false(virtio_ready(e->dev));
	assert_int_equal(e->sig_config, 1);
	assert_int_not_equal(e->dev->config_generation, gen);
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(backend_calls(e), 0);
	/* Said once. */
	kick(e);
	assert_int_equal(e->sig_config, 1);

	/* A reset brings it back. */
	reset_dev(e);
	assert_int_equal(e->dev->status, 0);
	bring_up(e);
	{
		uint16_t head;
		uint64_t st = rw_request(e, VIRTIO_BLK_T_IN, 0, 512, &head);

		kick(e);
		complete_all(e);
		assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	}
}

static void test_buffer_outside_ram_needs_reset(void **state)
{
	struct env *e = *state;
	uint64_t st = alloc(e, 1, STATUS_UNTOUCHED);

	offer(e,
	      (struct seg[]){ { header(e, VIRTIO_BLK_T_IN, 0), 16, false }, { RAM - 256, 512, true }, { st, 1, true } },
	      3);
	kick(e);
	assert_true(e->dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(e->sig_config, 1);
	assert_int_equal(backend_calls(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);
}

/* A completion that lands while the device is in NEEDS_RESET is dropped. */
static void test_completion_after_needs_reset(void **state)
{
	struct env *e = *state;
	uint16_t head;
	uint64_t st = rw_request(e, VIRTIO_BLK_T_IN, 0, 512, &head);

	kick(e);
	assert_int_equal(e->disk.npending, 1);
	pthread_mutex_lock(&e->dev->lock);
	virtio_needs_reset(e->dev, "test");
	pthread_mutex_unlock(&e->dev->lock);
	complete_all(e);
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_beyond_capacity),
		T(test_partial_sector_length),
		T(test_short_header),
		T(test_no_writable_byte),
		T(test_unknown_type),
		cmocka_unit_test_setup_teardown(test_read_only_disk, setup_ro, teardown),
		T(test_discard_invalid_ranges),
		T(test_reset_drops_late_completion),
		T(test_broken_queue_needs_reset),
		T(test_buffer_outside_ram_needs_reset),
		T(test_completion_after_needs_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
