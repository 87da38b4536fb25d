/* Disk layers: freezing an image under a second name with an empty delta
 * in its place (what a managed snapshot does to each qcow2 disk), the
 * lock-free look at a chain that a running VM holds, and layer names. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/image.h"
#include "block/layer.h"
#include "block/qcow2.h"
#include "util/err.h"

#define DISK (4u << 20)

struct env {
	char dir[64], img[96], s1[128], s2[128];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	strcpy(e->dir, "/tmp/test_block_layer-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->img, sizeof(e->img), "%s/disk.img", e->dir);
	snprintf(e->s1, sizeof(e->s1), "%s.s1", e->img);
	snprintf(e->s2, sizeof(e->s2), "%s.s2", e->img);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	return 0;
}

static void write_at(const char *path, uint64_t off, const char *text)
{
	struct image *img;
	struct iovec iov = { (void *)text, strlen(text) };

	assert_int_equal(image_open(path, BLOCK_FORMAT_AUTO, IMAGE_RW, &img), 0);
	assert_int_equal(img->ops->pwritev(img, off, &iov, 1), 0);
	assert_int_equal(image_close(img), 0);
}

static void expect_at(const char *path, uint64_t off, const char *text)
{
	char buf[64] = "";
	struct image *img;
	struct iovec iov = { buf, strlen(text) };

	assert_int_equal(image_open(path, BLOCK_FORMAT_AUTO, 0, &img), 0);
	assert_int_equal(image_read_clipped(img, off, &iov, 1), 0);
	assert_memory_equal(buf, text, strlen(text));
	image_close(img);
}

static ino_t inode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

/* Whether the top layer of path holds nothing of its own. */
static bool empty_delta(const char *path)
{
	struct image *img;
	struct extent x;
	bool empty = true;

	assert_int_equal(image_open(path, BLOCK_FORMAT_AUTO, IMAGE_NO_BACKING, &img), 0);
	for (uint64_t off = 0; empty && off < img->size; off += x.len)
		empty = !img->ops->status(img, off, img->size - off, &x) && x.kind == EXTENT_BACKING && x.len;
	image_close(img);
	return empty;
}

static void test_freeze(void **state)
{
	struct env *e = *state;
	char name[256];
	ino_t before;

	assert_int_equal(qcow2_create(e->img, &(struct qcow2_create_opts){ .size = DISK }), 0);
	write_at(e->img, 12345, "frozen-data");
	before = inode(e->img);
	assert_int_equal(layer_freeze(e->img, e->s1, BLOCK_FORMAT_QCOW2, DISK), 0);
	/* The old file is the layer; IMG is a new, empty delta reading the same. */
	assert_int_equal(inode(e->s1), before);
	assert_int_not_equal(inode(e->img), before);
	assert_true(empty_delta(e->img));
	assert_int_equal(image_backing_name(e->img, name, sizeof(name)), 0);
	assert_string_equal(name, "disk.img.s1");
	expect_at(e->img, 12345, "frozen-data");
	/* Writes go to the delta; the layer keeps its content. */
	write_at(e->img, 12345, "later-write");
	assert_false(empty_delta(e->img));
	expect_at(e->s1, 12345, "frozen-data");
}

static void test_freeze_refuses_existing_layer(void **state)
{
	struct env *e = *state;
	ino_t before;

	assert_int_equal(qcow2_create(e->img, &(struct qcow2_create_opts){ .size = DISK }), 0);
	assert_int_equal(qcow2_create(e->s1, &(struct qcow2_create_opts){ .size = DISK }), 0);
	before = inode(e->img);
	assert_int_equal(layer_freeze(e->img, e->s1, BLOCK_FORMAT_QCOW2, DISK), CV_EINPUT);
	assert_int_equal(inode(e->img), before);
	assert_int_equal(access(e->s1, F_OK), 0);
}

struct visits {
	char names[4][256];
	unsigned n;
};

static int visit(void *ctx, const char *path, const char *name)
{
	struct visits *v = ctx;

	assert_int_equal(access(path, F_OK), 0);
	snprintf(v->names[v->n++], sizeof(v->names[0]), "%s", name);
	return v->n == 4 ? 7 : 0;
}

static void test_walk_chain_of_open_image(void **state)
{
	struct env *e = *state;
	struct visits v = { 0 };
	struct image *held;
	char name[256];

	assert_int_equal(qcow2_create(e->img, &(struct qcow2_create_opts){ .size = DISK }), 0);
	assert_int_equal(layer_freeze(e->img, e->s1, BLOCK_FORMAT_QCOW2, DISK), 0);
	assert_int_equal(layer_freeze(e->img, e->s2, BLOCK_FORMAT_QCOW2, DISK), 0);
	/* As a running VM holds it: locked, writable. */
	assert_int_equal(image_open(e->img, BLOCK_FORMAT_AUTO, IMAGE_RW, &held), 0);
	assert_int_equal(image_walk_backing(e->img, visit, &v), 0);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.names[0], "disk.img.s2");
	assert_string_equal(v.names[1], "disk.img.s1");
	assert_int_equal(image_backing_name(e->s1, name, sizeof(name)), 0);
	assert_string_equal(name, "");
	image_close(held);
}

static void test_walk_stops_at_callback(void **state)
{
	struct env *e = *state;
	struct visits v = { .n = 3 };

	assert_int_equal(qcow2_create(e->img, &(struct qcow2_create_opts){ .size = DISK }), 0);
	assert_int_equal(layer_freeze(e->img, e->s1, BLOCK_FORMAT_QCOW2, DISK), 0);
	assert_int_equal(image_walk_backing(e->img, visit, &v), 7);
	/* A raw file has no chain; a missing one is an error. */
	assert_int_equal(image_walk_backing("/dev/null", visit, &v), 0);
	assert_int_equal(image_walk_backing("/nonexistent/disk", visit, &v), CV_EINPUT);
}

static void test_layer_names(void **state)
{
	(void)state;
	assert_true(layer_name_ok("s1"));
	assert_true(layer_name_ok("before-upgrade_2.0"));
	assert_false(layer_name_ok(""));
	assert_false(layer_name_ok(".hidden"));
	assert_false(layer_name_ok("a/b"));
	assert_false(layer_name_ok("..."));
	assert_false(layer_name_ok("sp ace"));
	assert_false(layer_name_ok("x123456789012345678901234567890123456789012345678901234567890abcd"));
	assert_true(layer_name_ok("x12345678901234567890123456789012345678901234567890123456789abcd"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_freeze, setup, teardown),
		cmocka_unit_test_setup_teardown(test_freeze_refuses_existing_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk_chain_of_open_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk_stops_at_callback, setup, teardown),
		cmocka_unit_test(test_layer_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
