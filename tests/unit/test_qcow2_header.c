/* qcow2 header and table checks against hostile input: every malformed
 * field is refused with one line naming it, before any table is used. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/image.h"
#include "block/qcow2.h"
#include "util/err.h"

#define CS 65536
#define FILE_SIZE (4 * CS)

static uint8_t hdr[CS];

static void put32(size_t at, uint32_t v)
{
	v = htobe32(v);
	memcpy(hdr + at, &v, 4);
}

static void put64(size_t at, uint64_t v)
{
	v = htobe64(v);
	memcpy(hdr + at, &v, 8);
}

/* A valid v3 header: refcount table at cluster 1, L1 at cluster 3. */
static int reset(void **state)
{
	(void)state;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, QCOW2_MAGIC, 4);
	put32(4, 3);
	put32(20, 16);
	put64(24, 1ULL << 30);
	put32(36, 2);
	put64(40, 3 * CS);
	put64(48, CS);
	put32(56, 1);
	put32(96, 4);
	put32(100, 104);
	return 0;
}

/* Parses hdr; expects failure with `want` in the message (or success if NULL). */
static void expect(const char *want, uint64_t file_size)
{
	struct qcow2_header h;
	char err[256] = "";
	int rc = qcow2_header_parse(hdr, sizeof(hdr), file_size, &h, err, sizeof(err));

	if (!want) {
		if (rc)
			fail_msg("valid header refused: %s", err);
		return;
	}
	if (rc != CV_EINPUT)
		fail_msg("header accepted, wanted an error about '%s'", want);
	if (!strstr(err, want))
		fail_msg("error '%s' does not mention '%s'", err, want);
}

static void test_valid(void **state)
{
	struct qcow2_header h;
	char err[64];

	(void)state;
	expect(NULL, FILE_SIZE);
	assert_int_equal(qcow2_header_parse(hdr, sizeof(hdr), FILE_SIZE, &h, err, sizeof(err)), 0);
	assert_int_equal(h.cluster_bits, 16);
	assert_int_equal(h.l1_size, 2);
	assert_string_equal(h.backing_file, "");
}

static void test_bad_magic_and_version(void **state)
{
	(void)state;
	hdr[3] = 0xfa;
	expect("magic", FILE_SIZE);
	reset(state);
	put32(4, 1);
	expect("version 1", FILE_SIZE);
	put32(4, 4);
	expect("version 4", FILE_SIZE);
	reset(state);
	expect("too short", 40);
}

static void test_cluster_bits(void **state)
{
	(void)state;
	put32(20, 8);
	expect("cluster_bits 8", FILE_SIZE);
	put32(20, 22);
	expect("cluster_bits 22", FILE_SIZE);
	put32(20, 0xffffffff);
	expect("cluster_bits", FILE_SIZE);
}

static void test_header_fields(void **state)
{
	(void)state;
	put32(100, 100);
	expect("header_length", FILE_SIZE);
	put32(100, 108);
	expect("header_length", FILE_SIZE); /* not a multiple of 8 */
	reset(state);
	put32(96, 7);
	expect("refcount_order 7", FILE_SIZE);
	reset(state);
	put32(32, 1);
	expect("encrypted", FILE_SIZE);
	reset(state);
	put64(72, 1ULL << 40);
	expect("unknown incompatible", FILE_SIZE);
	put64(72, QCOW2_INCOMPAT_EXTL2);
	expect("extended L2", FILE_SIZE);
	put64(72, QCOW2_INCOMPAT_DATA_FILE);
	expect("external data", FILE_SIZE);
	put64(72, QCOW2_INCOMPAT_COMPRESSION);
	put32(100, 112);
	hdr[104] = 1;
	expect("zstd", FILE_SIZE);
}

static void test_tables_outside_file(void **state)
{
	(void)state;
	put64(40, 3 * CS + 8);
	expect("L1 table offset 0x30008 is not aligned", FILE_SIZE);
	put64(40, 100 * CS);
	expect("L1 table at 0x640000", FILE_SIZE);
	put64(40, UINT64_MAX - CS + 1);
	expect("past the end", FILE_SIZE);
	reset(state);
	put64(48, CS + 512);
	expect("refcount table offset", FILE_SIZE);
	put64(48, 1ULL << 40);
	expect("refcount table at", FILE_SIZE);
	reset(state);
	put32(56, 0);
	expect("refcount table of 0 clusters", FILE_SIZE);
	put32(56, 0xffffffff);
	expect("refcount table of 4294967295 clusters", FILE_SIZE);
}

static void test_overlaps(void **state)
{
	(void)state;
	put64(40, CS); /* L1 on the refcount table */
	expect("overlaps", FILE_SIZE);
	put64(40, 0); /* L1 on the header */
	expect("overlaps the header", FILE_SIZE);
	reset(state);
	put64(48, 3 * CS); /* refcount table on the L1 table */
	expect("overlaps", FILE_SIZE);
	reset(state);
	put32(60, 1);
	put64(64, CS); /* snapshot table on the refcount table */
	expect("snapshot table", FILE_SIZE);
}

static void test_l1_size(void **state)
{
	(void)state;
	put32(36, 1); /* 1 GiB of 64 KiB clusters needs 2 L1 entries */
	expect("L1 size 1 is too small", FILE_SIZE);
	put32(36, 0xffffffff);
	expect("L1 size 4294967295 is too large", 1ULL << 62);
	reset(state);
	put64(24, UINT64_MAX);
	expect("virtual size", FILE_SIZE);
	put64(24, 1ULL << 61); /* needs 2^32 L1 entries: more than a 32-bit l1_size */
	expect("too", FILE_SIZE);
}

static void test_backing_name(void **state)
{
	(void)state;
	put64(8, CS - 4);
	put32(16, 8);
	expect("outside the header cluster", FILE_SIZE);
	put64(8, 200);
	put32(16, 2000);
	expect("length 2000", FILE_SIZE);
	put32(16, 0);
	expect("length 0", FILE_SIZE);
	put64(8, 16); /* inside the header fields */
	put32(16, 8);
	expect("outside the header cluster", FILE_SIZE);
	put64(8, UINT64_MAX);
	expect("outside", FILE_SIZE);
	put64(8, 200);
	memcpy(hdr + 200, "a\0b.img", 8);
	expect("NUL", FILE_SIZE);
	memcpy(hdr + 200, "base.img", 8);
	expect(NULL, FILE_SIZE);
}

static void test_extensions(void **state)
{
	(void)state;
	put32(104, QCOW2_EXT_BACKING_FORMAT);
	put32(108, 0x7fffffff); /* runs past the cluster */
	expect("header extension 0xe2792aca", FILE_SIZE);
	put32(108, 40); /* longer than any format name */
	expect("backing format", FILE_SIZE);
	put32(108, 5);
	memcpy(hdr + 112, "qcow2", 5);
	expect(NULL, FILE_SIZE);
}

/* --- whole files: table entries are checked when the image opens --- */

static char path[64];

static void write_image(void)
{
	int fd;

	strcpy(path, "/tmp/test_qcow2_header-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, hdr, CS), CS);
	assert_int_equal(ftruncate(fd, FILE_SIZE), 0);
	close(fd);
}

static void put_at(uint64_t off, uint64_t v)
{
	int fd = open(path, O_WRONLY);

	v = htobe64(v);
	assert_int_equal(pwrite(fd, &v, 8, (off_t)off), 8);
	close(fd);
}

static int open_image(unsigned flags)
{
	struct image *img;
	int rc = image_open(path, BLOCK_FORMAT_AUTO, flags, &img);

	if (!rc)
		image_close(img);
	return rc;
}

static void test_open_bad_entries(void **state)
{
	(void)state;
	write_image();
	put_at(CS, 2 * CS); /* refcount block at cluster 2 */
	assert_int_equal(open_image(0), 0);
	put_at(3 * CS, (100ULL * CS) | QCOW2_COPIED); /* L1 -> L2 past the end */
	assert_int_equal(open_image(0), CV_EINPUT);
	put_at(3 * CS, (2 * CS + 512) | QCOW2_COPIED); /* unaligned */
	assert_int_equal(open_image(0), CV_EINPUT);
	put_at(3 * CS, 2 * CS | (1ULL << 60)); /* reserved bit */
	assert_int_equal(open_image(0), CV_EINPUT);
	put_at(3 * CS, 3 * CS); /* L2 table on the L1 table */
	assert_int_equal(open_image(0), CV_EINPUT);
	put_at(3 * CS, 0);
	put_at(CS, 5ULL * CS); /* refcount block past the end */
	assert_int_equal(open_image(0), CV_EINPUT);
	put_at(CS, 0);
	/* Not a qcow2 header at all: a truncated one. */
	assert_int_equal(truncate(path, 50), 0);
	assert_int_equal(open_image(0), CV_EINPUT);
	unlink(path);
}

/* Dirty, corrupt or snapshot-carrying images open read-only, never writable. */
static void test_open_refuses_writes(void **state)
{
	(void)state;
	put64(72, QCOW2_INCOMPAT_CORRUPT);
	write_image();
	put_at(CS, 2 * CS);
	assert_int_equal(open_image(0), 0);
	assert_int_equal(open_image(IMAGE_RW), CV_EINPUT);
	unlink(path);
	reset(state);
	put64(72, QCOW2_INCOMPAT_DIRTY);
	write_image();
	assert_int_equal(open_image(IMAGE_RW), CV_EINPUT);
	unlink(path);
}

/* A refcount at its maximum cannot be raised; one at 0 cannot drop. */
static void test_refcount_overflow(void **state)
{
	struct image *img;
	struct qcow2 *q;

	(void)state;
	put32(96, 0); /* 1-bit refcounts */
	write_image();
	put_at(CS, 2 * CS);
	{
		int fd = open(path, O_WRONLY);
		uint8_t b = 0x0f; /* clusters 0..3 in use */

		assert_int_equal(pwrite(fd, &b, 1, 2 * CS), 1);
		close(fd);
	}
	assert_int_equal(image_open(path, BLOCK_FORMAT_AUTO, IMAGE_RW, &img), 0);
	q = qcow2_of(img);
	pthread_mutex_lock(&q->lock);
	assert_int_equal(qcow2_refcount_add(q, 1, +1), -EIO);
	assert_int_equal(qcow2_refcount_add(q, 9, -1), -EIO);
	pthread_mutex_unlock(&q->lock);
	image_close(img);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_valid, reset),
		cmocka_unit_test_setup(test_bad_magic_and_version, reset),
		cmocka_unit_test_setup(test_cluster_bits, reset),
		cmocka_unit_test_setup(test_header_fields, reset),
		cmocka_unit_test_setup(test_tables_outside_file, reset),
		cmocka_unit_test_setup(test_overlaps, reset),
		cmocka_unit_test_setup(test_l1_size, reset),
		cmocka_unit_test_setup(test_backing_name, reset),
		cmocka_unit_test_setup(test_extensions, reset),
		cmocka_unit_test_setup(test_open_bad_entries, reset),
		cmocka_unit_test_setup(test_open_refuses_writes, reset),
		cmocka_unit_test_setup(test_refcount_overflow, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
