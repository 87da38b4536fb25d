/* qcow2 images: opening (with every table checked before use), mapping
 * guest offsets to host clusters, reads, and closing. */
#include "block/qcow2.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "block/iov.h"
#include "util/err.h"

#define L2_CACHE_BYTES (16u << 20)
#define RB_CACHE_BYTES (2u << 20)

static const struct image_ops qcow2_ops;

struct qcow2 *qcow2_of(struct image *img)
{
	return img && img->ops == &qcow2_ops ? (struct qcow2 *)img : NULL;
}

int qcow2_corrupt(struct qcow2 *q, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!q->corrupt_reported) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		cv_err("%s: corrupt qcow2 image: %s", q->img.path, msg);
		q->corrupt_reported = true;
	}
	return -EIO;
}

bool qcow2_hits_metadata(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	uint64_t l1 = q->h.l1_table_offset, l1_len = (uint64_t)q->h.l1_size * 8;
	uint64_t rt = q->h.refcount_table_offset, rt_len = (uint64_t)q->h.refcount_table_clusters << q->cluster_bits;

	return off < q->cluster_size || (l1_len && off < l1 + l1_len && l1 < off + len) ||
	       (off < rt + rt_len && rt < off + len);
}

int qcow2_barrier(struct qcow2 *q)
{
	return fdatasync(q->img.fd) < 0 ? -errno : 0;
}

void qcow2_io_begin(struct qcow2 *q)
{
	atomic_fetch_add(&q->io_count, 1);
}

void qcow2_io_end(struct qcow2 *q)
{
	if (atomic_fetch_sub(&q->io_count, 1) == 1) {
		pthread_mutex_lock(&q->io_lock);
		pthread_cond_broadcast(&q->io_idle);
		pthread_mutex_unlock(&q->io_lock);
	}
}

/* Called with q->lock held, so no new I/O can be mapped meanwhile. */
void qcow2_io_drain(struct qcow2 *q)
{
	pthread_mutex_lock(&q->io_lock);
	while (atomic_load(&q->io_count))
		pthread_cond_wait(&q->io_idle, &q->io_lock);
	pthread_mutex_unlock(&q->io_lock);
}

/* An entry that points at a host cluster: aligned, inside the file, not
 * reserved bits, not on top of the header or the top-level tables. */
static int check_pointer(struct qcow2 *q, const char *what, uint64_t e, uint64_t reserved, uint64_t where)
{
	uint64_t off = e & QCOW2_OFFSET_MASK;

	if (e & reserved)
		return qcow2_corrupt(q, "%s 0x%llx has reserved bits set", what, (unsigned long long)where);
	if (off & (q->cluster_size - 1))
		return qcow2_corrupt(q, "%s 0x%llx points at unaligned offset 0x%llx", what,
				     (unsigned long long)where, (unsigned long long)off);
	if (off >= q->file_size)
		return qcow2_corrupt(q, "%s 0x%llx points past the end of the file (0x%llx)", what,
				     (unsigned long long)where, (unsigned long long)off);
	if (qcow2_hits_metadata(q, off, q->cluster_size))
		return qcow2_corrupt(q, "%s 0x%llx points into the image's own tables (0x%llx)", what,
				     (unsigned long long)where, (unsigned long long)off);
	return 0;
}

static int load_l2(struct qcow2 *q, uint64_t gc, uint64_t **table)
{
	uint64_t l1i = gc >> q->l2_bits, off;
	int rc = 0;

	*table = NULL;
	if (l1i >= q->h.l1_size || !(off = q->l1[l1i] & QCOW2_OFFSET_MASK))
		return 0;
	*table = qcow2_cache_get(q, &q->l2_cache, off, false, &rc);
	return rc;
}

static int check_entry(struct qcow2 *q, uint64_t gc, uint64_t e)
{
	enum qcow2_kind k = qcow2_kind(q, e);

	if (k == Q_COMPRESSED) {
		uint64_t first, count;

		qcow2_compressed_range(q, e, &first, &count);
		if ((first + count) << q->cluster_bits > q->file_size + q->cluster_size)
			return qcow2_corrupt(q, "compressed cluster of guest cluster 0x%llx is past the end of the file",
					     (unsigned long long)gc);
		return 0;
	}
	if (k == Q_NORMAL || (k == Q_ZERO && (e & QCOW2_OFFSET_MASK)))
		return check_pointer(q, "L2 entry of guest cluster", e, QCOW2_L2_RESERVED, gc);
	return 0;
}

int qcow2_l2_entry(struct qcow2 *q, uint64_t gc, uint64_t *entry)
{
	uint64_t *t;
	int rc = load_l2(q, gc, &t);

	*entry = 0;
	if (rc || !t)
		return rc;
	*entry = be64toh(t[gc & ((1ULL << q->l2_bits) - 1)]);
	return check_entry(q, gc, *entry);
}

int qcow2_l2_slot(struct qcow2 *q, uint64_t gc, uint64_t **slot)
{
	uint64_t l1i = gc >> q->l2_bits, *t, count = 1, off;
	bool fresh;
	int rc;

	if (l1i >= q->h.l1_size)
		return -EINVAL;
	if (!(q->l1[l1i] & QCOW2_OFFSET_MASK)) {
		if ((rc = qcow2_alloc_clusters(q, &count, &off, &fresh)))
			return rc;
		if (!(t = qcow2_cache_get(q, &q->l2_cache, off, true, &rc)))
			return rc;
		qcow2_cache_dirty(q, &q->l2_cache, t);
		q->l1[l1i] = off | QCOW2_COPIED;
		if (q->l1_dirty_lo >= q->l1_dirty_hi) {
			q->l1_dirty_lo = l1i;
			q->l1_dirty_hi = l1i + 1;
		} else {
			q->l1_dirty_lo = l1i < q->l1_dirty_lo ? l1i : q->l1_dirty_lo;
			q->l1_dirty_hi = l1i + 1 > q->l1_dirty_hi ? l1i + 1 : q->l1_dirty_hi;
		}
	} else if ((rc = load_l2(q, gc, &t))) {
		return rc;
	}
	*slot = &t[gc & ((1ULL << q->l2_bits) - 1)];
	return 0;
}

void qcow2_compressed_range(const struct qcow2 *q, uint64_t e, uint64_t *first, uint64_t *count)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t off = e & ((1ULL << x) - 1), nsec = ((e >> x) & ((1ULL << (q->cluster_bits - 8)) - 1)) + 1;
	uint64_t start = off & ~511ULL, end = start + nsec * 512;

	*first = start >> q->cluster_bits;
	*count = ((end - 1) >> q->cluster_bits) - *first + 1;
}

int qcow2_read_compressed(struct qcow2 *q, uint64_t e, uint8_t *out)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t off = e & ((1ULL << x) - 1), nsec = ((e >> x) & ((1ULL << (q->cluster_bits - 8)) - 1)) + 1;
	uint64_t len = nsec * 512 - (off & 511);
	uint8_t *in = malloc(len);
	z_stream z = { 0 };
	int rc, zr;

	if (!in)
		return -ENOMEM;
	if ((rc = pread_full(q->img.fd, in, len, off))) {
		free(in);
		return rc;
	}
	/* Raw deflate; -15 accepts every window size a writer may have used. */
	if (inflateInit2(&z, -15) != Z_OK) {
		free(in);
		return -ENOMEM;
	}
	z.next_in = in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)q->cluster_size;
	zr = inflate(&z, Z_FINISH);
	/* The data need not end exactly with the cluster's sectors. */
	if (z.avail_out != 0 || (zr != Z_STREAM_END && zr != Z_BUF_ERROR && zr != Z_OK))
		rc = qcow2_corrupt(q, "compressed cluster at 0x%llx does not inflate to a cluster",
				   (unsigned long long)off);
	inflateEnd(&z);
	free(in);
	return rc;
}

/* What the guest range starting at `off` (at most len bytes) is, as a run
 * of clusters of one kind (contiguous on the host for Q_NORMAL), under the
 * lock. Returns the run's bytes in *run. */
static int lookup_run(struct qcow2 *q, uint64_t off, uint64_t len, uint64_t *entry, uint64_t *run)
{
	uint64_t gc = off >> q->cluster_bits, in = off & (q->cluster_size - 1), e, next;
	uint64_t l2_left = (1ULL << q->l2_bits) - (gc & ((1ULL << q->l2_bits) - 1)), n = 1;
	enum qcow2_kind k;
	int rc;

	if ((rc = qcow2_l2_entry(q, gc, entry)))
		return rc;
	e = *entry;
	k = qcow2_kind(q, e);
	while (n < l2_left && (n << q->cluster_bits) - in < len && k != Q_COMPRESSED) {
		if ((rc = qcow2_l2_entry(q, gc + n, &next)))
			return rc;
		if (qcow2_kind(q, next) != k ||
		    (k == Q_NORMAL && (next & QCOW2_OFFSET_MASK) != (e & QCOW2_OFFSET_MASK) + (n << q->cluster_bits)) ||
		    (k == Q_NORMAL && (next & QCOW2_COPIED) != (e & QCOW2_COPIED)))
			break;
		n++;
	}
	*run = (n << q->cluster_bits) - in < len ? (n << q->cluster_bits) - in : len;
	return 0;
}

static int read_compressed_part(struct qcow2 *q, uint64_t e, uint64_t in, const struct iovec *iov, unsigned n,
				uint64_t skip, uint64_t len)
{
	uint8_t *buf = malloc(q->cluster_size);
	int rc;

	if (!buf)
		return -ENOMEM;
	if (!(rc = qcow2_read_compressed(q, e, buf)))
		iov_from_buf(iov, n, skip, buf + in, len);
	free(buf);
	return rc;
}

static int qcow2_preadv(struct image *img, uint64_t off, const struct iovec *iov, unsigned n)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t total = iov_total(iov, n), done = 0, e, run;
	struct iovec part[IOV_PARTS];
	int rc = 0;

	while (!rc && done < total) {
		uint64_t pos = off + done;
		unsigned k;

		pthread_mutex_lock(&q->lock);
		rc = lookup_run(q, pos, total - done, &e, &run);
		if (!rc && (qcow2_kind(q, e) == Q_NORMAL || qcow2_kind(q, e) == Q_COMPRESSED))
			qcow2_io_begin(q);
		pthread_mutex_unlock(&q->lock);
		if (rc)
			break;
		switch (qcow2_kind(q, e)) {
		case Q_NORMAL:
			k = iov_slice(iov, n, done, run, part, IOV_PARTS);
			if (iov_total(part, k) < run)
				run = iov_total(part, k); /* the rest in the next round */
			rc = iov_pread_full(img->fd, part, k, (e & QCOW2_OFFSET_MASK) + (pos & (q->cluster_size - 1)));
			qcow2_io_end(q);
			break;
		case Q_COMPRESSED:
			rc = read_compressed_part(q, e, pos & (q->cluster_size - 1), iov, n, done, run);
			qcow2_io_end(q);
			break;
		case Q_ZERO:
			iov_fill(iov, n, done, 0, run);
			break;
		case Q_UNALLOC:
			k = iov_slice(iov, n, done, run, part, IOV_PARTS);
			if (iov_total(part, k) < run)
				run = iov_total(part, k);
			rc = image_read_clipped(img->backing, pos, part, k);
			break;
		}
		done += run;
	}
	return rc;
}

static bool qcow2_map(struct image *img, uint64_t off, uint64_t len, bool write, struct extent *ext)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t e, run;
	bool ok = false;

	if (pthread_mutex_trylock(&q->lock))
		return false;
	if (lookup_run(q, off, len, &e, &run) == 0) {
		switch (qcow2_kind(q, e)) {
		case Q_NORMAL:
			if (write && !(e & QCOW2_COPIED))
				break;
			*ext = (struct extent){ .kind = EXTENT_DATA, .fd = img->fd, .len = run, .owner = img,
						.off = (e & QCOW2_OFFSET_MASK) + (off & (q->cluster_size - 1)) };
			qcow2_io_begin(q);
			ok = true;
			break;
		case Q_ZERO:
			*ext = (struct extent){ .kind = EXTENT_ZERO, .len = run };
			ok = !write;
			break;
		case Q_UNALLOC:
			if (write)
				break;
			pthread_mutex_unlock(&q->lock);
			/* The backing image answers for itself, or it is zeroes. */
			if (!img->backing || off >= img->backing->size) {
				*ext = (struct extent){ .kind = EXTENT_ZERO, .len = run };
				return true;
			}
			if (run > img->backing->size - off)
				run = img->backing->size - off;
			return img->backing->ops->map(img->backing, off, run, false, ext);
		case Q_COMPRESSED:
			break;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

static void qcow2_io_end_op(struct image *img)
{
	qcow2_io_end((struct qcow2 *)img);
}

static int qcow2_status(struct image *img, uint64_t off, uint64_t len, struct extent *ext)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t e, run;
	int rc;

	pthread_mutex_lock(&q->lock);
	rc = lookup_run(q, off, len, &e, &run);
	pthread_mutex_unlock(&q->lock);
	if (rc)
		return rc;
	*ext = (struct extent){ .len = run, .off = e & QCOW2_OFFSET_MASK };
	switch (qcow2_kind(q, e)) {
	case Q_NORMAL:
	case Q_COMPRESSED:
		ext->kind = EXTENT_DATA;
		break;
	case Q_ZERO:
		ext->kind = EXTENT_ZERO;
		break;
	case Q_UNALLOC:
		ext->kind = EXTENT_BACKING;
		break;
	}
	return 0;
}

static void free_qcow2(struct qcow2 *q)
{
	qcow2_cache_free(&q->l2_cache);
	qcow2_cache_free(&q->rb_cache);
	free(q->l1);
	free(q->rt);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->alloc_done);
	pthread_mutex_destroy(&q->io_lock);
	pthread_cond_destroy(&q->io_idle);
	image_fini(&q->img);
	free(q);
}

static int qcow2_close(struct image *img)
{
	struct qcow2 *q = (struct qcow2 *)img;
	int rc = 0;

	if (!img->readonly) {
		pthread_mutex_lock(&q->lock);
		rc = qcow2_meta_flush(q);
		pthread_mutex_unlock(&q->lock);
		if (!rc)
			rc = qcow2_barrier(q);
		if (rc)
			cv_err("%s: writing back metadata failed: %s", img->path, strerror(-rc));
	}
	image_close(img->backing);
	free_qcow2(q);
	return rc;
}

static const struct image_ops qcow2_ops = {
	.name = "qcow2",
	.preadv = qcow2_preadv,
	.pwritev = qcow2_pwritev,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.map = qcow2_map,
	.status = qcow2_status,
	.io_end = qcow2_io_end_op,
	.grow = qcow2_grow,
	.close = qcow2_close,
};

/* Reads a table of `count` big-endian entries into host order. */
static int read_table(struct qcow2 *q, uint64_t off, uint64_t count, uint64_t **out)
{
	uint64_t *t = calloc(count ? count : 1, 8);
	int rc;

	if (!t)
		return -ENOMEM;
	if ((rc = pread_full(q->img.fd, t, count * 8, off))) {
		free(t);
		return rc;
	}
	for (uint64_t i = 0; i < count; i++)
		t[i] = be64toh(t[i]);
	*out = t;
	return 0;
}

static int load_tables(struct qcow2 *q)
{
	int rc;

	q->rt_entries = ((uint64_t)q->h.refcount_table_clusters << q->cluster_bits) / 8;
	if ((rc = read_table(q, q->h.l1_table_offset, q->h.l1_size, &q->l1)) ||
	    (rc = read_table(q, q->h.refcount_table_offset, q->rt_entries, &q->rt))) {
		cv_err("%s: cannot read the qcow2 tables: %s", q->img.path, strerror(-rc));
		return CV_EFAIL;
	}
	for (uint64_t i = 0; i < q->h.l1_size; i++)
		if ((q->l1[i] & QCOW2_OFFSET_MASK) && check_pointer(q, "L1 entry", q->l1[i], QCOW2_L1_RESERVED, i))
			return CV_EINPUT;
	for (uint64_t i = 0; i < q->rt_entries; i++)
		if (q->rt[i] && check_pointer(q, "refcount table entry", q->rt[i], QCOW2_RT_RESERVED, i))
			return CV_EINPUT;
	return 0;
}

static unsigned clamp_slots(uint64_t want, uint64_t bytes, uint64_t cluster_size)
{
	uint64_t max = bytes / cluster_size;

	if (max < 4)
		max = 4;
	return (unsigned)(want < 4 ? 4 : want > max ? max : want);
}

static int writable(struct qcow2 *q)
{
	const char *why = NULL;

	if (q->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT)
		why = "it is marked corrupt (repair it with qemu-img check -r all)";
	else if (q->h.incompatible_features & QCOW2_INCOMPAT_DIRTY)
		why = "its refcounts are dirty (repair it with qemu-img check -r all)";
	else if (q->h.nb_snapshots)
		why = "it has internal snapshots";
	if (why) {
		cv_err("%s: cannot write to this qcow2 image: %s", q->img.path, why);
		return CV_EINPUT;
	}
	if (q->h.version >= 3 && q->h.autoclear_features) {
		/* We do not keep bitmaps (or other autoclear data) up to date. */
		uint64_t zero = 0;

		q->h.autoclear_features = 0;
		if (pwrite_full(q->img.fd, &zero, 8, 88) || qcow2_barrier(q)) {
			cv_err("%s: cannot update the header: %s", q->img.path, strerror(errno));
			return CV_EFAIL;
		}
	}
	return 0;
}

static int open_backing(struct qcow2 *q)
{
	enum block_format f = BLOCK_FORMAT_AUTO;

	if (!q->h.backing_file[0])
		return 0;
	if (!strcmp(q->h.backing_format, "raw"))
		f = BLOCK_FORMAT_RAW;
	else if (!strcmp(q->h.backing_format, "qcow2"))
		f = BLOCK_FORMAT_QCOW2;
	else if (q->h.backing_format[0]) {
		cv_err("%s: backing format '%s' is not supported (raw or qcow2)", q->img.path, q->h.backing_format);
		return CV_EINPUT;
	}
	return image_open_backing(&q->img, q->h.backing_file, f, &q->img.backing);
}

int qcow2_open(int fd, const char *path, unsigned flags, const struct image *child, struct image **out)
{
	bool readonly = !(flags & IMAGE_RW);
	struct qcow2 *q = calloc(1, sizeof(*q));
	int rc;

	if (!q) {
		cv_err("out of memory");
		close(fd);
		return CV_EFAIL;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->alloc_done, NULL);
	pthread_mutex_init(&q->io_lock, NULL);
	pthread_cond_init(&q->io_idle, NULL);
	if (image_init(&q->img, &qcow2_ops, fd, path, readonly)) {
		free(q);
		return CV_EFAIL;
	}
	q->img.child = child;
	if ((rc = qcow2_read_header(fd, path, &q->h, &q->header_bytes, &q->file_size)))
		goto fail;
	q->cluster_bits = q->h.cluster_bits;
	q->cluster_size = 1ULL << q->cluster_bits;
	q->l2_bits = q->cluster_bits - 3;
	q->rb_bits = q->cluster_bits + 3 - q->h.refcount_order;
	q->refcount_max = q->h.refcount_order == 6 ? UINT64_MAX : (1ULL << (1u << q->h.refcount_order)) - 1;
	q->fresh_from = (q->file_size + q->cluster_size - 1) >> q->cluster_bits;
	q->discard_punches = true;
	q->img.size = q->h.size;
	if ((rc = load_tables(q)))
		goto fail;
	rc = CV_EFAIL;
	if (qcow2_cache_init(&q->rb_cache, clamp_slots(16, RB_CACHE_BYTES, q->cluster_size), "refcount block", NULL) ||
	    qcow2_cache_init(&q->l2_cache, clamp_slots(q->h.l1_size, L2_CACHE_BYTES, q->cluster_size), "L2 table",
			     &q->rb_cache))
		goto fail;
	if ((!readonly && (rc = writable(q))) || (!(flags & IMAGE_NO_BACKING) && (rc = open_backing(q))))
		goto fail;
	*out = &q->img;
	return 0;
fail:
	free_qcow2(q);
	return rc;
}
