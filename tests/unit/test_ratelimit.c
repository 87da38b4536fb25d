/* Token buckets (refill, burst, debt, wait times) and the rate limiter's
 * pause/resume through an event-loop timer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <time.h>

#include "util/ratelimit.h"

#define MS 1000000ULL
#define S 1000000000ULL

static void test_starts_full_and_refills(void **state)
{
	struct tbucket b;

	(void)state;
	tbucket_init(&b, 1000, 100, 5 * S); /* 1000 tokens/s, burst 100 */
	assert_true(tbucket_ready(&b));
	tbucket_take(&b, 100);
	assert_int_equal(b.tokens, 0);
	assert_false(tbucket_ready(&b));
	tbucket_refill(&b, 5 * S + 10 * MS); /* 10 ms: 10 tokens */
	assert_int_equal(b.tokens, 10);
	tbucket_refill(&b, 5 * S + 10 * MS); /* same time: nothing more */
	assert_int_equal(b.tokens, 10);
	tbucket_refill(&b, 100 * S); /* long idle: capped at the burst */
	assert_int_equal(b.tokens, 100);
}

static void test_fractions_are_not_lost(void **state)
{
	struct tbucket b;
	uint64_t t = 0;

	(void)state;
	tbucket_init(&b, 3, 10, 0); /* 3 tokens/s: one every 333.33 ms */
	tbucket_take(&b, 10);
	/* Refilling every 100 ms never earns a whole token at once; the
	 * time must still add up to 3 tokens per second. */
	for (int i = 0; i < 10; i++) {
		t += 100 * MS;
		tbucket_refill(&b, t);
	}
	assert_int_equal(b.tokens, 3);
}

static void test_debt_and_wait(void **state)
{
	struct tbucket b;

	(void)state;
	tbucket_init(&b, 1000000, 1000, 0); /* 1 MB/s, burst 1000 */
	assert_int_equal(tbucket_wait_ns(&b, 0), 0);
	/* A request larger than the burst passes and leaves a debt. */
	tbucket_take(&b, 65536);
	assert_int_equal(b.tokens, 1000 - 65536);
	assert_false(tbucket_ready(&b));
	/* 64537 tokens to earn for one: 64.537 ms. */
	assert_int_equal(tbucket_wait_ns(&b, 0), 64537000ULL);
	tbucket_refill(&b, 30 * MS);
	assert_int_equal(tbucket_wait_ns(&b, 30 * MS), 34537000ULL);
	tbucket_refill(&b, 64537000ULL - 1);
	assert_false(tbucket_ready(&b));
	tbucket_refill(&b, 64537000ULL);
	assert_true(tbucket_ready(&b));
	assert_int_equal(b.tokens, 1);
}

static void test_wait_rounds_up(void **state)
{
	struct tbucket b;

	(void)state;
	tbucket_init(&b, 3, 1, 0);
	tbucket_take(&b, 1); /* empty: one token at 333333333.3 ns */
	assert_int_equal(tbucket_wait_ns(&b, 0), 333333334ULL);
	tbucket_refill(&b, 333333334ULL);
	assert_true(tbucket_ready(&b));
}

static void test_unlimited(void **state)
{
	struct tbucket b;

	(void)state;
	tbucket_init(&b, 0, 0, 0);
	tbucket_take(&b, UINT64_MAX);
	assert_true(tbucket_ready(&b));
	assert_int_equal(tbucket_wait_ns(&b, 0), 0);
}

static void test_long_run_rate(void **state)
{
	struct tbucket b;
	uint64_t t = 0, sent = 0;

	(void)state;
	/* 10 MB/s with 64 KiB frames, admitted whenever allowed: after
	 * 2 simulated seconds no more than burst + 2 s * rate + one frame. */
	tbucket_init(&b, 10000000, 65536, 0);
	while (t <= 2 * S) {
		tbucket_refill(&b, t);
		if (tbucket_ready(&b)) {
			tbucket_take(&b, 65536);
			sent += 65536;
		} else {
			t += tbucket_wait_ns(&b, t);
		}
	}
	assert_true(sent <= 65536 + 2 * 10000000ULL + 65536);
	assert_true(sent >= 2 * 10000000ULL - 65536);
}

static void test_huge_values_do_not_overflow(void **state)
{
	struct tbucket b;

	(void)state;
	tbucket_init(&b, UINT64_MAX / 2, UINT64_MAX, 0);
	tbucket_take(&b, UINT64_MAX);
	tbucket_refill(&b, UINT64_MAX);
	assert_true(b.tokens <= b.burst);
	tbucket_init(&b, 1, 1, 0);
	tbucket_take(&b, UINT64_MAX);
	assert_true(tbucket_wait_ns(&b, 0) > 0);
}

/* ---- the limiter with its timer on a real event loop */

static int resumed;

static void on_resume(void *opaque)
{
	(void)opaque;
	resumed++;
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * S + (uint64_t)t.tv_nsec;
}

static void test_limiter_pauses_and_resumes(void **state)
{
	struct ratelimit_config c = { .ops = 20, .ops_burst = 1 }; /* one op per 50 ms */
	struct event_loop loop;
	struct ratelimit r;
	uint64_t start;

	(void)state;
	assert_int_equal(event_loop_init(&loop), 0);
	assert_int_equal(ratelimit_init(&r, &c, &loop, on_resume, NULL), 0);
	resumed = 0;
	assert_true(ratelimit_admit(&r));
	ratelimit_charge(&r, 4096);
	start = mono_ns();
	assert_false(ratelimit_admit(&r));
	assert_true(r.waiting);
	assert_false(ratelimit_admit(&r)); /* still waiting: no second timer */
	while (!resumed)
		assert_int_equal(event_loop_run_once(&loop, 1000), 0);
	assert_int_equal(resumed, 1);
	assert_true(mono_ns() - start >= 40 * MS);
	assert_true(ratelimit_admit(&r));

	/* A reset drops the pending resume. */
	ratelimit_charge(&r, 0);
	assert_false(ratelimit_admit(&r));
	ratelimit_reset(&r);
	assert_int_equal(event_loop_run_once(&loop, 100), 0);
	assert_int_equal(resumed, 1);
	ratelimit_destroy(&r);
	event_loop_destroy(&loop);
}

static void test_limiter_defaults(void **state)
{
	struct ratelimit_config off = { 0 }, bps = { .bps = 10 << 20 }, slow = { .bps = 1000 };
	struct event_loop loop;
	struct ratelimit r;

	(void)state;
	assert_int_equal(event_loop_init(&loop), 0);
	assert_int_equal(ratelimit_init(&r, &off, &loop, on_resume, NULL), 0);
	assert_false(r.enabled);
	for (int i = 0; i < 1000; i++) {
		assert_true(ratelimit_admit(&r));
		ratelimit_charge(&r, 1 << 20);
	}
	ratelimit_destroy(&r);
	/* Default burst: a tenth of a second, at least 64 KiB; ops unlimited. */
	assert_int_equal(ratelimit_init(&r, &bps, &loop, on_resume, NULL), 0);
	assert_int_equal(r.bytes.burst, (10 << 20) / 10);
	assert_int_equal(r.ops.rate, 0);
	ratelimit_destroy(&r);
	assert_int_equal(ratelimit_init(&r, &slow, &loop, on_resume, NULL), 0);
	assert_int_equal(r.bytes.burst, RATELIMIT_MIN_BYTE_BURST);
	ratelimit_destroy(&r);
	event_loop_destroy(&loop);
}

/* Firecracker's one_time_burst: spent before the tokens, never refilled. */
static void test_one_time_burst(void **state)
{
	struct tbucket b;

	(void)state;
	tbucket_init(&b, 1000, 100, 0);
	b.once = 250;
	tbucket_take(&b, 200);
	assert_int_equal(b.once, 50);
	assert_int_equal(b.tokens, 100);
	tbucket_take(&b, 120); /* 50 from the burst, 70 from the tokens */
	assert_int_equal(b.once, 0);
	assert_int_equal(b.tokens, 30);
	tbucket_refill(&b, 100 * S);
	assert_int_equal(b.tokens, 100);
	assert_int_equal(b.once, 0);
	/* A bucket with only its one-time burst left is still ready. */
	tbucket_init(&b, 10, 1, 0);
	tbucket_take(&b, 1);
	b.once = 5;
	assert_true(tbucket_ready(&b));
}

/* A PATCH replaces the named buckets (full again), keeps the others, can
 * turn a disabled limiter on (making its timer) and off, and a device that
 * was held back hears that it may try again. */
static void test_limiter_update(void **state)
{
	struct ratelimit_config ops = { .ops = 1, .ops_burst = 1 }, bytes = { .bps = 1000, .bps_burst = 1000 };
	struct event_loop loop;
	struct ratelimit r;
	int rc;

	(void)state;
	assert_int_equal(event_loop_init(&loop), 0);
	assert_int_equal(ratelimit_init(&r, NULL, &loop, on_resume, NULL), 0);
	assert_false(r.enabled);
	assert_false(ratelimit_update(&r, &ops, RATELIMIT_OPS, &rc));
	assert_int_equal(rc, 0);
	assert_true(r.enabled);
	assert_true(ratelimit_admit(&r));
	ratelimit_charge(&r, 10);
	assert_false(ratelimit_admit(&r));
	assert_int_equal(r.throttled, 1);
	/* Bytes added; ops keeps its debt, so the device is still held. */
	assert_true(ratelimit_update(&r, &bytes, RATELIMIT_BYTES, &rc));
	assert_int_equal(r.ops.rate, 1);
	assert_int_equal(r.bytes.rate, 1000);
	assert_false(ratelimit_admit(&r));
	/* Ops off: free to go. */
	assert_true(ratelimit_update(&r, NULL, RATELIMIT_OPS, &rc));
	assert_false(r.waiting);
	assert_true(ratelimit_admit(&r));
	assert_true(ratelimit_update(&r, NULL, RATELIMIT_BYTES, &rc) == false);
	assert_false(r.enabled);
	ratelimit_destroy(&r);
	event_loop_destroy(&loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_starts_full_and_refills),
		cmocka_unit_test(test_fractions_are_not_lost),
		cmocka_unit_test(test_debt_and_wait),
		cmocka_unit_test(test_wait_rounds_up),
		cmocka_unit_test(test_unlimited),
		cmocka_unit_test(test_long_run_rate),
		cmocka_unit_test(test_huge_values_do_not_overflow),
		cmocka_unit_test(test_limiter_pauses_and_resumes),
		cmocka_unit_test(test_limiter_defaults),
		cmocka_unit_test(test_one_time_burst),
		cmocka_unit_test(test_limiter_update),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
