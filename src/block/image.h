/* Disk images as formats see them: synchronous, thread-safe reads and
 * writes on virtual offsets. Formats (raw, qcow2) implement struct image;
 * the asynchronous struct block the devices use (async.c) runs these
 * calls on worker threads, except where map() says the data sits at a
 * plain offset of a host file, which it reads or writes with io_uring.
 * `cellvm disk` uses images directly. */
#ifndef CELLVM_BLOCK_IMAGE_H
#define CELLVM_BLOCK_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "block/block.h"

struct image;

/* Where a range of an image lives, as map() and status() tell it. */
enum extent_kind {
	EXTENT_DATA,    /* in a host file, at `off` */
	EXTENT_ZERO,    /* reads as zeroes */
	EXTENT_BACKING, /* not in this layer: read from the backing image (zeroes if none) */
};

struct extent {
	enum extent_kind kind;
	int fd;              /* EXTENT_DATA from map(): the host file */
	uint64_t off;        /* EXTENT_DATA: host offset */
	uint64_t len;        /* bytes from the asked offset with the same answer */
	struct image *owner; /* map(): call image_io_end(owner) when the I/O is done (may be NULL) */
};

struct image_ops {
	const char *name;
	/* Read or write iov's bytes at `off`; 0 or -errno. */
	int (*preadv)(struct image *img, uint64_t off, const struct iovec *iov, unsigned n);
	int (*pwritev)(struct image *img, uint64_t off, const struct iovec *iov, unsigned n);
	/* Makes every completed write durable. */
	int (*flush)(struct image *img);
	int (*discard)(struct image *img, uint64_t off, uint64_t len);
	int (*write_zeroes)(struct image *img, uint64_t off, uint64_t len, bool unmap);
	/* Non-blocking: where [off, off+len) goes for a read (write=false:
	 * DATA or ZERO through the whole backing chain) or an in-place write
	 * (DATA only). Returns true and fills *e (e->len <= len) when it is
	 * known without waiting; false sends the caller to preadv/pwritev. */
	bool (*map)(struct image *img, uint64_t off, uint64_t len, bool write, struct extent *e);
	/* What this layer holds at [off, off+len): fills *e (not fd/owner). */
	int (*status)(struct image *img, uint64_t off, uint64_t len, struct extent *e);
	/* Ends an I/O that map() counted (see struct extent's owner). */
	void (*io_end)(struct image *img);
	/* Grows the virtual size (offline use); NULL where the size is not
	 * the image's to change (NBD: the server's). */
	int (*grow)(struct image *img, uint64_t size);
	/* Writes back metadata, closes the backing chain, frees img. */
	int (*close)(struct image *img);
	/* Every operation maps 1:1 onto `fd`: the async layer may run flush,
	 * discard and write-zeroes there itself (fsync, fallocate). */
	bool flat;
};

struct image {
	const struct image_ops *ops;
	uint64_t size;        /* virtual size in bytes */
	bool readonly;
	int fd;               /* the host file; -1 if none (NBD) */
	char *path;           /* as opened (for messages and the chain) */
	struct image *backing; /* NULL if none */
	const struct image *child; /* the image this one backs (NULL at the top) */
	dev_t dev;            /* identity of the host file, for loop detection */
	ino_t ino;
};

#define IMAGE_MAX_CHAIN 256

/* image_open flags. */
enum {
	IMAGE_RW = 1,         /* writable (else read-only) */
	IMAGE_EXCL = 2,       /* exclusive lock even if read-only */
	IMAGE_NO_BACKING = 4, /* do not open the backing chain (this layer only) */
};

/* Opens PATH as `format` (AUTO: by content), and its backing chain
 * read-only. Takes a lock on every file (exclusive if writable, shared if
 * not) and refuses images that another process holds. An NBD URI (see
 * nbd.h) opens the server's export instead: raw, unlocked. Errors are reported
 * with cv_err (one line naming the image and the bad value) and return
 * CV_EINPUT (bad path, format or image) or CV_EFAIL. */
int image_open(const char *path, enum block_format format, unsigned flags, struct image **out);

/* Like status(), through the backing chain: EXTENT_DATA or EXTENT_ZERO. */
int image_chain_status(struct image *img, uint64_t off, uint64_t len, struct extent *e);

/* Opens the backing file NAME of `child` (relative names are relative to
 * the directory of child's file) as `format`, read-only, refusing loops
 * and chains longer than IMAGE_MAX_CHAIN. */
int image_open_backing(const struct image *child, const char *name, enum block_format format,
		       struct image **out);

/* Resolves a backing file name against the directory of `image_path`
 * into buf; false if it does not fit. */
bool image_backing_path(const char *image_path, const char *name, char *buf, size_t len);

/* The VMM's policy for backing files, which image headers name and a
 * guest then reads: after image_restrict_backing(), a backing file must
 * lie in the directory of the image the user gave (the chain's top), or
 * under a directory passed to image_allow_backing (CV_EINPUT if it does
 * not exist). The disk tools leave it off: they show no guest anything. */
#define IMAGE_MAX_ALLOWED_DIRS 8
void image_restrict_backing(void);
int image_allow_backing(const char *dir);

/* The format of the image at path, by its content (qcow2 magic or raw),
 * read without opening or locking it. 0 or CV_EINPUT. */
int image_probe(const char *path, enum block_format *f);

/* The backing file name in the header of the image at path ("" if none,
 * or raw), read without opening the image (and without its lock): for
 * looking at the chain of images a running VM holds. 0 or CV_E*. */
int image_backing_name(const char *path, char *buf, size_t cap);

/* Calls fn for each backing file of the image at path, nearest first,
 * with its path and the name its child's header gives it; lock-free like
 * image_backing_name. Stops at fn's first non-zero return, which it
 * returns; 0 at the end of the chain, CV_E* on a bad one. */
int image_walk_backing(const char *path, int (*fn)(void *ctx, const char *path, const char *name), void *ctx);

/* Closes img and its chain; returns the first error met writing back. */
int image_close(struct image *img);

/* Reads [off, off+len) of img into iov, zeroes where img is shorter
 * (a backing file may be smaller than its overlay); img may be NULL. */
int image_read_clipped(struct image *img, uint64_t off, const struct iovec *iov, unsigned n);

/* Ends an I/O that map() started (e.owner). */
void image_io_end(struct image *owner);

/* Helpers for formats. */
int image_init(struct image *img, const struct image_ops *ops, int fd, const char *path, bool readonly);
void image_fini(struct image *img);

const char *image_format_name(enum block_format f);

#endif
