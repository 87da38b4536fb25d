/* Split virtqueue (src/virtio/queue.c), virtq_pop on direct chains: walking
 * descriptors into iovecs, and rejecting loops, bad indices, buffers
 * outside guest RAM, bad direction order and chains that are too long. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vq_fixture.h"

/* ---- virtq_pop: direct chains ------------------------------------------ */

static void test_pop_empty(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	assert_int_equal(pop(e, 4), VIRTQ_EMPTY);
	set_chain(e, 1, 0, 8);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_int_equal(pop(e, 4), VIRTQ_EMPTY);
	assert_int_equal(e->q.last_avail, 1);
}

static void test_pop_out_in_chain(void **state)
{
	struct env *e = *state;
	uint8_t *h = e->m.host;

	start(e, QSIZE, false);
	set_desc(e, 5, DATA_GPA, 100, VRING_DESC_F_NEXT, 9);
	set_desc(e, 9, DATA_GPA + 0x1000, 50, VRING_DESC_F_NEXT, 2);
	set_desc(e, 2, DATA_GPA + 0x2000, 300, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
	set_desc(e, 3, DATA_GPA + 0x3001, 7, VRING_DESC_F_WRITE, 0xffff); /* next ignored without NEXT */
	expect_pop(e, 5, VIRTQ_GOT);
	assert_int_equal(e->req.head, 5);
	assert_req(e, 2, 2, 150, 307);
	assert_ptr_equal(e->req.out, e->out);
	assert_ptr_equal(e->req.in, e->in);
	assert_iov(&e->out[0], h + DATA_GPA, 100);
	assert_iov(&e->out[1], h + DATA_GPA + 0x1000, 50);
	assert_iov(&e->in[0], h + DATA_GPA + 0x2000, 300);
	assert_iov(&e->in[1], h + DATA_GPA + 0x3001, 7);
	assert_int_equal(e->q.last_avail, 1);
}

static void test_pop_high_ram_buffer(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, LAYOUT_4G + 0x1234, 0x100, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 0, 1, 0, 0x100);
	assert_iov(&e->in[0], e->m.host + SMALL_HOLE + 0x1234, 0x100);
}

static void test_pop_buffer_straddling_hole(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, SMALL_HOLE - 0x10, 0x20, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_self_loop(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 3, DATA_GPA, 8, VRING_DESC_F_NEXT, 3);
	expect_pop(e, 3, VIRTQ_BROKEN);
}

static void test_pop_two_entry_loop(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, DATA_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(e, 1, DATA_GPA, 8, VRING_DESC_F_NEXT, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_whole_ring_chain_and_loop(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, QSIZE, 0, 1); /* all QSIZE descriptors: allowed */
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, QSIZE, 0, QSIZE, 0);
	set_desc(e, QSIZE - 1, DATA_GPA, 1, VRING_DESC_F_NEXT, 0); /* close the ring */
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_next_out_of_range(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, DATA_GPA, 8, VRING_DESC_F_NEXT, QSIZE);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 1, DATA_GPA, 8, VRING_DESC_F_NEXT, 0xffff);
	expect_pop(e, 1, VIRTQ_BROKEN);
}

static void test_pop_head_out_of_range(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 1, 0, 8);
	expect_pop(e, QSIZE, VIRTQ_BROKEN);
	assert_int_equal(e->q.last_avail, 0);
}

static void test_pop_avail_idx_too_far_ahead(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 1, 0, 8); /* every avail slot holds head 0 */
	set_avail_idx(e, QSIZE + 1);
	assert_int_equal(pop(e, 4), VIRTQ_BROKEN);
	set_avail_idx(e, 0xffff); /* "behind" us, i.e. 65535 ahead */
	assert_int_equal(pop(e, 4), VIRTQ_BROKEN);
	set_avail_idx(e, QSIZE); /* a full ring is fine */
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
}

static void test_pop_buffer_outside_ram(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, RAM_SIZE, 1, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 0, LAYOUT_4G, 1, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_buffer_addr_len_overflow(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, UINT64_MAX - 10, 100, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 0, UINT64_MAX - 0xfffffffeULL, UINT32_MAX, VRING_DESC_F_WRITE, 0); /* ends at exactly 2^64 */
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_buffer_crossing_end_of_ram(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, RAM_SIZE - 16, 17, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 0, 0x1000, UINT32_MAX, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 0, RAM_SIZE - 16, 16, 0, 0); /* the last 16 bytes: fine */
	expect_pop(e, 0, VIRTQ_GOT);
	assert_iov(&e->out[0], e->m.host + RAM_SIZE - 16, 16);
}

/* A zero-length buffer needs no RAM: accepted, mapped to (NULL, 0). */
static void test_pop_zero_length_garbage_addr(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, 0xdeadbeef00000000ULL, 0, VRING_DESC_F_NEXT, 1);
	set_desc(e, 1, UINT64_MAX, 0, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 1, 1, 0, 0);
	assert_iov(&e->out[0], NULL, 0);
	assert_iov(&e->in[0], NULL, 0);
}

static void test_pop_readable_after_writable(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, DATA_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(e, 1, DATA_GPA, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	set_desc(e, 2, DATA_GPA, 8, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_more_than_max(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 5, 0, 8);
	expect_pop_max(e, 0, 5, VIRTQ_GOT);
	expect_pop_max(e, 0, 4, VIRTQ_BROKEN);
	set_chain(e, 1, 5, 8);
	expect_pop_max(e, 0, 5, VIRTQ_GOT);
	expect_pop_max(e, 0, 4, VIRTQ_BROKEN);
}

static void test_pop_exactly_max(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 4, 4, 8); /* max bounds each direction */
	expect_pop_max(e, 0, 4, VIRTQ_GOT);
	assert_req(e, 4, 4, 32, 32);
	for (unsigned k = 0; k < 4; k++) {
		assert_iov(&e->out[k], e->m.host + DATA_GPA + 0x100 * k, 8);
		assert_iov(&e->in[k], e->m.host + DATA_GPA + 0x100 * (k + 4), 8);
	}
}

static void test_pop_direct_chain_budget(void **state)
{
	struct env *e = *state;

	start(e, 2048, false);
	set_chain(e, VIRTQ_MAX_CHAIN, 0, 1);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, VIRTQ_MAX_CHAIN, 0, VIRTQ_MAX_CHAIN, 0);
	/* Split so that neither direction exceeds max: only the budget is hit. */
	set_chain(e, HALF_UP, HALF_DOWN, 1);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pop_empty),
		T(test_pop_out_in_chain),
		TH(test_pop_high_ram_buffer),
		TH(test_pop_buffer_straddling_hole),
		T(test_pop_self_loop),
		T(test_pop_two_entry_loop),
		T(test_pop_whole_ring_chain_and_loop),
		T(test_pop_next_out_of_range),
		T(test_pop_head_out_of_range),
		T(test_pop_avail_idx_too_far_ahead),
		T(test_pop_buffer_outside_ram),
		T(test_pop_buffer_addr_len_overflow),
		T(test_pop_buffer_crossing_end_of_ram),
		T(test_pop_zero_length_garbage_addr),
		T(test_pop_readable_after_writable),
		T(test_pop_more_than_max),
		T(test_pop_exactly_max),
		T(test_pop_direct_chain_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
