/* console_filter: Ctrl-A escapes on a terminal, pass-through otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "helpers.h"
#include "vmm/console.h"

#define ESC "\x01"

/* Feeds s through the filter; checks what reaches the guest and the action. */
static void feed(struct console *c, const char *s, const char *want, enum console_action want_act)
{
	size_t n = strlen(s);
	uint8_t out[64];
	/* Start from the other action, so the filter has to set it. */
	enum console_action act = want_act == CONSOLE_NONE ? CONSOLE_QUIT : CONSOLE_NONE;
	size_t got;

	assert_true(n <= sizeof(out));
	memset(out, 0xee, sizeof(out));
	got = console_filter(c, (const uint8_t *)s, n, out, &act);
	if (got != strlen(want) || memcmp(out, want, got))
		fail_msg("filtering %zu bytes gave %zu bytes '%.*s', want '%s'", n, got, (int)got, (char *)out, want);
	assert_int_equal(act, want_act);
	/* Nothing written past what was returned. */
	assert_true(test_all_bytes(out + got, sizeof(out) - got, 0xee));
}

static struct console terminal(void)
{
	return (struct console){ .in_fd = -1, .tty = true };
}

static void test_not_a_tty_passes_everything(void **state)
{
	struct console c = { .in_fd = -1, .tty = false };

	(void)state;
	feed(&c, "ab", "ab", CONSOLE_NONE);
	feed(&c, ESC "x", ESC "x", CONSOLE_NONE);
	feed(&c, ESC, ESC, CONSOLE_NONE);
	feed(&c, "x", "x", CONSOLE_NONE); /* no escape state carried over */
	feed(&c, "", "", CONSOLE_NONE);
}

static void test_plain_bytes(void **state)
{
	struct console c = terminal();

	(void)state;
	feed(&c, "ab", "ab", CONSOLE_NONE);
	feed(&c, "\x03\r\n\x1b[A", "\x03\r\n\x1b[A", CONSOLE_NONE); /* Ctrl-C etc. are the guest's */
}

static void test_quit(void **state)
{
	struct console c = terminal();

	(void)state;
	feed(&c, "ab" ESC "xcd", "ab", CONSOLE_QUIT);
	assert_false(c.escaped);
	c = terminal();
	feed(&c, ESC "X", "", CONSOLE_QUIT);
}

static void test_double_escape_sends_one(void **state)
{
	struct console c = terminal();

	(void)state;
	feed(&c, ESC ESC, ESC, CONSOLE_NONE);
	feed(&c, "a" ESC ESC ESC ESC "b", "a" ESC ESC "b", CONSOLE_NONE);
	/* The escape state is over: a following x is just an x. */
	feed(&c, ESC ESC "x", ESC "x", CONSOLE_NONE);
}

static void test_escape_split_across_reads(void **state)
{
	struct console c = terminal();

	(void)state;
	feed(&c, "a" ESC, "a", CONSOLE_NONE);
	assert_true(c.escaped);
	feed(&c, "x", "", CONSOLE_QUIT);

	c = terminal();
	feed(&c, ESC, "", CONSOLE_NONE);
	feed(&c, ESC "b", ESC "b", CONSOLE_NONE);
	assert_false(c.escaped);
}

static void test_unknown_escape_dropped(void **state)
{
	struct console c = terminal();

	(void)state;
	feed(&c, ESC "q", "", CONSOLE_NONE);
	feed(&c, "a" ESC "qb", "ab", CONSOLE_NONE);
	feed(&c, ESC "\r", "", CONSOLE_NONE);
	assert_false(c.escaped);
	/* Help (printed on stderr) is not for the guest either. */
	feed(&c, "a" ESC "hb", "ab", CONSOLE_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_a_tty_passes_everything),
		cmocka_unit_test(test_plain_bytes),
		cmocka_unit_test(test_quit),
		cmocka_unit_test(test_double_escape_sends_one),
		cmocka_unit_test(test_escape_split_across_reads),
		cmocka_unit_test(test_unknown_escape_dropped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
