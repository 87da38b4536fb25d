/* A virtual disk as device models see it: asynchronous read, write, flush,
 * discard and write-zeroes on byte offsets, completed through a callback
 * from the event loop. Formats (raw, qcow2: see image.h) live behind this
 * interface; virtio-blk does not know which one it serves. */
#ifndef CELLVM_BLOCK_BLOCK_H
#define CELLVM_BLOCK_BLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/event_loop.h"

/* result: bytes transferred (>= 0) or -errno. */
typedef void (*block_done)(void *opaque, int64_t result);

enum block_format { BLOCK_FORMAT_AUTO, BLOCK_FORMAT_RAW, BLOCK_FORMAT_QCOW2 };

struct block;
struct block_dirty;

struct block_ops {
	int (*readv)(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb, void *opaque);
	int (*writev)(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb, void *opaque);
	int (*flush)(struct block *b, block_done cb, void *opaque);
	/* Deallocates the range where the format can; reads return zeroes. */
	int (*discard)(struct block *b, uint64_t off, uint64_t len, block_done cb, void *opaque);
	/* Zeroes the range; `unmap` allows deallocating it. */
	int (*write_zeroes)(struct block *b, uint64_t off, uint64_t len, bool unmap, block_done cb, void *opaque);
	/* Starts what was queued since the last call. */
	void (*submit)(struct block *b);
	/* For a migration copying the disk. track (main thread): from now on
	 * every completed write, discard and write-zeroes marks d (NULL: no
	 * longer). copy_read and copy_status may run on any thread, beside
	 * the guest's requests: read the disk's content, and tell whether
	 * [off, off+len) holds data (else zeroes) and for how many bytes. */
	void (*track)(struct block *b, struct block_dirty *d);
	int (*copy_read)(struct block *b, uint64_t off, void *buf, size_t len);
	int (*copy_status)(struct block *b, uint64_t off, uint64_t len, bool *data, uint64_t *n);
	/* Lets in-flight requests finish, writes back metadata and frees b:
	 * 0 or -errno of the first write-back that failed. */
	int (*close)(struct block *b);
};

struct block {
	const struct block_ops *ops;
	uint64_t size;
	bool readonly;
	enum block_format format; /* of the top layer */
};


/* Opens PATH (a regular file or block device) in `format` (AUTO: by
 * content, qcow2 if it starts with the qcow2 magic) with its backing
 * chain, for a disk of up to `max_inflight` concurrent requests. The
 * image stays locked (flock) until closed: exclusively if writable,
 * shared if not. Errors are reported naming PATH and return CV_EINPUT
 * (bad path or image, image in use) or CV_EFAIL. */
int block_open(const char *path, enum block_format format, bool readonly, unsigned max_inflight,
	       struct event_loop *loop, struct block **out);

#endif
