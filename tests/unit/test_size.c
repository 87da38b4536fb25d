/* size_parse / size_format: human-readable sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "util/size.h"

static void test_parse_valid(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} cases[] = {
		{ "512M", 512ULL << 20 },
		{ "2G", 2ULL << 30 },
		{ "1g", 1ULL << 30 },
		{ "4096", 4096 },
		{ "0", 0 },
		{ "1KiB", 1024 },
		{ "3MB", 3ULL << 20 },
		{ "1kb", 1024 },
		{ "1T", 1ULL << 40 },
		{ "16777215T", 16777215ULL << 40 },       /* largest whole number of T */
		{ "18446744073709551615", UINT64_MAX }, /* largest bare number */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;

		if (!size_parse(cases[i].s, &v))
			fail_msg("size_parse rejected '%s'", cases[i].s);
		if (v != cases[i].v)
			fail_msg("size_parse('%s') = %llu, want %llu", cases[i].s, (unsigned long long)v,
				 (unsigned long long)cases[i].v);
	}
}

static void test_parse_invalid(void **state)
{
	static const char *const cases[] = {
		"", "abc", "-1", "+1", " 1", "12Q", "M", "1.5G", "1 G", "1GG", "1GiBB", "0x10",
		"99999999999999999999", /* > UINT64_MAX */
		"18446744073709551616", /* UINT64_MAX + 1 */
		"16777216T",            /* 2^64 */
		"17179869184T",         /* 2^74 */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 777;

		if (size_parse(cases[i], &v))
			fail_msg("size_parse accepted '%s' as %llu", cases[i], (unsigned long long)v);
		if (v != 777)
			fail_msg("size_parse('%s') wrote its output on failure", cases[i]);
	}
	assert_false(size_parse(NULL, &(uint64_t){ 0 }));
}

static void test_format(void **state)
{
	static const struct {
		uint64_t v;
		const char *s;
	} cases[] = {
		{ 0, "0" },
		{ 100, "100" },
		{ 1024, "1K" },
		{ 1536ULL << 10, "1536K" },
		{ 512ULL << 20, "512M" },
		{ 1ULL << 30, "1G" },
		{ 3ULL << 40, "3T" },
		{ 1ULL << 50, "1024T" },
		{ (1ULL << 30) + 1, "1073741825" },
	};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_format(cases[i].v, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].s);
	}
}

static void test_format_round_trips(void **state)
{
	static const uint64_t values[] = {
		0, 1, 1023, 1024, 4096, 1536ULL << 10, 16ULL << 20, 3ULL << 30, (3ULL << 30) + 4096,
		1ULL << 40, 5ULL << 50, UINT64_MAX, UINT64_MAX - 1023, 1ULL << 63,
	};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		uint64_t back = 0;

		size_format(values[i], buf, sizeof(buf));
		if (!size_parse(buf, &back) || back != values[i])
			fail_msg("%llu formats as '%s', which parses back as %llu",
				 (unsigned long long)values[i], buf, (unsigned long long)back);
	}
}

static void test_format_truncates_to_buffer(void **state)
{
	char buf[4] = "xxx";

	(void)state;
	size_format(123456, buf, sizeof(buf));
	assert_string_equal(buf, "123");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_round_trips),
		cmocka_unit_test(test_format_truncates_to_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
