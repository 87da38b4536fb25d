/* Split virtqueue (src/virtio/queue.c), virtq_pop through indirect tables:
 * valid tables, and the flags, lengths, nesting, loops and placements a
 * device must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vq_fixture.h"

/* ---- virtq_pop: indirect tables ---------------------------------------- */

static void test_indirect_valid(void **state)
{
	struct env *e = *state;
	uint8_t *h = e->m.host;

	start(e, QSIZE, false);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 10, VRING_DESC_F_NEXT, 2);
	set_desc_in(e, TABLE_GPA, 2, DATA_GPA + 0x100, 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc_in(e, TABLE_GPA, 1, DATA_GPA + 0x200, 30, VRING_DESC_F_WRITE, 0);
	set_indirect(e, TABLE_GPA, 3 * 16, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_int_equal(e->req.head, 0);
	assert_req(e, 1, 2, 10, 50);
	assert_iov(&e->out[0], h + DATA_GPA, 10);
	assert_iov(&e->in[0], h + DATA_GPA + 0x100, 20);
	assert_iov(&e->in[1], h + DATA_GPA + 0x200, 30);
}

/* The device ignores WRITE on the descriptor naming the table (2.7.5.3.2). */
static void test_indirect_write_flag_ignored(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 2, 0, 4);
	set_indirect(e, TABLE_GPA, 2 * 16, VRING_DESC_F_WRITE);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 2, 0, 8, 0);
}

/* No alignment is required of an indirect table. */
static void test_indirect_unaligned_table(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA + 3, 0, 1, 1, 4);
	set_indirect(e, TABLE_GPA + 3, 2 * 16, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 1, 1, 4, 4);
}

static void test_indirect_after_direct(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 1, 1, 4);
	set_desc(e, 1, DATA_GPA + 0x1000, 16, VRING_DESC_F_NEXT, 0);
	set_indirect(e, TABLE_GPA, 2 * 16, 0);
	expect_pop(e, 1, VIRTQ_GOT);
	assert_req(e, 2, 1, 20, 4);
	assert_iov(&e->out[0], e->m.host + DATA_GPA + 0x1000, 16);
}

static void test_indirect_with_next(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 1, 0, 4);
	set_desc(e, 1, DATA_GPA, 4, 0, 0);
	set_indirect(e, TABLE_GPA, 16, VRING_DESC_F_NEXT);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_len_zero(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_indirect(e, TABLE_GPA, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_len_not_multiple_of_16(void **state)
{
	struct env *e = *state;
	static const uint32_t lens[] = { 1, 15, 17, 24, 47 };

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 1, 0, 4); /* a valid first entry */
	for (size_t i = 0; i < N_ELEMS(lens); i++) {
		set_indirect(e, TABLE_GPA, lens[i], 0);
		expect_pop(e, 0, VIRTQ_BROKEN);
	}
}

static void test_indirect_nested(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA + 0x100, 0, 1, 0, 4);
	set_desc_in(e, TABLE_GPA, 0, TABLE_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	set_indirect(e, TABLE_GPA, 16, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_loop(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 1);
	set_desc_in(e, TABLE_GPA, 1, DATA_GPA, 4, VRING_DESC_F_NEXT, 2);
	set_desc_in(e, TABLE_GPA, 2, DATA_GPA, 4, VRING_DESC_F_NEXT, 1);
	set_indirect(e, TABLE_GPA, 3 * 16, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 0); /* self loop */
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_next_outside_table(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 3, 0, 4);
	set_desc_in(e, TABLE_GPA, 3, DATA_GPA, 4, 0, 0);                 /* entry 3 exists in memory ... */
	set_indirect(e, TABLE_GPA, 3 * 16, 0);                           /* ... but not in the table */
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 3);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 0xffff);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 2); /* the last entry: fine */
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 2, 0, 8, 0);
}

static void test_indirect_table_outside_ram(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_indirect(e, RAM_SIZE, 16, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_indirect(e, RAM_SIZE - 16, 32, 0); /* partly */
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_indirect(e, UINT64_MAX - 15, 32, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_table_too_long(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, VIRTQ_MAX_CHAIN, 0, 1);
	set_indirect(e, TABLE_GPA, 16 * VIRTQ_MAX_CHAIN, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, VIRTQ_MAX_CHAIN, 0, VIRTQ_MAX_CHAIN, 0);
	set_chain_in(e, TABLE_GPA, 0, HALF_UP, HALF_DOWN, 1);
	set_indirect(e, TABLE_GPA, 16 * (VIRTQ_MAX_CHAIN + 1), 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	/* Direct descriptors count against the same budget. */
	set_chain_in(e, TABLE_GPA, 0, HALF_DOWN, HALF_DOWN, 1);
	set_desc(e, 1, DATA_GPA, 1, VRING_DESC_F_NEXT, 0);
	set_indirect(e, TABLE_GPA, 16 * VIRTQ_MAX_CHAIN, 0);
	expect_pop(e, 1, VIRTQ_BROKEN);
}

static void test_indirect_more_than_max(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 0, 3, 4);
	set_indirect(e, TABLE_GPA, 3 * 16, 0);
	expect_pop_max(e, 0, 3, VIRTQ_GOT);
	expect_pop_max(e, 0, 2, VIRTQ_BROKEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_indirect_valid),
		T(test_indirect_write_flag_ignored),
		T(test_indirect_unaligned_table),
		T(test_indirect_after_direct),
		T(test_indirect_with_next),
		T(test_indirect_len_zero),
		T(test_indirect_len_not_multiple_of_16),
		T(test_indirect_nested),
		T(test_indirect_loop),
		T(test_indirect_next_outside_table),
		T(test_indirect_table_outside_ram),
		T(test_indirect_table_too_long),
		T(test_indirect_more_than_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
