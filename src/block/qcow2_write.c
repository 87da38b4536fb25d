/* qcow2 writes: in place where the cluster is ours, otherwise allocation.
 *
 * Order on disk, so a crash (or SIGKILL) at any moment leaves at worst
 * leaked clusters: guest data first, then the refcounts that allocate its
 * cluster, a barrier, the L2 entry, a barrier, the L1 entry (new L2
 * tables). The caches are write-back and flushed in that order (see
 * qcow2_meta_flush and the cache's `before`). Freeing goes the other way:
 * the L2 entries that drop a cluster are written and synced before its
 * refcount drops, and only after the data I/O that might still be aimed
 * at it has drained. */
#include "block/qcow2.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/iov.h"
#include "util/err.h"

#define ZERO_CHUNK (1u << 20)

int qcow2_meta_flush(struct qcow2 *q)
{
	bool l1 = q->l1_dirty_lo < q->l1_dirty_hi;
	int rc;

	if ((rc = qcow2_cache_flush(q, &q->rb_cache)) || (rc = qcow2_cache_flush(q, &q->l2_cache)))
		return rc;
	if (!l1)
		return 0;
	/* New L2 tables are on disk before the L1 entries that point at them. */
	if ((rc = qcow2_barrier(q)))
		return rc;
	{
		uint64_t lo = q->l1_dirty_lo, n = q->l1_dirty_hi - lo, *be = malloc(n * 8);

		if (!be)
			return -ENOMEM;
		for (uint64_t i = 0; i < n; i++)
			be[i] = htobe64(q->l1[lo + i]);
		rc = pwrite_full(q->img.fd, be, n * 8, q->h.l1_table_offset + lo * 8);
		free(be);
	}
	if (!rc)
		q->l1_dirty_lo = q->l1_dirty_hi = 0;
	return rc;
}

int qcow2_flush(struct image *img)
{
	struct qcow2 *q = (struct qcow2 *)img;
	int rc;

	pthread_mutex_lock(&q->lock);
	rc = qcow2_meta_flush(q);
	pthread_mutex_unlock(&q->lock);
	return rc ? rc : qcow2_barrier(q);
}

/* Waits (dropping the lock) until no allocation covers guest clusters
 * [first, first+count). */
static void wait_allocs(struct qcow2 *q, uint64_t first, uint64_t count)
{
	struct qcow2_alloc *a;

again:
	for (a = q->allocs; a; a = a->next) {
		if (a->first < first + count && first < a->first + a->count) {
			pthread_cond_wait(&q->alloc_done, &q->lock);
			goto again;
		}
	}
}

static void alloc_done(struct qcow2 *q, struct qcow2_alloc *a)
{
	struct qcow2_alloc **p = &q->allocs;

	while (*p != a)
		p = &(*p)->next;
	*p = a->next;
	pthread_cond_broadcast(&q->alloc_done);
}

/* Host clusters that an L2 entry holds (none for unallocated/zero). */
static void entry_clusters(const struct qcow2 *q, uint64_t e, uint64_t *first, uint64_t *count)
{
	*count = 0;
	if (qcow2_kind(q, e) == Q_COMPRESSED)
		qcow2_compressed_range(q, e, first, count);
	else if (e & QCOW2_OFFSET_MASK) {
		*first = (e & QCOW2_OFFSET_MASK) >> q->cluster_bits;
		*count = 1;
	}
}

static void punch(struct qcow2 *q, uint64_t first, uint64_t count)
{
	if (!q->discard_punches || !count)
		return;
	if (fallocate(q->img.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(first << q->cluster_bits),
		      (off_t)(count << q->cluster_bits)) < 0 &&
	    errno == EOPNOTSUPP)
		q->discard_punches = false;
}

/* Drops the clusters that the (already replaced) entries `old` held. */
static int release(struct qcow2 *q, const uint64_t *old, size_t n)
{
	uint64_t run_first = 0, run_count = 0;
	int rc;

	if (!n)
		return 0;
	if ((rc = qcow2_meta_flush(q)) || (rc = qcow2_barrier(q)))
		return rc;
	qcow2_io_drain(q);
	for (size_t i = 0; i < n; i++) {
		uint64_t first, count, v;

		entry_clusters(q, old[i], &first, &count);
		for (uint64_t c = first; c < first + count; c++) {
			if ((rc = qcow2_refcount_add(q, c, -1)) || (rc = qcow2_refcount_get(q, c, &v)))
				return rc;
			if (v)
				continue;
			/* Free now: give the space back to the host, in runs. */
			if (run_count && c == run_first + run_count) {
				run_count++;
				continue;
			}
			punch(q, run_first, run_count);
			run_first = c;
			run_count = 1;
		}
	}
	punch(q, run_first, run_count);
	return 0;
}

static int set_entry(struct qcow2 *q, uint64_t gc, uint64_t e)
{
	uint64_t *slot;
	int rc = qcow2_l2_slot(q, gc, &slot);

	if (rc)
		return rc;
	*slot = htobe64(e);
	qcow2_cache_dirty(q, &q->l2_cache, slot);
	return 0;
}

/* The guest cluster's current content, for copy-on-write. */
static int old_content(struct qcow2 *q, uint64_t gc, uint64_t e, uint8_t *buf)
{
	struct iovec v = { .iov_base = buf, .iov_len = q->cluster_size };

	switch (qcow2_kind(q, e)) {
	case Q_NORMAL:
		return pread_full(q->img.fd, buf, q->cluster_size, e & QCOW2_OFFSET_MASK);
	case Q_COMPRESSED:
		return qcow2_read_compressed(q, e, buf);
	case Q_UNALLOC:
		return image_read_clipped(q->img.backing, gc << q->cluster_bits, &v, 1);
	case Q_ZERO:
		break;
	}
	memset(buf, 0, q->cluster_size);
	return 0;
}

static bool reads_zero(const struct qcow2 *q, uint64_t e)
{
	enum qcow2_kind k = qcow2_kind(q, e);

	return k == Q_ZERO || (k == Q_UNALLOC && !q->img.backing);
}

/* Writes guest bytes [in, in+len) of one cluster at host offset `host`,
 * with the rest of the cluster from its old content unless the new
 * cluster already reads as those bytes (fresh, and the old content is
 * zeroes). Called without the lock. */
static int write_cow(struct qcow2 *q, uint64_t gc, uint64_t e, uint64_t host, bool fresh, uint64_t in,
		     const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len)
{
	struct iovec parts[IOV_PARTS + 2];
	uint8_t *buf = NULL;
	unsigned k = 0, m;
	int rc;

	if (len < q->cluster_size && !(fresh && reads_zero(q, e))) {
		if (!(buf = malloc(q->cluster_size)))
			return -ENOMEM;
		if ((rc = old_content(q, gc, e, buf))) {
			free(buf);
			return rc;
		}
		if (in)
			parts[k++] = (struct iovec){ .iov_base = buf, .iov_len = in };
	}
	m = iov_slice(iov, n, skip, len, parts + k, IOV_PARTS);
	if (iov_total(parts + k, m) != len) {
		/* Too fragmented: gather into the bounce buffer. */
		if (!buf && !(buf = calloc(1, q->cluster_size)))
			return -ENOMEM;
		iov_to_buf(iov, n, skip, buf + in, len);
		rc = pwrite_full(q->img.fd, buf, q->cluster_size, host);
		free(buf);
		return rc;
	}
	k += m;
	if (buf && in + len < q->cluster_size)
		parts[k++] = (struct iovec){ .iov_base = buf + in + len, .iov_len = q->cluster_size - in - len };
	rc = iov_pwrite_full(q->img.fd, parts, k, buf ? host : host + in);
	free(buf);
	return rc;
}

/* Whether a guest cluster with entry e can join a multi-cluster
 * allocation: nothing to copy and nothing to free. */
static bool plain_target(const struct qcow2 *q, uint64_t e)
{
	enum qcow2_kind k = qcow2_kind(q, e);

	return k == Q_UNALLOC || (k == Q_ZERO && !(e & QCOW2_OFFSET_MASK));
}

/* One step of a write at guest offset pos (len bytes left), with the lock
 * held (dropped around data I/O). Sets *done to the bytes written. */
static int write_step(struct qcow2 *q, uint64_t pos, const struct iovec *iov, unsigned n, uint64_t skip,
		      uint64_t len, uint64_t *done)
{
	uint64_t gc = pos >> q->cluster_bits, in = pos & (q->cluster_size - 1), e, *slot, host, count, full;
	uint64_t l2_left = (1ULL << q->l2_bits) - (gc & ((1ULL << q->l2_bits) - 1));
	struct qcow2_alloc a;
	struct iovec part[IOV_PARTS];
	bool fresh, reuse;
	unsigned k;
	int rc;

	full = in ? 0 : len >> q->cluster_bits;
	wait_allocs(q, gc, full ? (full < l2_left ? full : l2_left) : 1);
	/* Every write needs the L2 table: create it now if missing. */
	if ((rc = qcow2_l2_slot(q, gc, &slot)) || (rc = qcow2_l2_entry(q, gc, &e)))
		return rc;
	if (qcow2_kind(q, e) == Q_NORMAL && (e & QCOW2_COPIED)) {
		/* Ours: write in place, as far as the host run goes. */
		uint64_t run = q->cluster_size - in, next;

		while (run < len && (run + in) >> q->cluster_bits < l2_left) {
			uint64_t j = (run + in) >> q->cluster_bits; /* clusters after gc */

			if ((rc = qcow2_l2_entry(q, gc + j, &next)))
				return rc;
			if (qcow2_kind(q, next) != Q_NORMAL || !(next & QCOW2_COPIED) ||
			    (next & QCOW2_OFFSET_MASK) != (e & QCOW2_OFFSET_MASK) + (j << q->cluster_bits))
				break;
			run += q->cluster_size;
		}
		*done = run < len ? run : len;
		k = iov_slice(iov, n, skip, *done, part, IOV_PARTS);
		*done = iov_total(part, k);
		qcow2_io_begin(q);
		pthread_mutex_unlock(&q->lock);
		rc = iov_pwrite_full(q->img.fd, part, k, (e & QCOW2_OFFSET_MASK) + in);
		qcow2_io_end(q);
		pthread_mutex_lock(&q->lock);
		return rc;
	}
	/* A preallocated zero cluster of ours is rewritten in place. */
	reuse = qcow2_kind(q, e) == Q_ZERO && (e & QCOW2_OFFSET_MASK) && (e & QCOW2_COPIED);
	count = 1;
	if (!reuse && plain_target(q, e) && full > 1) {
		uint64_t next;

		count = full < l2_left ? full : l2_left;
		for (uint64_t i = 1; i < count; i++) {
			if ((rc = qcow2_l2_entry(q, gc + i, &next)))
				return rc;
			if (!plain_target(q, next)) {
				count = i;
				break;
			}
		}
		/* As many whole clusters as one pwritev takes. */
		k = iov_slice(iov, n, skip, count << q->cluster_bits, part, IOV_PARTS);
		if (iov_total(part, k) >> q->cluster_bits < count)
			count = iov_total(part, k) >> q->cluster_bits ? iov_total(part, k) >> q->cluster_bits : 1;
	}
	if (reuse) {
		host = e & QCOW2_OFFSET_MASK;
		fresh = false;
	} else if ((rc = qcow2_alloc_clusters(q, &count, &host, &fresh))) {
		return rc;
	}
	*done = (count << q->cluster_bits) - in < len ? (count << q->cluster_bits) - in : len;
	a = (struct qcow2_alloc){ .first = gc, .count = count, .next = q->allocs };
	q->allocs = &a;
	pthread_mutex_unlock(&q->lock);
	if (count > 1) {
		k = iov_slice(iov, n, skip, *done, part, IOV_PARTS);
		rc = iov_pwrite_full(q->img.fd, part, k, host);
	} else {
		rc = write_cow(q, gc, e, host, fresh, in, iov, n, skip, *done);
	}
	pthread_mutex_lock(&q->lock);
	for (uint64_t i = 0; !rc && i < count; i++)
		rc = set_entry(q, gc + i, (host + (i << q->cluster_bits)) | QCOW2_COPIED);
	alloc_done(q, &a);
	/* A failed write leaves the clusters allocated but unused: a leak. */
	if (!rc && !reuse && !plain_target(q, e))
		rc = release(q, &e, 1);
	return rc;
}

int qcow2_pwritev(struct image *img, uint64_t off, const struct iovec *iov, unsigned n)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t total = iov_total(iov, n), done = 0, step;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	while (!rc && done < total) {
		rc = write_step(q, off + done, iov, n, done, total - done, &step);
		done += step;
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int write_zero_data(struct image *img, uint64_t off, uint64_t len)
{
	uint8_t *zero = calloc(1, ZERO_CHUNK);
	int rc = 0;

	if (!zero)
		return -ENOMEM;
	while (!rc && len) {
		struct iovec v = { .iov_base = zero, .iov_len = len < ZERO_CHUNK ? len : ZERO_CHUNK };

		rc = qcow2_pwritev(img, off, &v, 1);
		off += v.iov_len;
		len -= v.iov_len;
	}
	free(zero);
	return rc;
}

enum zap { ZAP_DISCARD, ZAP_ZERO_UNMAP, ZAP_ZERO_KEEP };

/* The new entry for a whole cluster that is discarded or zeroed. */
static uint64_t zapped(const struct qcow2 *q, uint64_t e, enum zap how)
{
	if (how == ZAP_ZERO_KEEP && qcow2_kind(q, e) == Q_NORMAL && (e & QCOW2_COPIED))
		return e | QCOW2_ZERO; /* keeps its cluster: later writes go in place */
	if (how == ZAP_ZERO_KEEP && qcow2_kind(q, e) == Q_ZERO)
		return e;
	/* Without a backing file, unallocated reads as zeroes too. */
	return q->img.backing && q->h.version >= 3 ? QCOW2_ZERO : 0;
}

/* Whole clusters [gc, gc+count), within one L2 table. */
static int zap_clusters(struct qcow2 *q, uint64_t gc, uint64_t count, enum zap how)
{
	uint64_t *old = malloc(count * sizeof(*old)), e, ne, first, held;
	size_t nold = 0;
	int rc = 0;

	if (!old)
		return -ENOMEM;
	pthread_mutex_lock(&q->lock);
	wait_allocs(q, gc, count);
	for (uint64_t i = 0; !rc && i < count; i++) {
		if ((rc = qcow2_l2_entry(q, gc + i, &e)))
			break;
		ne = zapped(q, e, how);
		/* A discarded unallocated cluster may keep showing the backing file. */
		if (ne == e || (how == ZAP_DISCARD && qcow2_kind(q, e) == Q_UNALLOC))
			continue;
		if ((rc = set_entry(q, gc + i, ne)))
			break;
		entry_clusters(q, e, &first, &held);
		if (held && (qcow2_kind(q, e) == Q_COMPRESSED || (ne & QCOW2_OFFSET_MASK) != (e & QCOW2_OFFSET_MASK)))
			old[nold++] = e;
	}
	if (!rc)
		rc = release(q, old, nold);
	pthread_mutex_unlock(&q->lock);
	free(old);
	return rc;
}

static int zap(struct image *img, uint64_t off, uint64_t len, enum zap how)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t cs = q->cluster_size, end = off + len, head_end = (off + cs - 1) & ~(cs - 1), tail = end & ~(cs - 1);
	int rc = 0;

	/* The last cluster of a disk whose size is not a multiple of it counts as whole. */
	if (end == img->size)
		tail = (end + cs - 1) & ~(cs - 1);
	if (head_end >= tail) {
		/* Within one cluster, not all of it. */
		return how == ZAP_DISCARD ? 0 : write_zero_data(img, off, len);
	}
	if (how != ZAP_DISCARD && off < head_end && (rc = write_zero_data(img, off, head_end - off)))
		return rc;
	for (uint64_t pos = head_end; !rc && pos < tail;) {
		uint64_t gc = pos >> q->cluster_bits, l2_left = (1ULL << q->l2_bits) - (gc & ((1ULL << q->l2_bits) - 1));
		uint64_t count = (tail - pos) >> q->cluster_bits;

		if (count > l2_left)
			count = l2_left;
		rc = zap_clusters(q, gc, count, how);
		pos += count << q->cluster_bits;
	}
	if (!rc && how != ZAP_DISCARD && tail < end)
		rc = write_zero_data(img, tail, end - tail);
	return rc;
}

int qcow2_discard(struct image *img, uint64_t off, uint64_t len)
{
	return zap(img, off, len, ZAP_DISCARD);
}

int qcow2_write_zeroes(struct image *img, uint64_t off, uint64_t len, bool unmap)
{
	struct qcow2 *q = (struct qcow2 *)img;

	/* v2 has no zero flag: with a backing file, zeroes must be written. */
	if (q->h.version < 3 && img->backing)
		return write_zero_data(img, off, len);
	return zap(img, off, len, unmap ? ZAP_ZERO_UNMAP : ZAP_ZERO_KEEP);
}

int qcow2_preallocate(struct image *img)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t clusters = (img->size + q->cluster_size - 1) >> q->cluster_bits, *slot;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	for (uint64_t gc = 0; !rc && gc < clusters;) {
		uint64_t count = (1ULL << q->l2_bits) - (gc & ((1ULL << q->l2_bits) - 1)), off;
		bool fresh;

		if (count > clusters - gc)
			count = clusters - gc;
		/* The L2 table first, then its data clusters right after it. */
		if ((rc = qcow2_l2_slot(q, gc, &slot)) || (rc = qcow2_alloc_clusters(q, &count, &off, &fresh)))
			break;
		for (uint64_t i = 0; !rc && i < count; i++)
			rc = set_entry(q, gc + i, (off + (i << q->cluster_bits)) | QCOW2_COPIED);
		gc += count;
	}
	if (!rc)
		rc = qcow2_meta_flush(q);
	if (!rc && fallocate(img->fd, 0, 0, (off_t)q->file_size) < 0 && errno != EOPNOTSUPP)
		rc = -errno;
	pthread_mutex_unlock(&q->lock);
	return rc ? rc : qcow2_barrier(q);
}
