/* Copies between a buffer and byte ranges of an iovec (src/util/iov.c):
 * iov_to_buf and iov_from_buf across, within and beyond segments. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "util/iov.h"

/* Segments of 3, 0, 5 and 4 bytes over "abcdefghijkl". */
struct iov_fixture {
	char a[3], c[5], d[4];
	struct iovec v[4];
};

static void iov_fixture_init(struct iov_fixture *f)
{
	memcpy(f->a, "abc", 3);
	memcpy(f->c, "defgh", 5);
	memcpy(f->d, "ijkl", 4);
	f->v[0] = (struct iovec){ f->a, 3 };
	f->v[1] = (struct iovec){ NULL, 0 };
	f->v[2] = (struct iovec){ f->c, 5 };
	f->v[3] = (struct iovec){ f->d, 4 };
}

static void test_iov_to_buf(void **state)
{
	struct iov_fixture f;
	char buf[16];

	(void)state;
	iov_fixture_init(&f);
	memset(buf, '.', sizeof(buf));
	assert_int_equal(iov_to_buf(f.v, 4, 2, buf, 8), 8); /* across three segments */
	assert_memory_equal(buf, "cdefghij.", 9);
	memset(buf, '.', sizeof(buf));
	assert_int_equal(iov_to_buf(f.v, 4, 3, buf, 5), 5); /* exactly segment c */
	assert_memory_equal(buf, "defgh.", 6);
	memset(buf, '.', sizeof(buf));
	assert_int_equal(iov_to_buf(f.v, 4, 9, buf, sizeof(buf)), 3); /* partial: runs out */
	assert_memory_equal(buf, "jkl.", 4);
	assert_int_equal(iov_to_buf(f.v, 4, 0, buf, sizeof(buf)), 12);
	assert_memory_equal(buf, "abcdefghijkl", 12);
	assert_int_equal(iov_to_buf(f.v, 2, 0, buf, sizeof(buf)), 3); /* only n segments */
}

static void test_iov_from_buf(void **state)
{
	struct iov_fixture f;

	(void)state;
	iov_fixture_init(&f);
	assert_int_equal(iov_from_buf(f.v, 4, 1, "XYZUVW", 6), 6);
	assert_memory_equal(f.a, "aXY", 3);
	assert_memory_equal(f.c, "ZUVWh", 5);
	assert_memory_equal(f.d, "ijkl", 4);
	assert_int_equal(iov_from_buf(f.v, 4, 10, "1234", 4), 2); /* partial */
	assert_memory_equal(f.d, "ij12", 4);
	assert_int_equal(iov_from_buf(f.v, 4, 0, "", 0), 0);
}

static void test_iov_skip_beyond_total(void **state)
{
	struct iov_fixture f;
	char buf[4];

	(void)state;
	iov_fixture_init(&f);
	memset(buf, '.', sizeof(buf));
	assert_int_equal(iov_to_buf(f.v, 4, 12, buf, sizeof(buf)), 0);
	assert_int_equal(iov_to_buf(f.v, 4, UINT64_MAX, buf, sizeof(buf)), 0);
	assert_int_equal(iov_from_buf(f.v, 4, 13, "zz", 2), 0);
	assert_memory_equal(buf, "....", 4);
	assert_memory_equal(f.d, "ijkl", 4);
	assert_int_equal(iov_to_buf(NULL, 0, 0, buf, sizeof(buf)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iov_to_buf),
		cmocka_unit_test(test_iov_from_buf),
		cmocka_unit_test(test_iov_skip_beyond_total),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
