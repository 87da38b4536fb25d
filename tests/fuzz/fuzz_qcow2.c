/* libFuzzer target: opening a hostile qcow2 image (src/block/qcow2*.c) and
 * doing I/O on it through the image ops. Input: a count of operations
 * (first byte, at most 16), that many 4-byte operations (kind, 512-byte
 * sector as u16, length in sectors - 1), then the image file, written to
 * the fuzzer's own directory. Beside it lies base.raw, so a relative
 * backing name can open a real backing file; names with a '/' (absolute,
 * or reaching out of the directory) are opened without the backing chain,
 * as nothing outside the directory may be touched (a FIFO or a device file
 * named by a hostile image would block or worse). An opened image also
 * goes through `cellvm disk check`'s checker, read-only. */
#include <fcntl.h>

#include "block/image.h"
#include "block/qcow2.h"
#include "fuzz.h"

#define MAX_OPS 16
#define BUF (256 * 512)

static char img_path[128];

static void no_report(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static void setup(void)
{
	char base[128];
	int fd;

	snprintf(img_path, sizeof(img_path), "%s/img", fuzz_dir("qcow2"));
	snprintf(base, sizeof(base), "%s/base.raw", fuzz_dir("qcow2"));
	fd = open(base, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 64 * 1024) < 0 || pwrite(fd, "base", 4, 0) != 4)
		abort();
	close(fd);
}

static bool plain_backing(void)
{
	char name[4096];

	return !image_backing_name(img_path, name, sizeof(name)) && !strchr(name, '/');
}

static void run_ops(struct image *img, const uint8_t *ops, unsigned n, uint8_t *buf)
{
	for (unsigned i = 0; i < n; i++, ops += 4) {
		uint64_t off = ((uint64_t)ops[1] | (uint64_t)ops[2] << 8) * 512, len = ((uint64_t)ops[3] + 1) * 512;
		struct iovec iov = { buf, len };
		struct extent e;

		if (off >= img->size)
			off %= img->size;
		if (len > img->size - off)
			len = iov.iov_len = img->size - off;
		switch (ops[0] % 7) {
		case 0:
			img->ops->preadv(img, off, &iov, 1);
			break;
		case 1:
			memset(buf, ops[0], len);
			img->ops->pwritev(img, off, &iov, 1);
			break;
		case 2:
			img->ops->discard(img, off, len);
			break;
		case 3:
			img->ops->write_zeroes(img, off, len, ops[0] & 0x80);
			break;
		case 4:
			img->ops->flush(img);
			break;
		case 5:
			image_chain_status(img, off, len, &e);
			break;
		default:
			if (img->ops->map(img, off, len, ops[0] & 0x80, &e) && e.owner)
				image_io_end(e.owner);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *buf;
	struct qcow2_check_result res;
	struct image *img;
	unsigned nops;
	int fd;

	if (!buf) {
		setup();
		buf = malloc(BUF);
	}
	if (!size)
		return 0;
	nops = data[0] % (MAX_OPS + 1);
	if (size < 1 + 4 * nops)
		return 0;
	fd = open(img_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data + 1 + 4 * nops, size - 1 - 4 * nops) < 0)
		abort();
	close(fd);
	if (image_open(img_path, BLOCK_FORMAT_QCOW2, IMAGE_RW | (plain_backing() ? 0 : IMAGE_NO_BACKING), &img) == 0) {
		if (img->size)
			run_ops(img, data + 1, nops, buf);
		image_close(img);
	}
	if (image_open(img_path, BLOCK_FORMAT_QCOW2, IMAGE_NO_BACKING, &img) == 0) {
		qcow2_check(img, no_report, NULL, &res);
		image_close(img);
	}
	return 0;
}
