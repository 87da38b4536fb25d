/* NBD disks without a server: which disk names are URIs, and the errors
 * of opening one that cannot be served. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "block/image.h"
#include "block/nbd.h"
#include "util/err.h"

static void test_uris(void **state)
{
	static const char *const uris[] = {
		"nbd://host/export", "nbd://127.0.0.1:10809/x", "nbds://host", "nbd+unix:///e?socket=/run/s",
		"nbds+unix:///?socket=s", "nbd+vsock:///", "nbds+vsock://2:10809/e", "nbd:",
	};
	static const char *const files[] = {
		"disk.img", "/var/lib/nbd.img", "nbd", "nbdx://host", "NBD://host", "./nbd://host",
		"nbd+tcp://host", "http://host/x", "", ":nbd", "nbds+unix",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++)
		if (!nbd_image_is_uri(uris[i]))
			fail_msg("'%s' is not taken for an NBD URI", uris[i]);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (nbd_image_is_uri(files[i]))
			fail_msg("'%s' is taken for an NBD URI", files[i]);
}

/* Bad input, not a runtime failure: `cellvm run` exits 2. */
static void test_unreachable_is_input_error(void **state)
{
	struct image *img = NULL;

	(void)state;
	assert_int_equal(image_open("nbd+unix:///x?socket=/nonexistent/nbd.sock", BLOCK_FORMAT_AUTO, IMAGE_RW, &img),
			 CV_EINPUT);
	assert_null(img);
	assert_int_equal(image_open("nbd://[", BLOCK_FORMAT_RAW, 0, &img), CV_EINPUT);
	assert_int_equal(image_open("nbd://127.0.0.1:1/x", BLOCK_FORMAT_QCOW2, 0, &img), CV_EINPUT);
	assert_null(img);
}

static void test_files_are_not_exports(void **state)
{
	char path[] = "/tmp/cellvm-test-nbd-XXXXXX";
	int fd = mkstemp(path);
	struct image *img;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(image_open(path, BLOCK_FORMAT_AUTO, 0, &img), 0);
	assert_null(nbd_image_info(img));
	assert_true(img->fd >= 0);
	image_close(img);
	unlink(path);
	assert_null(nbd_image_info(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uris),
		cmocka_unit_test(test_unreachable_is_input_error),
		cmocka_unit_test(test_files_are_not_exports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
