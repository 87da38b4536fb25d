/* cmdline_add: kernel parameters go before init's standalone "--". */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "helpers.h"
#include "util/cmdline.h"

#define GUARD 0xa5
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* A command line in a buffer whose bytes from `cap` on are guard bytes, so
 * a write past the declared capacity shows. */
struct line {
	char buf[128];
	size_t cap;
};

static void line_set(struct line *l, const char *s, size_t cap)
{
	assert_true(cap <= sizeof(l->buf) && strlen(s) < cap);
	memset(l->buf, GUARD, sizeof(l->buf));
	memcpy(l->buf, s, strlen(s) + 1);
	l->cap = cap;
}

static void check_guard(const struct line *l)
{
	if (!test_all_bytes(l->buf + l->cap, sizeof(l->buf) - l->cap, GUARD))
		fail_msg("cmdline_add wrote past its capacity of %zu", l->cap);
}

static void test_insert_and_append(void **state)
{
	static const struct {
		const char *in, *param, *want;
	} cases[] = {
		/* No "--": append. */
		{ "console=ttyS0", "quiet", "console=ttyS0 quiet" },
		{ "a b c", "pti=on", "a b c pti=on" },
		/* A standalone "--" in the middle, at the end, at the start. */
		{ "console=ttyS0 -- init arg", "quiet", "console=ttyS0 quiet -- init arg" },
		{ "a b --", "p", "a b p --" },
		{ "-- init", "p", "p -- init" },
		{ "--", "p", "p --" },
		/* Only the first standalone "--" counts. */
		{ "a -- b -- c", "p", "a p -- b -- c" },
		/* Tokens that merely contain "--" are kernel parameters. */
		{ "a --x b", "p", "a --x b p" },
		{ "a-- b", "p", "a-- b p" },
		{ "a b--", "p", "a b-- p" },
		{ "--x", "p", "--x p" },
		{ "a --- b", "p", "a --- b p" },
		{ "a x--y b", "p", "a x--y b p" },
		/* ...but one such token ahead of a real "--" does not hide it. */
		{ "a --x -- b", "p", "a --x p -- b" },
		{ "a-- -- b", "p", "a-- p -- b" },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct line l;

		line_set(&l, cases[i].in, 64);
		if (cmdline_add(l.buf, l.cap, cases[i].param) != 0)
			fail_msg("cmdline_add('%s', '%s') failed", cases[i].in, cases[i].param);
		if (strcmp(l.buf, cases[i].want))
			fail_msg("cmdline_add('%s', '%s') = '%s', want '%s'", cases[i].in, cases[i].param, l.buf,
				 cases[i].want);
		check_guard(&l);
	}
}

static void test_repeated_adds_keep_order(void **state)
{
	struct line l;

	(void)state;
	line_set(&l, "console=ttyS0 -- init", 64);
	assert_int_equal(cmdline_add(l.buf, l.cap, "a=1"), 0);
	assert_int_equal(cmdline_add(l.buf, l.cap, "b=2"), 0);
	assert_string_equal(l.buf, "console=ttyS0 a=1 b=2 -- init");
	check_guard(&l);
}

/* The result needs strlen(in) + 1 + strlen(param) + 1 bytes: that capacity
 * succeeds, one less fails and leaves every byte alone. */
static void test_capacity_boundary(void **state)
{
	static const struct {
		const char *in, *param, *want;
	} cases[] = {
		{ "abc", "de", "abc de" },
		{ "abc -- x", "de", "abc de -- x" },
		{ "-- x", "de", "de -- x" },
		{ "", "de", NULL },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		size_t need = strlen(cases[i].in) + 1 + strlen(cases[i].param) + 1;
		struct line l, before;

		line_set(&l, cases[i].in, need - 1);
		before = l;
		if (cmdline_add(l.buf, l.cap, cases[i].param) != -1)
			fail_msg("cmdline_add('%s', '%s') fit in %zu bytes", cases[i].in, cases[i].param, l.cap);
		if (memcmp(l.buf, before.buf, sizeof(l.buf)))
			fail_msg("cmdline_add('%s', '%s') changed the buffer on failure", cases[i].in, cases[i].param);

		line_set(&l, cases[i].in, need);
		if (cmdline_add(l.buf, l.cap, cases[i].param) != 0)
			fail_msg("cmdline_add('%s', '%s') did not fit in %zu bytes", cases[i].in, cases[i].param,
				 l.cap);
		assert_int_equal(strlen(l.buf), need - 1);
		if (cases[i].want)
			assert_string_equal(l.buf, cases[i].want);
		check_guard(&l);
	}
}

static void test_full_buffer_refuses_everything(void **state)
{
	struct line l;

	(void)state;
	line_set(&l, "abc", 4);
	assert_int_equal(cmdline_add(l.buf, l.cap, ""), -1);
	assert_int_equal(cmdline_add(l.buf, l.cap, "x"), -1);
	assert_string_equal(l.buf, "abc");
	check_guard(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_and_append),
		cmocka_unit_test(test_repeated_adds_keep_order),
		cmocka_unit_test(test_capacity_boundary),
		cmocka_unit_test(test_full_buffer_refuses_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
