/* Scatter-gather helpers for the block layer: slicing a request's iovec
 * into the pieces that map to different places, and filling or copying
 * ranges of it. */
#ifndef CELLVM_BLOCK_IOV_H
#define CELLVM_BLOCK_IOV_H

#include <stdint.h>
#include <sys/uio.h>

/* Room for any guest request's pieces (virtio-blk allows 126 segments). */
#define IOV_PARTS 256

uint64_t iov_total(const struct iovec *iov, unsigned n);

/* Points dst (room for `max` entries) at bytes [skip, skip+len) of iov, or
 * at as much of them as `max` entries hold; returns the entries used. */
unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len, struct iovec *dst,
		   unsigned max);

void iov_fill(const struct iovec *iov, unsigned n, uint64_t skip, int c, uint64_t len);
void iov_copy_out(const struct iovec *iov, unsigned n, uint64_t skip, void *buf, uint64_t len);
void iov_copy_in(const struct iovec *iov, unsigned n, uint64_t skip, const void *buf, uint64_t len);

/* preadv/pwritev until everything is transferred. Reading past the end of
 * the file yields zeroes (qcow2 images may end inside a cluster). Returns
 * 0 or -errno. */
int iov_pread_full(int fd, const struct iovec *iov, unsigned n, uint64_t off);
int iov_pwrite_full(int fd, const struct iovec *iov, unsigned n, uint64_t off);
int pread_full(int fd, void *buf, uint64_t len, uint64_t off);
int pwrite_full(int fd, const void *buf, uint64_t len, uint64_t off);

#endif
