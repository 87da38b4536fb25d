/* qcow2 (QEMU copy-on-write v2 and v3) images: the on-disk format, the
 * in-memory state of an open image, and the functions its files share.
 *
 * Files: qcow2_header.c (parsing and checking the header), qcow2.c (open,
 * close, mapping, reads), qcow2_write.c (writes, allocation, discard,
 * write-zeroes, metadata write-back order), qcow2_cache.c (L2 and refcount
 * block cache), qcow2_refcount.c (refcounts and cluster allocation),
 * qcow2_create.c (new images, growing), qcow2_check.c (consistency check).
 *
 * Locking: q->lock guards every piece of metadata (header fields, L1,
 * refcount table, caches, in-flight allocations). Guest data is read and
 * written without it, at offsets found under it; a cluster that is being
 * allocated is listed in q->allocs until its L2 entry is published, and
 * clusters are freed only after the data I/O that might still target them
 * has drained (q->io_count). */
#ifndef CELLVM_BLOCK_QCOW2_H
#define CELLVM_BLOCK_QCOW2_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "block/image.h"

#define QCOW2_MAGIC "QFI\xfb"
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_DEFAULT_CLUSTER_BITS 16
#define QCOW2_V2_HEADER 72
#define QCOW2_V3_HEADER 104
#define QCOW2_MAX_BACKING_NAME 1023
/* Limits QEMU also applies, so images either of us makes open in both. */
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_RT_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ULL << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1fULL

/* Header extension types. */
#define QCOW2_EXT_END 0
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acaU

/* Table entries. */
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ULL
#define QCOW2_COPIED (1ULL << 63)
#define QCOW2_COMPRESSED (1ULL << 62)
#define QCOW2_ZERO 1ULL
#define QCOW2_L1_RESERVED 0x7f000000000001ffULL
#define QCOW2_L2_RESERVED 0x3f000000000001feULL
#define QCOW2_RT_RESERVED 0x1ffULL

struct qcow2_header {
	uint32_t version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_table_offset;
	uint64_t refcount_table_offset;
	uint32_t refcount_table_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible_features;
	uint64_t compatible_features;
	uint64_t autoclear_features;
	uint32_t refcount_order;
	uint32_t header_length;
	char backing_file[QCOW2_MAX_BACKING_NAME + 1]; /* "" if none */
	char backing_format[32];                        /* "" if the header does not say */
};

/* Parses and checks the header in `buf` (the first `len` bytes of a file
 * of `file_size` bytes; at least the first cluster when the file has one).
 * Returns 0, or CV_EINPUT with one line in err naming the bad field. */
int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct qcow2_header *h, char *err,
		       size_t errlen);

/* Reads and parses the header of the qcow2 file open at fd (its first
 * cluster), reporting errors naming path: 0, CV_EINPUT or CV_EFAIL. */
int qcow2_read_header(int fd, const char *path, struct qcow2_header *h, uint64_t *header_bytes, uint64_t *file_size);
/* Bytes of virtual disk one L1 entry covers, and the L1 entries `size`
 * needs (0 on overflow). */
uint64_t qcow2_l1_entries(uint64_t size, unsigned cluster_bits);

/* --- cache of cluster-sized tables (L2 tables, refcount blocks) --- */

struct qcow2;

struct qcow2_cache_slot {
	uint64_t off;   /* host offset of the table; 0 if the slot is free */
	uint64_t used;  /* LRU stamp */
	bool dirty;
	uint8_t *data;  /* allocated on first use */
};

struct qcow2_cache {
	struct qcow2_cache_slot *slot;
	unsigned n;
	uint64_t clock;
	unsigned last;              /* last hit, checked first */
	struct qcow2_cache *before; /* flushed (and synced) before this one is written */
	const char *what;           /* "L2 table", "refcount block": for messages */
};

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, const char *what, struct qcow2_cache *before);
void qcow2_cache_free(struct qcow2_cache *c);
/* Returns the table at host offset `off`, read from the file or (fresh)
 * zeroed for a newly allocated one; NULL with *err = -errno on failure. */
void *qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t off, bool fresh, int *err);
/* Marks the table holding `p` (any address inside it) dirty. */
void qcow2_cache_dirty(struct qcow2 *q, struct qcow2_cache *c, const void *p);
/* Writes every dirty table (after `before`, with a barrier). */
int qcow2_cache_flush(struct qcow2 *q, struct qcow2_cache *c);
bool qcow2_cache_has_dirty(const struct qcow2_cache *c);

/* --- open image --- */

/* A run of guest clusters whose allocation is in progress. */
struct qcow2_alloc {
	uint64_t first, count; /* guest cluster numbers */
	struct qcow2_alloc *next;
};

struct qcow2 {
	struct image img;
	struct qcow2_header h;
	uint64_t header_bytes;   /* what was read of cluster 0 */
	unsigned cluster_bits, l2_bits, rb_bits; /* log2 of cluster size, L2 entries, refcount block entries */
	uint64_t cluster_size;
	uint64_t refcount_max;
	uint64_t *l1;            /* host-endian */
	uint64_t l1_dirty_lo, l1_dirty_hi; /* dirty entries [lo, hi) */
	uint64_t *rt;            /* refcount table, host-endian */
	uint64_t rt_entries;
	struct qcow2_cache l2_cache, rb_cache;
	uint64_t file_size;      /* grows with allocations; never shrinks */
	uint64_t free_hint;      /* no free cluster below this one */
	uint64_t fresh_from;     /* clusters from here on were never written: they read as zeroes */
	bool discard_punches;    /* fallocate(PUNCH_HOLE) works on this file */
	bool corrupt_reported;
	pthread_mutex_t lock;
	pthread_cond_t alloc_done;
	struct qcow2_alloc *allocs;
	/* Data I/O in flight at offsets mapped under the lock. */
	atomic_uint io_count;
	pthread_mutex_t io_lock;
	pthread_cond_t io_idle;
};

/* A normalized L2 entry. */
enum qcow2_kind { Q_UNALLOC, Q_ZERO, Q_NORMAL, Q_COMPRESSED };

static inline enum qcow2_kind qcow2_kind(const struct qcow2 *q, uint64_t e)
{
	if (e & QCOW2_COMPRESSED)
		return Q_COMPRESSED;
	if ((e & QCOW2_ZERO) && q->h.version >= 3)
		return Q_ZERO;
	return e & QCOW2_OFFSET_MASK ? Q_NORMAL : Q_UNALLOC;
}

/* flags: IMAGE_RW, IMAGE_NO_BACKING (see image_open). */
int qcow2_open(int fd, const char *path, unsigned flags, const struct image *child, struct image **out);

/* Reports an inconsistency once per image (cv_err) and returns -EIO. */
int qcow2_corrupt(struct qcow2 *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True if [off, off+len) overlaps the header cluster, the L1 table or the
 * refcount table: a guest cluster or L2 table there would overwrite them. */
bool qcow2_hits_metadata(const struct qcow2 *q, uint64_t off, uint64_t len);

/* L2 entry of guest cluster `gc` (under the lock); *entry = 0 when no L2
 * table covers it. With alloc, creates the L2 table if missing and returns
 * a pointer to the entry in the cached table (valid until the lock is
 * dropped or the cache is used again). */
int qcow2_l2_entry(struct qcow2 *q, uint64_t gc, uint64_t *entry);
int qcow2_l2_slot(struct qcow2 *q, uint64_t gc, uint64_t **slot);

/* Reads the cluster a compressed entry describes (cluster_size bytes). */
int qcow2_read_compressed(struct qcow2 *q, uint64_t entry, uint8_t *out);
/* Host clusters a compressed entry occupies: [*first, *first + *count). */
void qcow2_compressed_range(const struct qcow2 *q, uint64_t entry, uint64_t *first, uint64_t *count);

/* Data I/O accounting (see the locking note above). */
void qcow2_io_begin(struct qcow2 *q);
void qcow2_io_end(struct qcow2 *q);
void qcow2_io_drain(struct qcow2 *q);

/* Writes (ordered) all dirty metadata, under the lock. */
int qcow2_meta_flush(struct qcow2 *q);
/* fdatasync, as a barrier between dependent metadata writes. */
int qcow2_barrier(struct qcow2 *q);

/* --- refcounts (qcow2_refcount.c), all under the lock --- */
int qcow2_refcount_get(struct qcow2 *q, uint64_t cluster, uint64_t *rc);
/* Adds delta (+1 or -1) to a host cluster's refcount. */
int qcow2_refcount_add(struct qcow2 *q, uint64_t cluster, int delta);
/* Allocates `*count` (at least 1, at most the asked number) contiguous
 * free host clusters with refcount 1; returns the first host offset in
 * *off, and in *fresh whether they read as zeroes. */
int qcow2_alloc_clusters(struct qcow2 *q, uint64_t *count, uint64_t *off, bool *fresh);
/* Refcount entry helpers (exported for qcow2_check.c). */
uint64_t qcow2_rb_get(const struct qcow2 *q, const uint8_t *block, uint64_t i);
void qcow2_rb_set(const struct qcow2 *q, uint8_t *block, uint64_t i, uint64_t v);

/* --- writes (qcow2_write.c) --- */
int qcow2_pwritev(struct image *img, uint64_t off, const struct iovec *iov, unsigned n);
int qcow2_discard(struct image *img, uint64_t off, uint64_t len);
int qcow2_write_zeroes(struct image *img, uint64_t off, uint64_t len, bool unmap);
int qcow2_flush(struct image *img);
/* Allocates every guest cluster (reading as zeroes) and the whole file. */
int qcow2_preallocate(struct image *img);

/* --- creation and growth (qcow2_create.c) --- */
struct qcow2_create_opts {
	uint64_t size;
	unsigned cluster_bits;   /* 0: default (64 KiB clusters) */
	const char *backing;     /* NULL: none */
	const char *backing_fmt; /* "raw" or "qcow2"; NULL: not recorded */
};
/* Creates PATH (which must not exist). Returns 0 or CV_EFAIL/CV_EINPUT. */
int qcow2_create(const char *path, const struct qcow2_create_opts *o);
int qcow2_grow(struct image *img, uint64_t size);

/* --- consistency check (qcow2_check.c) --- */
struct qcow2_check_result {
	uint64_t errors;      /* corruption: refcounts too low, bad entries, overlaps */
	uint64_t leaks;       /* clusters with a refcount but no reference */
	uint64_t allocated;   /* guest clusters allocated in this layer */
	uint64_t total;       /* guest clusters */
	uint64_t compressed;
};
/* Checks every table and refcount of an image opened read-only; each
 * problem is reported through `report` (one line). */
int qcow2_check(struct image *img, void (*report)(void *ctx, const char *line), void *ctx,
		struct qcow2_check_result *res);

/* Whether img is a qcow2 image (and which one) */
struct qcow2 *qcow2_of(struct image *img);

#endif
