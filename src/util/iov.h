/* Scatter-gather lists: their total length, slices of them, and filling
 * or copying byte ranges of them. Shared by the virtio devices and the
 * block layer; knows nothing of either. */
#ifndef CELLVM_UTIL_IOV_H
#define CELLVM_UTIL_IOV_H

#include <stdint.h>
#include <sys/uio.h>

uint64_t iov_total(const struct iovec *iov, unsigned n);

/* Points dst (room for `max` entries) at bytes [skip, skip+len) of iov, or
 * at as much of them as `max` entries hold; returns the entries used. */
unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len, struct iovec *dst,
		   unsigned max);

/* Sets bytes [skip, skip+len) of iov (as many as it has) to c. */
void iov_fill(const struct iovec *iov, unsigned n, uint64_t skip, int c, uint64_t len);

/* Copies bytes [skip, skip+len) of iov to buf, or buf to them; returns the
 * bytes copied (fewer if iov ends first). */
uint64_t iov_to_buf(const struct iovec *iov, unsigned n, uint64_t skip, void *buf, uint64_t len);
uint64_t iov_from_buf(const struct iovec *iov, unsigned n, uint64_t skip, const void *buf, uint64_t len);

#endif
