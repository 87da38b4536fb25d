#include "manager/copy.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/err.h"

int for_each_extent(int fd, long long size, int (*fn)(void *ctx, long long off, long long len), void *ctx)
{
	long long off = 0;

	while (off < size) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;
		int rc;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (data < 0) /* no SEEK_DATA here: all of it is data */
			return fn(ctx, off, size - off);
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > size)
			hole = size;
		if ((rc = fn(ctx, data, hole - data)))
			return rc;
		off = hole;
	}
	return 0;
}

struct copy {
	int in, out;
	const char *src;
};

static int copy_extent(void *ctx, long long off, long long len)
{
	struct copy *c = ctx;
	char buf[1 << 16];

	while (len > 0) {
		ssize_t n = pread(c->in, buf, len < (long long)sizeof(buf) ? (size_t)len : sizeof(buf), off), w = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			cv_err("cannot read '%s': %s", c->src, n < 0 ? strerror(errno) : "file shrank while copying");
			return CV_EFAIL;
		}
		while (w < n) {
			ssize_t m = pwrite(c->out, buf + w, (size_t)(n - w), off + w);

			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0) {
				cv_err("cannot write a copy of '%s': %s", c->src, strerror(errno));
				return CV_EFAIL;
			}
			w += m;
		}
		off += n;
		len -= n;
	}
	return 0;
}

int copy_sparse(const char *src, const char *dst)
{
	struct copy c = { .src = src };
	struct stat st;
	int rc;

	c.in = open(src, O_RDONLY | O_CLOEXEC);
	if (c.in < 0 || fstat(c.in, &st) < 0 || !S_ISREG(st.st_mode)) {
		cv_err("cannot copy '%s': %s", src, c.in < 0 ? strerror(errno) : "not a regular file");
		if (c.in >= 0)
			close(c.in);
		return CV_EINPUT;
	}
	c.out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (c.out < 0) {
		cv_err("cannot create '%s': %s", dst, strerror(errno));
		close(c.in);
		return CV_EFAIL;
	}
	rc = for_each_extent(c.in, st.st_size, copy_extent, &c);
	if (!rc && (ftruncate(c.out, st.st_size) < 0 || fsync(c.out) < 0)) {
		cv_err("cannot finish the copy of '%s': %s", src, strerror(errno));
		rc = CV_EFAIL;
	}
	close(c.in);
	close(c.out);
	return rc;
}
