/* A disk copied along with a migration (src/migrate/storage.c) over the
 * write bitmap (src/block/dirty.c): the first round sends what holds
 * data, later rounds what the guest wrote meanwhile (through the real
 * asynchronous disk), and the destination's copy ends up equal to the
 * source, holes included. Hostile records are refused without writing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "block/dirty.h"
#include "migrate/storage.h"
#include "migrate/stream.h"
#include "util/err.h"
#include "vmm/event_loop.h"

/* Not a multiple of the chunk: the last one is short. */
#define SIZE ((3u << 20) + 12288u)

static void test_dirty_marks_and_takes(void **state)
{
	struct block_dirty d;
	uint64_t out[1] = { 0 };

	(void)state;
	assert_int_equal(block_dirty_init(&d, 5 * BLOCK_DIRTY_CHUNK + 100), 0);
	block_dirty_mark(&d, BLOCK_DIRTY_CHUNK - 1, 2); /* straddles chunks 0 and 1 */
	block_dirty_mark(&d, 5 * BLOCK_DIRTY_CHUNK + 50, 1000); /* clipped to the disk */
	block_dirty_mark(&d, 6 * BLOCK_DIRTY_CHUNK, 10);        /* beyond it: nothing */
	block_dirty_mark(&d, 0, 0);
	assert_int_equal(block_dirty_take(&d, out), 3);
	assert_int_equal(out[0], 0x23);
	out[0] = 0;
	assert_int_equal(block_dirty_take(&d, out), 0); /* taken: clear */
	block_dirty_mark_all(&d);
	assert_int_equal(block_dirty_take(&d, out), 6);
	block_dirty_free(&d);
}

struct rec {
	uint32_t type;
	size_t len;
	uint8_t *data;
};

struct capture {
	struct rec r[256];
	unsigned n;
};

static int capture(void *ctx, uint32_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	struct capture *c = ctx;
	struct rec *r = &c->r[c->n++];

	assert_true(c->n <= 256);
	r->type = type;
	r->len = alen + blen;
	r->data = malloc(r->len + 1);
	memcpy(r->data, a, alen);
	if (blen)
		memcpy(r->data + alen, b, blen);
	return 0;
}

static void capture_free(struct capture *c)
{
	for (unsigned i = 0; i < c->n; i++)
		free(c->r[i].data);
	c->n = 0;
}

static void fill(uint8_t *buf, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 7);
}

static void done(void *opaque, int64_t result)
{
	*(int64_t *)opaque = result;
}

/* Writes through the asynchronous disk, as the guest's requests do. */
static void guest_write(struct block *b, struct event_loop *loop, uint64_t off, uint8_t *buf, size_t len)
{
	struct iovec iov = { buf, len };
	int64_t result = -1000;

	assert_int_equal(b->ops->writev(b, off, &iov, 1, done, &result), 0);
	b->ops->submit(b);
	while (result == -1000)
		event_loop_run_once(loop, 1000);
	assert_int_equal(result, (int64_t)len);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(SIZE + 1);

	assert_non_null(f);
	*len = fread(buf, 1, SIZE + 1, f);
	fclose(f);
	return buf;
}

struct env {
	char dir[64], src[96], there[96], copy[128];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	snprintf(e->dir, sizeof(e->dir), "/tmp/cellvm-test-storage-XXXXXX");
	if (!mkdtemp(e->dir))
		return -1;
	snprintf(e->src, sizeof(e->src), "%s/disk.img", e->dir);
	snprintf(e->there, sizeof(e->there), "%s/there", e->dir);
	snprintf(e->copy, sizeof(e->copy), "%s/disk.img", e->there);
	if (mkdir(e->there, 0755))
		return -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd) != 0)
		return -1;
	free(e);
	return 0;
}

static void feed(struct storage_in *in, struct capture *c, const struct storage_dest *dest)
{
	const char *why = NULL;

	for (unsigned i = 0; i < c->n; i++) {
		int rc = c->r[i].type == MIG_DISKS ? storage_in_disks(in, c->r[i].data, c->r[i].len, dest, &why)
						    : storage_in_blocks(in, c->r[i].data, c->r[i].len, &why);

		assert_int_equal(rc, 0);
	}
}

static void test_copy_round_trip(void **state)
{
	struct env *e = *state;
	struct event_loop loop;
	struct block *b;
	struct storage_out out;
	struct storage_in in = { 0 };
	struct storage_dest dest = { .dir = e->there };
	struct capture c = { .n = 0 };
	uint8_t *data = malloc(SIZE), *got;
	const char *why;
	size_t len;
	int fd;

	/* Data at the start and in the short last chunk; a hole between. */
	fill(data, SIZE, 1);
	memset(data + (1u << 20), 0, 1u << 20);
	fd = open(e->src, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, 1u << 20, 0), 1 << 20);
	assert_int_equal(pwrite(fd, data + (2u << 20), SIZE - (2u << 20), 2u << 20), SIZE - (2u << 20));
	assert_int_equal(ftruncate(fd, SIZE), 0);
	close(fd);

	assert_int_equal(event_loop_init(&loop), 0);
	assert_int_equal(block_open(e->src, BLOCK_FORMAT_RAW, false, 8, &loop, &b), 0);
	assert_int_equal(storage_out_start(&out, &(struct storage_src){ .b = b, .path = e->src, .id = "" }, 1), 0);
	assert_int_equal(storage_out_announce(&out, capture, &c), 0);
	assert_int_equal(storage_out_round(&out, capture, &c), 0);
	/* Nothing of the hole went: 2 MiB + the tail, in records of 1 MiB at most. */
	len = 0;
	for (unsigned i = 1; i < c.n; i++)
		len += c.r[i].len - 20;
	assert_int_equal(len, SIZE - (1u << 20));

	/* The guest writes into the hole and over the tail meanwhile. */
	fill(data + (1u << 20) + 4096, 8192, 9);
	guest_write(b, &loop, (1u << 20) + 4096, data + (1u << 20) + 4096, 8192);
	fill(data + SIZE - 512, 512, 3);
	guest_write(b, &loop, SIZE - 512, data + SIZE - 512, 512);
	assert_int_equal(storage_out_dirty(&out), 2 * BLOCK_DIRTY_CHUNK);
	assert_int_equal(storage_out_round(&out, capture, &c), 0);
	assert_int_equal(storage_out_dirty(&out), 0);

	feed(&in, &c, &dest);
	assert_int_equal(storage_in_finish(&in, &why), 0);
	got = slurp(e->copy, &len);
	assert_int_equal(len, SIZE);
	assert_memory_equal(got, data, SIZE);
	free(got);

	/* A second migration here would replace the copy: refused, nothing made. */
	memset(&in, 0, sizeof(in));
	assert_int_equal(storage_in_disks(&in, c.r[0].data, c.r[0].len, &dest, &why), CV_EINPUT);
	storage_in_discard(&in);

	storage_out_stop(&out);
	capture_free(&c);
	assert_int_equal(b->ops->close(b), 0);
	event_loop_destroy(&loop);
	free(data);
}

static void put_blocks(uint8_t *rec, uint32_t disk, uint32_t flags, uint64_t off, uint32_t n)
{
	disk = htole32(disk);
	flags = htole32(flags);
	off = htole64(off);
	n = htole32(n);
	memcpy(rec, &disk, 4);
	memcpy(rec + 4, &flags, 4);
	memcpy(rec + 8, &off, 8);
	memcpy(rec + 16, &n, 4);
}

static void test_hostile_records_refused(void **state)
{
	struct env *e = *state;
	struct storage_in in = { 0 };
	struct storage_dest dest = { .dir = e->there }, none = { 0 };
	uint8_t disks[64], rec[20 + 4096] = { 0 };
	const char *why;
	uint64_t size = htole64(1u << 20);
	uint32_t one = htole32(1);
	uint16_t plen = htole16(9), ilen = 0;
	struct stat st;
	size_t dlen = 4 + 8 + 1 + 1 + 1 + 2 + 9 + 2;

	memcpy(disks, &one, 4);
	memcpy(disks + 4, &size, 8);
	disks[12] = 1; /* raw */
	disks[13] = 0; /* a disk */
	disks[14] = 0; /* drive 0 */
	memcpy(disks + 15, &plen, 2);
	memcpy(disks + 17, "/x/../..", 9); /* its name is "..": refused below */
	memcpy(disks + 26, &ilen, 2);
	assert_int_equal(storage_in_disks(&in, disks, dlen - 1, &dest, &why), CV_EINPUT); /* short */
	storage_in_discard(&in);
	assert_int_equal(storage_in_disks(&in, disks, dlen, &dest, &why), CV_EINPUT);
	storage_in_discard(&in);
	memcpy(disks + 17, "/x/y/d.im", 9);
	assert_int_equal(storage_in_disks(&in, disks, dlen, &none, &why), CV_EINPUT); /* takes no disks */
	assert_non_null(strstr(why, "--receive-dir"));
	storage_in_discard(&in);
	disks[12] = 3; /* no such format */
	assert_int_equal(storage_in_disks(&in, disks, dlen, &dest, &why), CV_EINPUT);
	storage_in_discard(&in);
	disks[12] = 1;
	disks[13] = 3; /* no such role */
	assert_int_equal(storage_in_disks(&in, disks, dlen, &dest, &why), CV_EINPUT);
	storage_in_discard(&in);
	disks[13] = 0;
	disks[14] = CV_MAX_DISKS; /* no such drive */
	assert_int_equal(storage_in_disks(&in, disks, dlen, &dest, &why), CV_EINPUT);
	storage_in_discard(&in);
	disks[14] = 0;
	assert_int_equal(storage_in_disks(&in, disks, dlen, &dest, &why), 0);

	put_blocks(rec, 1, 0, 0, 4096); /* no disk 1 */
	assert_int_equal(storage_in_blocks(&in, rec, sizeof(rec), &why), CV_EINPUT);
	put_blocks(rec, 0, 0, (1u << 20) - 2048, 4096); /* past the end */
	assert_int_equal(storage_in_blocks(&in, rec, sizeof(rec), &why), CV_EINPUT);
	put_blocks(rec, 0, 0, UINT64_MAX - 100, 4096); /* wraps */
	assert_int_equal(storage_in_blocks(&in, rec, sizeof(rec), &why), CV_EINPUT);
	put_blocks(rec, 0, 0, 0, 8192); /* longer than what came */
	assert_int_equal(storage_in_blocks(&in, rec, sizeof(rec), &why), CV_EINPUT);
	put_blocks(rec, 0, 4, 0, 4096); /* unknown flag */
	assert_int_equal(storage_in_blocks(&in, rec, sizeof(rec), &why), CV_EINPUT);
	put_blocks(rec, 0, MIG_BLOCKS_ZERO, 0, 4096); /* zeroes carry no bytes */
	assert_int_equal(storage_in_blocks(&in, rec, sizeof(rec), &why), CV_EINPUT);
	assert_int_equal(storage_in_blocks(&in, rec, 20, &why), 0);
	put_blocks(rec, 0, 0, 4096, 4096);
	assert_int_equal(storage_in_blocks(&in, rec, sizeof(rec), &why), 0);
	/* A failed migration leaves nothing behind. */
	storage_in_discard(&in);
	assert_int_equal(stat(e->copy, &st), -1);
	snprintf((char *)rec, sizeof(rec), "ls -A %s | grep -q .", e->there);
	assert_int_not_equal(system((char *)rec), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_marks_and_takes),
		cmocka_unit_test_setup_teardown(test_copy_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_records_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
