/* virtio-blk (src/virtio/blk.c) doing its job: features and config space,
 * reads, writes, flushes, GET_ID, discard and write-zeroes as they reach
 * the fake back-end, status bytes and used-ring lengths, back-end errors
 * and back-pressure (-EAGAIN), and batching into one submit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "blk_fixture.h"

static void test_features_and_config(void **state)
{
	struct env *e = *state;
	struct virtio_blk_config c;

	assert_true(e->dev->device_features & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(e->dev->device_features & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_true(e->dev->device_features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_true(e->dev->device_features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_false(e->dev->device_features & (1ULL << VIRTIO_BLK_F_RO));
	assert_true(e->dev->config_len >= offsetof(struct virtio_blk_config, max_discard_sectors));
	memcpy(&c, e->dev->config, sizeof(c) < e->dev->config_len ? sizeof(c) : e->dev->config_len);
	assert_int_equal(c.capacity, DISK_SECTORS);
	assert_int_equal(c.max_discard_seg, 1);
	assert_int_equal(c.max_write_zeroes_seg, 1);
}

static void test_read(void **state)
{
	struct env *e = *state;
	uint64_t d0 = alloc(e, 512, 0x33), d1 = alloc(e, 512, 0x33), st = alloc(e, 1, STATUS_UNTOUCHED);
	struct seg s[] = {
		{ header(e, VIRTIO_BLK_T_IN, 2), 16, false },
		{ d0, 512, true },
		{ d1, 512, true },
		{ st, 1, true },
	};
	uint16_t head = offer(e, s, 4);

	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 1);
	assert_int_equal(backend_calls(e), 1);
	assert_int_equal(e->disk.last_off, 2 * 512);
	assert_int_equal(e->disk.last_len, 1024);
	assert_int_equal(e->disk.last_n, 2);
	assert_true(e->disk.submits >= 1);
	/* In flight: nothing used yet. */
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);

	complete_all(e);
	assert_int_equal(used_idx(e), 1);
	expect_used(e, 0, head, 1024 + 1);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(byte_at(e, (i < 512 ? d0 : d1 - 512) + i), pattern(1024 + i));
	assert_true(e->sig_queue >= 1);
}

/* Data and status in one writable buffer. */
static void test_read_status_shares_buffer(void **state)
{
	struct env *e = *state;
	uint64_t buf = alloc(e, 513, STATUS_UNTOUCHED);
	uint16_t head = offer(e, (struct seg[]){ { header(e, VIRTIO_BLK_T_IN, 5), 16, false }, { buf, 513, true } }, 2);

	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 1);
	assert_int_equal(e->disk.last_off, 5 * 512);
	assert_int_equal(e->disk.last_len, 512);
	complete_all(e);
	expect_used(e, 0, head, 513);
	assert_int_equal(byte_at(e, buf + 512), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, buf), pattern(5 * 512));
}

static void test_write(void **state)
{
	struct env *e = *state;
	uint16_t head;
	uint64_t st = rw_request(e, VIRTIO_BLK_T_OUT, 3, 1024, &head);

	kick(e);
	assert_int_equal(e->disk.calls[OP_WRITE], 1);
	assert_int_equal(backend_calls(e), 1);
	assert_int_equal(e->disk.last_off, 3 * 512);
	assert_int_equal(e->disk.last_len, 1024);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(e->disk.written[i], pattern(i * 3));
	assert_int_equal(used_idx(e), 0);
	complete_all(e);
	expect_used(e, 0, head, 1);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
}

/* Header and data in the same readable buffer, header split across two. */
static void test_write_odd_layouts(void **state)
{
	struct env *e = *state;
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_OUT, .sector = 7 };
	uint64_t one = alloc(e, 16 + 512, 0x44), split = alloc(e, 16, 0), st = alloc(e, 1, STATUS_UNTOUCHED),
		 st2 = alloc(e, 1, STATUS_UNTOUCHED), data = alloc(e, 512, 0x55);

	memcpy(gpa(e, one, 16), &h, 16);
	offer(e, (struct seg[]){ { one, 16 + 512, false }, { st, 1, true } }, 2);
	kick(e);
	assert_int_equal(e->disk.calls[OP_WRITE], 1);
	assert_int_equal(e->disk.last_off, 7 * 512);
	assert_int_equal(e->disk.last_len, 512);
	assert_int_equal(e->disk.written[0], 0x44);
	assert_int_equal(e->disk.written[511], 0x44);

	h.sector = 9;
	memcpy(gpa(e, split, 16), &h, 16);
	offer(e, (struct seg[]){ { split, 8, false }, { split + 8, 8, false }, { data, 512, false }, { st2, 1, true } },
	      4);
	kick(e);
	assert_int_equal(e->disk.calls[OP_WRITE], 2);
	assert_int_equal(e->disk.last_off, 9 * 512);
	assert_int_equal(e->disk.written[0], 0x55);
	complete_all(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, st2), VIRTIO_BLK_S_OK);
}

static void test_flush(void **state)
{
	struct env *e = *state;
	uint64_t st = alloc(e, 1, STATUS_UNTOUCHED);
	uint16_t head = offer(e, (struct seg[]){ { header(e, VIRTIO_BLK_T_FLUSH, 0), 16, false }, { st, 1, true } }, 2);

	kick(e);
	assert_int_equal(e->disk.calls[OP_FLUSH], 1);
	assert_int_equal(backend_calls(e), 1);
	complete_all(e);
	expect_used(e, 0, head, 1);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
}

static void test_get_id(void **state)
{
	struct env *e = *state;
	uint64_t id = alloc(e, VIRTIO_BLK_ID_BYTES, 0x77), st = alloc(e, 1, STATUS_UNTOUCHED);
	uint16_t head = offer(e,
			      (struct seg[]){ { header(e, VIRTIO_BLK_T_GET_ID, 0), 16, false },
					      { id, VIRTIO_BLK_ID_BYTES, true },
					      { st, 1, true } },
			      3);
	char want[VIRTIO_BLK_ID_BYTES] = { 0 };

	kick(e);
	/* Answered by the device itself, at once. */
	assert_int_equal(backend_calls(e), 0);
	assert_int_equal(used_idx(e), 1);
	expect_used(e, 0, head, VIRTIO_BLK_ID_BYTES + 1);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	memcpy(want, DISK_ID, strlen(DISK_ID));
	assert_memory_equal(gpa(e, id, VIRTIO_BLK_ID_BYTES), want, VIRTIO_BLK_ID_BYTES);
	assert_true(e->sig_queue >= 1);
}

static void test_discard_and_write_zeroes(void **state)
{
	struct env *e = *state;
	struct virtio_blk_discard_write_zeroes r = { .sector = 8, .num_sectors = 16, .flags = 0 };
	uint16_t head;
	uint64_t st1, st2, st3;

	st1 = range_request(e, VIRTIO_BLK_T_DISCARD, &r, 1, &head);
	kick(e);
	assert_int_equal(e->disk.calls[OP_DISCARD], 1);
	assert_int_equal(e->disk.last_off, 8 * 512);
	assert_int_equal(e->disk.last_len, 16 * 512);

	r = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = DISK_SECTORS,
						       .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	st2 = range_request(e, VIRTIO_BLK_T_WRITE_ZEROES, &r, 1, &head);
	kick(e);
	assert_int_equal(e->disk.calls[OP_ZEROES], 1);
	assert_int_equal(e->disk.last_off, 0);
	assert_int_equal(e->disk.last_len, DISK_SIZE);
	assert_true(e->disk.last_unmap);

	r = (struct virtio_blk_discard_write_zeroes){ .sector = DISK_SECTORS - 1, .num_sectors = 1, .flags = 0 };
	st3 = range_request(e, VIRTIO_BLK_T_WRITE_ZEROES, &r, 1, &head);
	kick(e);
	assert_int_equal(e->disk.calls[OP_ZEROES], 2);
	assert_int_equal(e->disk.last_off, DISK_SIZE - 512);
	assert_int_equal(e->disk.last_len, 512);
	assert_false(e->disk.last_unmap);
	assert_int_equal(backend_calls(e), 3);

	complete_all(e);
	assert_int_equal(used_idx(e), 3);
	assert_int_equal(byte_at(e, st1), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, st2), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, st3), VIRTIO_BLK_S_OK);
	expect_used(e, 2, head, 1);
}

static void test_back_end_error(void **state)
{
	struct env *e = *state;
	uint16_t head;
	uint64_t st = rw_request(e, VIRTIO_BLK_T_OUT, 0, 512, &head), st2;

	/* Refused at submission. */
	e->disk.next_rc = -EIO;
	kick(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
	expect_used(e, 0, head, 1);
	/* Failed on completion. */
	st2 = rw_request(e, VIRTIO_BLK_T_IN, 0, 512, &head);
	kick(e);
	assert_int_equal(e->disk.npending, 1);
	e->disk.pending[0].result = -EIO;
	complete_all(e);
	assert_int_equal(byte_at(e, st2), VIRTIO_BLK_S_IOERR);
	expect_used(e, 1, head, 513);
}

static void test_eagain_stays_queued(void **state)
{
	struct env *e = *state;
	uint16_t ha, hb;
	uint64_t sa = rw_request(e, VIRTIO_BLK_T_IN, 1, 512, &ha), sb;

	kick(e);
	assert_int_equal(e->disk.npending, 1); /* A in flight */

	sb = rw_request(e, VIRTIO_BLK_T_IN, 2, 512, &hb);
	e->disk.next_rc = -EAGAIN; /* the back-end is full */
	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 2);
	assert_int_equal(e->disk.npending, 1);
	/* B was neither completed nor consumed. */
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, sb), STATUS_UNTOUCHED);
	assert_int_equal(e->dev->vq[0].last_avail, 1);

	/* A's completion makes room: B is popped again and submitted. */
	complete_all(e);
	assert_int_equal(e->disk.calls[OP_READ], 3);
	assert_int_equal(e->disk.last_off, 2 * 512);
	assert_int_equal(used_idx(e), 2);
	expect_used(e, 0, ha, 513);
	expect_used(e, 1, hb, 513);
	assert_int_equal(byte_at(e, sa), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, sb), VIRTIO_BLK_S_OK);
}

static void test_batch_one_submit(void **state)
{
	struct env *e = *state;
	uint16_t h[3];
	unsigned submits = e->disk.submits;

	for (unsigned i = 0; i < 3; i++)
		rw_request(e, VIRTIO_BLK_T_IN, i, 512, &h[i]);
	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 3);
	assert_int_equal(e->disk.submits, submits + 1);
	complete_all(e);
	for (unsigned i = 0; i < 3; i++)
		expect_used(e, i, h[i], 513);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_features_and_config),
		T(test_read),
		T(test_read_status_shares_buffer),
		T(test_write),
		T(test_write_odd_layouts),
		T(test_flush),
		T(test_get_id),
		T(test_discard_and_write_zeroes),
		T(test_back_end_error),
		T(test_eagain_stays_queued),
		T(test_batch_one_submit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
