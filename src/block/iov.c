#include "block/iov.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* preadv/pwritev take at most IOV_MAX entries per call. */
#define IOV_BATCH 1024

uint64_t iov_total(const struct iovec *iov, unsigned n)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len, struct iovec *dst,
		   unsigned max)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len, take;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		if (k == max)
			break;
		take = l - skip < len ? l - skip : len;
		dst[k++] = (struct iovec){ .iov_base = (uint8_t *)iov[i].iov_base + skip, .iov_len = take };
		len -= take;
		skip = 0;
	}
	return k;
}

/* Calls fn on each piece of [skip, skip+len) of iov. */
static void iov_walk(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
		     void (*fn)(void *piece, uint64_t at, uint64_t plen, void *ctx), void *ctx)
{
	uint64_t at = 0;

	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len, take;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		take = l - skip < len ? l - skip : len;
		fn((uint8_t *)iov[i].iov_base + skip, at, take, ctx);
		at += take;
		len -= take;
		skip = 0;
	}
}

static void fill_piece(void *piece, uint64_t at, uint64_t plen, void *ctx)
{
	(void)at;
	memset(piece, *(int *)ctx, plen);
}

static void out_piece(void *piece, uint64_t at, uint64_t plen, void *ctx)
{
	memcpy((uint8_t *)ctx + at, piece, plen);
}

static void in_piece(void *piece, uint64_t at, uint64_t plen, void *ctx)
{
	memcpy(piece, (const uint8_t *)ctx + at, plen);
}

void iov_fill(const struct iovec *iov, unsigned n, uint64_t skip, int c, uint64_t len)
{
	iov_walk(iov, n, skip, len, fill_piece, &c);
}

void iov_copy_out(const struct iovec *iov, unsigned n, uint64_t skip, void *buf, uint64_t len)
{
	iov_walk(iov, n, skip, len, out_piece, buf);
}

void iov_copy_in(const struct iovec *iov, unsigned n, uint64_t skip, const void *buf, uint64_t len)
{
	iov_walk(iov, n, skip, len, in_piece, (void *)buf);
}

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
