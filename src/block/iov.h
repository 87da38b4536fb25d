/* Scatter-gather I/O for the block layer: whole-iovec positional reads and
 * writes. Slicing, filling and copying iovecs is in util/iov.h. */
#ifndef CELLVM_BLOCK_IOV_H
#define CELLVM_BLOCK_IOV_H

#include <stdint.h>
#include <sys/uio.h>

#include "util/iov.h"

/* Room for any guest request's pieces (virtio-blk allows 126 segments). */
#define IOV_PARTS 256

/* preadv/pwritev until everything is transferred. Reading past the end of
 * the file yields zeroes (qcow2 images may end inside a cluster). Returns
 * 0 or -errno. */
int iov_pread_full(int fd, const struct iovec *iov, unsigned n, uint64_t off);
int iov_pwrite_full(int fd, const struct iovec *iov, unsigned n, uint64_t off);
int pread_full(int fd, void *buf, uint64_t len, uint64_t off);
int pwrite_full(int fd, const void *buf, uint64_t len, uint64_t off);

#endif
