#include "util/iov.h"

#include <stdbool.h>
#include <string.h>

uint64_t iov_total(const struct iovec *iov, unsigned n)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Calls fn on each piece of [skip, skip+len) of iov, `at` bytes into the
 * range, until fn returns false; returns the bytes of the pieces taken. */
static uint64_t iov_walk(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
			 bool (*fn)(void *piece, uint64_t at, uint64_t plen, void *ctx), void *ctx)
{
	uint64_t at = 0;

	for (unsigned i = 0; i < n && at < len; i++) {
		uint64_t l = iov[i].iov_len, take;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		take = l - skip < len - at ? l - skip : len - at;
		if (!fn((uint8_t *)iov[i].iov_base + skip, at, take, ctx))
			break;
		at += take;
		skip = 0;
	}
	return at;
}

struct slice_ctx {
	struct iovec *dst;
	unsigned k, max;
};

static bool slice_piece(void *piece, uint64_t at, uint64_t plen, void *ctx)
{
	struct slice_ctx *s = ctx;

	(void)at;
	if (s->k == s->max)
		return false;
	s->dst[s->k++] = (struct iovec){ .iov_base = piece, .iov_len = plen };
	return true;
}

static bool fill_piece(void *piece, uint64_t at, uint64_t plen, void *ctx)
{
	(void)at;
	memset(piece, *(int *)ctx, plen);
	return true;
}

static bool to_buf_piece(void *piece, uint64_t at, uint64_t plen, void *ctx)
{
	memcpy((uint8_t *)ctx + at, piece, plen);
	return true;
}

static bool from_buf_piece(void *piece, uint64_t at, uint64_t plen, void *ctx)
{
	memcpy(piece, (const uint8_t *)ctx + at, plen);
	return true;
}

unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len, struct iovec *dst,
		   unsigned max)
{
	struct slice_ctx s = { .dst = dst, .k = 0, .max = max };

	iov_walk(iov, n, skip, len, slice_piece, &s);
	return s.k;
}

void iov_fill(const struct iovec *iov, unsigned n, uint64_t skip, int c, uint64_t len)
{
	iov_walk(iov, n, skip, len, fill_piece, &c);
}

uint64_t iov_to_buf(const struct iovec *iov, unsigned n, uint64_t skip, void *buf, uint64_t len)
{
	return iov_walk(iov, n, skip, len, to_buf_piece, buf);
}

uint64_t iov_from_buf(const struct iovec *iov, unsigned n, uint64_t skip, const void *buf, uint64_t len)
{
	return iov_walk(iov, n, skip, len, from_buf_piece, (void *)(uintptr_t)buf);
}
