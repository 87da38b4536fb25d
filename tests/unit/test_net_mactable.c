/* The switch's MAC learning table: learning, moves, ageing, eviction,
 * group addresses, ports that leave. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "net/mactable.h"

static const uint8_t A[6] = { 0x52, 0x54, 0, 0, 0, 1 }, B[6] = { 0x52, 0x54, 0, 0, 0, 2 };
static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, MCAST[6] = { 0x01, 0, 0x5e, 0, 0, 1 };

static struct mactable t;

static void test_learn_and_lookup(void **state)
{
	(void)state;
	mactable_init(&t);
	assert_int_equal(mactable_lookup(&t, A, 0), -1); /* unknown: flood */
	assert_int_equal(mactable_learn(&t, A, 3, 10), -1);
	assert_int_equal(mactable_learn(&t, B, 5, 10), -1);
	assert_int_equal(mactable_lookup(&t, A, 20), 3);
	assert_int_equal(mactable_lookup(&t, B, 20), 5);
	/* A moves: the old port is reported once. */
	assert_int_equal(mactable_learn(&t, A, 4, 30), 3);
	assert_int_equal(mactable_learn(&t, A, 4, 31), 4);
	assert_int_equal(mactable_lookup(&t, A, 40), 4);
}

static void test_group_addresses(void **state)
{
	(void)state;
	mactable_init(&t);
	assert_int_equal(mactable_learn(&t, BCAST, 1, 0), -1);
	assert_int_equal(mactable_learn(&t, MCAST, 1, 0), -1);
	assert_int_equal(mactable_lookup(&t, BCAST, 0), -1);
	assert_int_equal(mactable_lookup(&t, MCAST, 0), -1);
}

static void test_ageing(void **state)
{
	(void)state;
	mactable_init(&t);
	mactable_learn(&t, A, 2, 1000);
	assert_int_equal(mactable_lookup(&t, A, 1000 + MACTABLE_AGE_NS - 1), 2);
	assert_int_equal(mactable_lookup(&t, A, 1000 + MACTABLE_AGE_NS), -1);
	/* An aged entry that comes back is news, not a move. */
	assert_int_equal(mactable_learn(&t, A, 7, 1000 + MACTABLE_AGE_NS), -1);
	assert_int_equal(mactable_lookup(&t, A, 1000 + MACTABLE_AGE_NS), 7);
}

static void test_full_table_evicts_oldest(void **state)
{
	uint8_t m[6] = { 0x52, 0x54, 0, 0, 0, 0 };

	(void)state;
	mactable_init(&t);
	for (int i = 0; i < MACTABLE_SIZE; i++) {
		m[4] = (uint8_t)(i >> 8), m[5] = (uint8_t)i;
		mactable_learn(&t, m, i % 8, 100 + (uint64_t)i);
	}
	/* The first one (seen at 100) makes room for a new one. */
	m[4] = 0xee, m[5] = 0xee;
	mactable_learn(&t, m, 1, 5000);
	assert_int_equal(mactable_lookup(&t, m, 5000), 1);
	m[4] = 0, m[5] = 0;
	assert_int_equal(mactable_lookup(&t, m, 5000), -1);
	m[5] = 1;
	assert_int_equal(mactable_lookup(&t, m, 5000), 1);
}

static void test_forget_port(void **state)
{
	(void)state;
	mactable_init(&t);
	mactable_learn(&t, A, 3, 0);
	mactable_learn(&t, B, 4, 0);
	mactable_forget_port(&t, 3);
	assert_int_equal(mactable_lookup(&t, A, 1), -1);
	assert_int_equal(mactable_lookup(&t, B, 1), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_learn_and_lookup),
		cmocka_unit_test(test_group_addresses),
		cmocka_unit_test(test_ageing),
		cmocka_unit_test(test_full_table_evicts_oldest),
		cmocka_unit_test(test_forget_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
