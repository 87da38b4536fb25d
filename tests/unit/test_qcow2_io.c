/* qcow2 reads and writes through the image API, against a model in
 * memory: random writes, write-zeroes and discards over several cluster
 * sizes (512-byte clusters make the refcount table grow), with and
 * without a backing file, from several threads at once; after each run
 * the image is reopened, read back and checked for consistency (no
 * errors, no leaks). Also: backing loops, chains, growth, preallocation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/image.h"
#include "block/qcow2.h"
#include "block/raw.h"
#include "util/err.h"

#define DISK (8u << 20)

struct env {
	char dir[64];
	char path[128], base[128];
	uint8_t *model;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	strcpy(e->dir, "/tmp/test_qcow2_io-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/top.qcow2", e->dir);
	snprintf(e->base, sizeof(e->base), "%s/base.img", e->dir);
	e->model = calloc(1, DISK);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	/* CELLVM_KEEP=1 keeps the images (e.g. for qemu-img check). */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (!getenv("CELLVM_KEEP"))
		assert_int_equal(system(cmd), 0);
	free(e->model);
	free(e);
	return 0;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void check_clean(struct image *img)
{
	struct qcow2_check_result r;

	assert_int_equal(qcow2_check(img, NULL, NULL, &r), 0);
	if (r.errors || r.leaks)
		fail_msg("check: %llu errors, %llu leaks", (unsigned long long)r.errors, (unsigned long long)r.leaks);
}

static void read_all_equal(struct image *img, const uint8_t *model)
{
	uint8_t *buf = malloc(DISK);
	struct iovec v = { .iov_base = buf, .iov_len = DISK };

	assert_int_equal(img->ops->preadv(img, 0, &v, 1), 0);
	for (size_t i = 0; i < DISK; i++)
		if (buf[i] != model[i])
			fail_msg("byte 0x%zx is 0x%02x, want 0x%02x", i, buf[i], model[i]);
	free(buf);
}

/* A raw base with a pattern in every sector. */
static void make_base(struct env *e)
{
	struct image *b;
	struct iovec v = { .iov_base = e->model, .iov_len = DISK };

	for (size_t i = 0; i < DISK; i++)
		e->model[i] = (uint8_t)(i * 7 + (i >> 9));
	assert_int_equal(raw_create(e->base, DISK, false), 0);
	assert_int_equal(image_open(e->base, BLOCK_FORMAT_RAW, IMAGE_RW, &b), 0);
	assert_int_equal(b->ops->pwritev(b, 0, &v, 1), 0);
	assert_int_equal(image_close(b), 0);
}

struct worker {
	struct image *img;
	uint8_t *model;
	uint64_t lo, hi, seed;
	unsigned ops;
	int rc;
};

/* Random operations inside [lo, hi); the model follows. */
static void *work(void *opaque)
{
	struct worker *w = opaque;
	uint8_t *buf = malloc(256 << 10);

	for (unsigned i = 0; i < w->ops && !w->rc; i++) {
		uint64_t r = rnd(&w->seed), len = 1 + rnd(&w->seed) % (r & 1 ? 4096 : 200000), off;
		struct iovec v[3];
		unsigned op = (unsigned)(r >> 8) % 10;

		if (r & 2) /* mostly sector-aligned, like a guest */
			len = (len + 511) & ~511ULL;
		if (len > w->hi - w->lo)
			len = w->hi - w->lo;
		off = w->lo + rnd(&w->seed) % (w->hi - w->lo - len + 1);
		if (r & 2)
			off &= ~511ULL;
		if (op < 6) {
			for (uint64_t k = 0; k < len; k++)
				buf[k] = (uint8_t)(r + k);
			/* Split the buffer in pieces, like a guest's scatter list. */
			v[0] = (struct iovec){ buf, len / 3 };
			v[1] = (struct iovec){ buf + len / 3, len / 3 };
			v[2] = (struct iovec){ buf + 2 * (len / 3), len - 2 * (len / 3) };
			w->rc = w->img->ops->pwritev(w->img, off, v, 3);
			memcpy(w->model + off, buf, len);
		} else if (op < 8) {
			w->rc = w->img->ops->write_zeroes(w->img, off, len, op == 7);
			memset(w->model + off, 0, len);
		} else if (op == 8) {
			/* Discard: the content is undefined afterwards; take what it reads. */
			v[0] = (struct iovec){ w->model + off, len };
			w->rc = w->img->ops->discard(w->img, off, len);
			if (!w->rc)
				w->rc = w->img->ops->preadv(w->img, off, v, 1);
		} else {
			v[0] = (struct iovec){ buf, len };
			w->rc = w->img->ops->preadv(w->img, off, v, 1);
			if (!w->rc && memcmp(buf, w->model + off, len))
				w->rc = -1000;
		}
	}
	free(buf);
	return NULL;
}

static void run_random(struct env *e, unsigned bits, bool backing, unsigned threads)
{
	struct qcow2_create_opts o = { .size = DISK, .cluster_bits = bits, .backing = backing ? "base.img" : NULL,
				       .backing_fmt = backing ? "raw" : NULL };
	struct worker w[4];
	pthread_t t[4];
	struct image *img;

	unlink(e->path);
	unlink(e->base);
	memset(e->model, 0, DISK);
	if (backing)
		make_base(e);
	assert_int_equal(qcow2_create(e->path, &o), 0);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, IMAGE_RW, &img), 0);
	for (unsigned i = 0; i < threads; i++) {
		w[i] = (struct worker){ .img = img, .model = e->model, .lo = DISK / threads * i,
					.hi = DISK / threads * (i + 1), .seed = 0x9e3779b97f4a7c15ULL * (i + bits + 1),
					.ops = 600 };
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		if (w[i].rc)
			fail_msg("worker %u failed: %d", i, w[i].rc);
	}
	assert_int_equal(img->ops->flush(img), 0);
	read_all_equal(img, e->model);
	assert_int_equal(image_close(img), 0);
	/* Everything is there after reopening, and the metadata adds up. */
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, 0, &img), 0);
	read_all_equal(img, e->model);
	check_clean(img);
	assert_int_equal(image_close(img), 0);
}

static void test_random_64k(void **state)
{
	run_random(*state, 16, false, 1);
	run_random(*state, 16, true, 1);
}

static void test_random_small_clusters(void **state)
{
	/* 512-byte clusters: the refcount table (64 entries) must grow. */
	run_random(*state, 9, false, 1);
	run_random(*state, 12, true, 1);
}

static void test_random_threads(void **state)
{
	run_random(*state, 16, false, 4);
	run_random(*state, 12, true, 4);
	run_random(*state, 9, true, 2);
}

static void test_grow(void **state)
{
	struct env *e = *state;
	struct qcow2_create_opts o = { .size = 1 << 20, .cluster_bits = 9 };
	uint8_t buf[512];
	struct iovec v = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct image *img;

	unlink(e->path);
	assert_int_equal(qcow2_create(e->path, &o), 0);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, IMAGE_RW, &img), 0);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(img->ops->pwritev(img, 4096, &v, 1), 0);
	/* 1 MiB of 512-byte clusters needs 32 L1 entries; 64 MiB needs 2048. */
	assert_int_equal(img->ops->grow(img, 64 << 20), 0);
	assert_int_equal(img->ops->pwritev(img, 60 << 20, &v, 1), 0);
	assert_int_equal(image_close(img), 0);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, 0, &img), 0);
	assert_int_equal((int)(img->size >> 20), 64);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(img->ops->preadv(img, 60 << 20, &v, 1), 0);
	assert_int_equal(buf[0], 0x5a);
	assert_int_equal(img->ops->preadv(img, 4096, &v, 1), 0);
	assert_int_equal(buf[511], 0x5a);
	check_clean(img);
	assert_int_equal(image_close(img), 0);
}

static void test_preallocate(void **state)
{
	struct env *e = *state;
	struct qcow2_create_opts o = { .size = DISK };
	struct image *img;
	struct extent x;

	unlink(e->path);
	assert_int_equal(qcow2_create(e->path, &o), 0);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, IMAGE_RW, &img), 0);
	assert_int_equal(qcow2_preallocate(img), 0);
	memset(e->model, 0, DISK);
	read_all_equal(img, e->model);
	/* Every cluster is data now: writes go in place. */
	assert_true(img->ops->map(img, DISK / 2, 4096, true, &x));
	assert_int_equal(x.kind, EXTENT_DATA);
	image_io_end(x.owner);
	check_clean(img);
	assert_int_equal(image_close(img), 0);
}

/* a -> b -> a must be refused, naming the loop. */
/* A hostile image whose refcounts call cluster 0 (the header) free: the
 * allocator may place a new table there, which the metadata cache must
 * refuse (found by tests/fuzz/fuzz_qcow2.c; it used to hand back an empty
 * slot without data). The write fails, nothing crashes. */
static void test_table_at_header(void **state)
{
	struct env *e = *state;
	struct qcow2_create_opts o = { .size = 1 << 20, .cluster_bits = 9 };
	uint8_t buf[512], be[8];
	struct iovec v = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct image *img;
	uint64_t rt, rb;
	int fd;

	unlink(e->path);
	assert_int_equal(qcow2_create(e->path, &o), 0);
	fd = open(e->path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, be, 8, 48), 8); /* refcount_table_offset */
	rt = be64toh(*(uint64_t *)be);
	assert_int_equal(pread(fd, be, 8, (off_t)rt), 8);
	rb = be64toh(*(uint64_t *)be);
	assert_int_equal(pwrite(fd, "\0\0", 2, (off_t)rb), 2); /* cluster 0: refcount 0 */
	close(fd);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_QCOW2, IMAGE_RW, &img), 0);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(img->ops->pwritev(img, 0, &v, 1), -EIO);
	image_close(img);
}

static void test_backing_loop(void **state)
{
	struct env *e = *state;
	struct qcow2_create_opts o = { .size = DISK, .backing = "b.qcow2" };
	char a[160], b[160];
	struct image *img;

	snprintf(a, sizeof(a), "%s/a.qcow2", e->dir);
	snprintf(b, sizeof(b), "%s/b.qcow2", e->dir);
	assert_int_equal(qcow2_create(a, &o), 0);
	o.backing = "a.qcow2";
	assert_int_equal(qcow2_create(b, &o), 0);
	assert_int_equal(image_open(a, BLOCK_FORMAT_AUTO, 0, &img), CV_EINPUT);
	/* Itself as backing file. */
	unlink(a);
	assert_int_equal(qcow2_create(a, &o), 0);
	assert_int_equal(image_open(a, BLOCK_FORMAT_AUTO, 0, &img), CV_EINPUT);
}

/* Each layer of a chain of four shows its own writes over the lower ones. */
static void test_chain(void **state)
{
	struct env *e = *state;
	char path[4][160];
	struct image *img;
	uint8_t buf[3 * 65536];
	struct iovec v = { .iov_base = buf, .iov_len = 65536 };

	for (int i = 0; i < 4; i++) {
		struct qcow2_create_opts o = { .size = DISK };
		char name[16];

		snprintf(path[i], sizeof(path[i]), "%s/l%d.qcow2", e->dir, i);
		snprintf(name, sizeof(name), "l%d.qcow2", i - 1);
		o.backing = i ? name : NULL;
		assert_int_equal(qcow2_create(path[i], &o), 0);
		assert_int_equal(image_open(path[i], BLOCK_FORMAT_AUTO, IMAGE_RW, &img), 0);
		memset(buf, 0x10 + i, 65536);
		assert_int_equal(img->ops->pwritev(img, (uint64_t)i * 65536, &v, 1), 0);
		assert_int_equal(image_close(img), 0);
	}
	assert_int_equal(image_open(path[3], BLOCK_FORMAT_AUTO, 0, &img), 0);
	v.iov_len = sizeof(buf);
	assert_int_equal(img->ops->preadv(img, 65536, &v, 1), 0);
	assert_int_equal(buf[0], 0x11);
	assert_int_equal(buf[65536], 0x12);
	assert_int_equal(buf[131072], 0x13);
	assert_int_equal(image_close(img), 0);
}

/* The image is locked while open: a second writer is refused. */
static void test_lock(void **state)
{
	struct env *e = *state;
	struct qcow2_create_opts o = { .size = DISK };
	struct image *a, *b;

	unlink(e->path);
	assert_int_equal(qcow2_create(e->path, &o), 0);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, IMAGE_RW, &a), 0);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, IMAGE_RW, &b), CV_EINPUT);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, 0, &b), CV_EINPUT);
	assert_int_equal(image_close(a), 0);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, 0, &a), 0);
	assert_int_equal(image_open(e->path, BLOCK_FORMAT_AUTO, 0, &b), 0);
	image_close(a);
	image_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_random_64k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_small_clusters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preallocate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backing_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_at_header, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
