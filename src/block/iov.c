#include "block/iov.h"

#include <errno.h>
#include <unistd.h>

/* preadv/pwritev take at most IOV_MAX entries per call. */
#define IOV_BATCH 1024

static int rw_full(int fd, const struct iovec *iov, unsigned n, uint64_t off, int write)
{
	uint64_t total = iov_total(iov, n), done = 0;
	struct iovec cur[IOV_BATCH];

	while (done < total) {
		unsigned k = iov_slice(iov, n, done, total - done, cur, IOV_BATCH);
		ssize_t r = write ? pwritev(fd, cur, (int)k, (off_t)(off + done))
				  : preadv(fd, cur, (int)k, (off_t)(off + done));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) {
			if (write)
				return -EIO;
			iov_fill(iov, n, done, 0, total - done);
			return 0;
		}
		done += (uint64_t)r;
	}
	return 0;
}

int iov_pread_full(int fd, const struct iovec *iov, unsigned n, uint64_t off)
{
	return rw_full(fd, iov, n, off, 0);
}

int iov_pwrite_full(int fd, const struct iovec *iov, unsigned n, uint64_t off)
{
	return rw_full(fd, iov, n, off, 1);
}

int pread_full(int fd, void *buf, uint64_t len, uint64_t off)
{
	struct iovec v = { .iov_base = buf, .iov_len = len };

	return rw_full(fd, &v, 1, off, 0);
}

int pwrite_full(int fd, const void *buf, uint64_t len, uint64_t off)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };

	return rw_full(fd, &v, 1, off, 1);
}
