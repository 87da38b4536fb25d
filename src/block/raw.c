#include "block/raw.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/iov.h"
#include "util/err.h"

static int raw_preadv(struct image *img, uint64_t off, const struct iovec *iov, unsigned n)
{
	return iov_pread_full(img->fd, iov, n, off);
}

static int raw_pwritev(struct image *img, uint64_t off, const struct iovec *iov, unsigned n)
{
	return iov_pwrite_full(img->fd, iov, n, off);
}

static int raw_flush(struct image *img)
{
	return fdatasync(img->fd) < 0 ? -errno : 0;
}

static int raw_discard(struct image *img, uint64_t off, uint64_t len)
{
	if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return errno == EOPNOTSUPP ? 0 : -errno; /* discard is advisory */
	return 0;
}

static int raw_write_zeroes(struct image *img, uint64_t off, uint64_t len, bool unmap)
{
	int mode = (unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
	static const uint8_t zero[65536];

	if (fallocate(img->fd, mode, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	/* A file system without either: write them. */
	while (len) {
		uint64_t k = len < sizeof(zero) ? len : sizeof(zero);
		int rc = pwrite_full(img->fd, zero, k, off);

		if (rc)
			return rc;
		off += k;
		len -= k;
	}
	return 0;
}

static bool raw_map(struct image *img, uint64_t off, uint64_t len, bool write, struct extent *e)
{
	(void)write;
	*e = (struct extent){ .kind = EXTENT_DATA, .fd = img->fd, .off = off, .len = len };
	return true;
}

/* Holes read as zeroes; SEEK_DATA finds them without reading. */
static int raw_status(struct image *img, uint64_t off, uint64_t len, struct extent *e)
{
	off_t data = lseek(img->fd, (off_t)off, SEEK_DATA), hole;

	*e = (struct extent){ .kind = EXTENT_DATA, .off = off, .len = len };
	if (data < 0) {
		/* ENXIO: no data after off; anything else: assume data. */
		if (errno == ENXIO)
			e->kind = EXTENT_ZERO;
		return 0;
	}
	if ((uint64_t)data > off) {
		e->kind = EXTENT_ZERO;
		e->len = (uint64_t)data - off < len ? (uint64_t)data - off : len;
		return 0;
	}
	hole = lseek(img->fd, (off_t)off, SEEK_HOLE);
	if (hole > (off_t)off && (uint64_t)hole - off < len)
		e->len = (uint64_t)hole - off;
	return 0;
}

static int raw_grow(struct image *img, uint64_t size)
{
	if (ftruncate(img->fd, (off_t)size) < 0)
		return -errno;
	img->size = size;
	return 0;
}

static int raw_close(struct image *img)
{
	image_fini(img);
	free(img);
	return 0;
}

static const struct image_ops raw_ops = {
	.name = "raw",
	.preadv = raw_preadv,
	.pwritev = raw_pwritev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.map = raw_map,
	.status = raw_status,
	.grow = raw_grow,
	.close = raw_close,
	.flat = true,
};

int raw_open(int fd, const char *path, bool readonly, struct image **out)
{
	struct image *img = calloc(1, sizeof(*img));
	struct stat st;
	uint64_t size;

	if (!img || fstat(fd, &st) < 0) {
		cv_err("%s: %s", path, img ? strerror(errno) : "out of memory");
		free(img);
		close(fd);
		return CV_EFAIL;
	}
	size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0) {
		cv_err("cannot size disk '%s': %s", path, strerror(errno));
		free(img);
		close(fd);
		return CV_EINPUT;
	}
	if (image_init(img, &raw_ops, fd, path, readonly)) {
		free(img);
		return CV_EFAIL;
	}
	img->size = size;
	*out = img;
	return 0;
}

int raw_create(const char *path, uint64_t size, bool prealloc)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644), rc = 0;

	if (fd < 0) {
		cv_err("cannot create '%s': %s", path, strerror(errno));
		return CV_EFAIL;
	}
	if (ftruncate(fd, (off_t)size) < 0)
		rc = -errno;
	else if (prealloc && size && fallocate(fd, 0, 0, (off_t)size) < 0)
		rc = -errno;
	else if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc) {
		cv_err("cannot create '%s' (%llu bytes): %s", path, (unsigned long long)size, strerror(-rc));
		unlink(path);
		return CV_EFAIL;
	}
	return 0;
}
