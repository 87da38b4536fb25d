/* qcow2 refcounts and host cluster allocation (all under q->lock).
 *
 * A refcount block is created at the first cluster of the range it
 * describes (that whole range is free when it has no block), so it
 * always describes itself and never needs another allocation. When the
 * refcount table is full, a larger one is written past the end of the
 * covered area together with the refcount blocks that describe it, and
 * the header is switched to it in one 12-byte write; the old table is
 * freed only afterwards, so a crash at any point leaks at worst. */
#include "block/qcow2.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/iov.h"
#include "util/err.h"

uint64_t qcow2_rb_get(const struct qcow2 *q, const uint8_t *block, uint64_t i)
{
	unsigned bits = 1u << q->h.refcount_order;

	if (bits < 8)
		return (block[i * bits / 8] >> (i * bits % 8)) & ((1u << bits) - 1);
	{
		unsigned bytes = bits / 8;
		uint64_t v = 0;

		for (unsigned k = 0; k < bytes; k++)
			v = v << 8 | block[i * bytes + k];
		return v;
	}
}

void qcow2_rb_set(const struct qcow2 *q, uint8_t *block, uint64_t i, uint64_t v)
{
	unsigned bits = 1u << q->h.refcount_order;

	if (bits < 8) {
		unsigned shift = (unsigned)(i * bits % 8), mask = ((1u << bits) - 1) << shift;
		uint8_t *p = &block[i * bits / 8];

		*p = (uint8_t)((*p & ~mask) | ((v << shift) & mask));
		return;
	}
	for (unsigned bytes = bits / 8, k = bytes; k-- > 0; v >>= 8)
		block[i * bytes + k] = (uint8_t)v;
}

/* Grows the file to `end` bytes (allocations only ever grow it, and every
 * write lands inside an allocated cluster, so this never cuts data). */
static int extend_file(struct qcow2 *q, uint64_t end)
{
	if (end <= q->file_size)
		return 0;
	if (ftruncate(q->img.fd, (off_t)end) < 0)
		return -errno;
	q->file_size = end;
	return 0;
}

static int write_rt_entry(struct qcow2 *q, uint64_t ti)
{
	uint64_t be = htobe64(q->rt[ti]);

	return pwrite_full(q->img.fd, &be, 8, q->h.refcount_table_offset + ti * 8);
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* Replaces the refcount table with one of at least `need` entries. */
static int grow_table(struct qcow2 *q, uint64_t need)
{
	uint64_t per_cluster = q->cluster_size / 8, range = 1ULL << q->rb_bits;
	uint64_t entries = need > q->rt_entries * 2 ? need : q->rt_entries * 2, n, k = 1, start, *rt;
	uint64_t old_off = q->h.refcount_table_offset, old_clusters = q->h.refcount_table_clusters;
	uint8_t *block = NULL, hdr[12];
	int rc;

	/* Layout at the first uncovered cluster: k refcount blocks, then the
	 * n-cluster table; the blocks cover themselves and the table. */
	for (;;) {
		if (entries < q->rt_entries + k)
			entries = q->rt_entries + k;
		n = div_up(entries, per_cluster);
		if ((k << q->rb_bits) >= k + n)
			break;
		k++;
	}
	if (n * q->cluster_size > QCOW2_MAX_RT_BYTES)
		return qcow2_corrupt(q, "refcount table would exceed %u bytes", QCOW2_MAX_RT_BYTES);
	start = q->rt_entries << q->rb_bits;
	rt = calloc(n, q->cluster_size);
	block = malloc(q->cluster_size);
	if (!rt || !block) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(rt, q->rt, q->rt_entries * 8);
	for (uint64_t j = 0; j < k; j++) {
		uint64_t used = k + n - j * range;

		memset(block, 0, q->cluster_size);
		for (uint64_t i = 0; i < range && i < used; i++)
			qcow2_rb_set(q, block, i, 1);
		rt[q->rt_entries + j] = (start + j) << q->cluster_bits;
		if ((rc = pwrite_full(q->img.fd, block, q->cluster_size, (start + j) << q->cluster_bits)))
			goto out;
	}
	for (uint64_t i = 0; i < n * per_cluster; i++)
		rt[i] = htobe64(rt[i]);
	rc = pwrite_full(q->img.fd, rt, n * q->cluster_size, (start + k) << q->cluster_bits);
	for (uint64_t i = 0; i < n * per_cluster; i++)
		rt[i] = be64toh(rt[i]);
	if (rc || (rc = extend_file(q, (start + k + n) << q->cluster_bits)) || (rc = qcow2_barrier(q)))
		goto out;
	/* The switch: offset and size of the table in one write. */
	{
		uint64_t off_be = htobe64((start + k) << q->cluster_bits);
		uint32_t n_be = htobe32((uint32_t)n);

		memcpy(hdr, &off_be, 8);
		memcpy(hdr + 8, &n_be, 4);
	}
	if ((rc = pwrite_full(q->img.fd, hdr, sizeof(hdr), 48)) || (rc = qcow2_barrier(q)))
		goto out;
	free(q->rt);
	q->rt = rt;
	rt = NULL;
	q->rt_entries = n * per_cluster;
	q->h.refcount_table_offset = (start + k) << q->cluster_bits;
	q->h.refcount_table_clusters = (uint32_t)n;
	if (q->fresh_from < start + k + n)
		q->fresh_from = start + k + n;
	for (uint64_t i = 0; i < old_clusters; i++)
		if ((rc = qcow2_refcount_add(q, (old_off >> q->cluster_bits) + i, -1)))
			break;
out:
	free(rt);
	free(block);
	return rc;
}

/* The refcount block for host cluster c, created (at the start of its
 * range) if `create`; NULL in *block when there is none. */
static int block_for(struct qcow2 *q, uint64_t c, bool create, uint8_t **block)
{
	uint64_t ti = c >> q->rb_bits, off;
	int rc = 0;

	*block = NULL;
	if (ti >= q->rt_entries) {
		if (!create)
			return 0;
		if ((rc = grow_table(q, ti + 1)))
			return rc;
	}
	off = q->rt[ti];
	if (!off) {
		uint64_t first = ti << q->rb_bits;
		uint8_t *b;

		if (!create)
			return 0;
		off = first << q->cluster_bits;
		/* The range has no block, so nothing in it may be in use. */
		if (qcow2_hits_metadata(q, off, q->cluster_size))
			return qcow2_corrupt(q, "metadata at 0x%llx has no refcount", (unsigned long long)off);
		/* Written before the table points at it, with a barrier between. */
		if (!(b = qcow2_cache_get(q, &q->rb_cache, off, true, &rc)))
			return rc;
		qcow2_rb_set(q, b, 0, 1);
		if ((rc = pwrite_full(q->img.fd, b, q->cluster_size, off)) ||
		    (rc = extend_file(q, off + q->cluster_size)) || (rc = qcow2_barrier(q)))
			return rc;
		q->rt[ti] = off;
		if ((rc = write_rt_entry(q, ti)))
			return rc;
		if (q->fresh_from <= first)
			q->fresh_from = first + 1;
		*block = b;
		return 0;
	}
	*block = qcow2_cache_get(q, &q->rb_cache, off, false, &rc);
	return rc;
}

int qcow2_refcount_get(struct qcow2 *q, uint64_t cluster, uint64_t *rc_out)
{
	uint8_t *b;
	int rc = block_for(q, cluster, false, &b);

	*rc_out = b ? qcow2_rb_get(q, b, cluster & ((1ULL << q->rb_bits) - 1)) : 0;
	return rc;
}

int qcow2_refcount_add(struct qcow2 *q, uint64_t cluster, int delta)
{
	uint64_t i = cluster & ((1ULL << q->rb_bits) - 1), v;
	uint8_t *b;
	int rc = block_for(q, cluster, false, &b);

	if (rc)
		return rc;
	v = b ? qcow2_rb_get(q, b, i) : 0;
	if (delta > 0 && (!b || v == q->refcount_max))
		return qcow2_corrupt(q, "refcount overflow at cluster 0x%llx", (unsigned long long)cluster);
	if (delta < 0 && v == 0)
		return qcow2_corrupt(q, "refcount underflow at cluster 0x%llx", (unsigned long long)cluster);
	qcow2_rb_set(q, b, i, delta > 0 ? v + 1 : v - 1);
	qcow2_cache_dirty(q, &q->rb_cache, b);
	if (delta < 0 && v == 1 && cluster < q->free_hint)
		q->free_hint = cluster;
	return 0;
}

int qcow2_alloc_clusters(struct qcow2 *q, uint64_t *count, uint64_t *off, bool *fresh)
{
	uint64_t c = q->free_hint, n = 0, v, mask = (1ULL << q->rb_bits) - 1;
	uint8_t *b;
	int rc;

	/* The first free cluster, creating refcount blocks on the way. */
	for (;; c++) {
		if ((rc = block_for(q, c, true, &b)))
			return rc;
		if (!qcow2_rb_get(q, b, c & mask))
			break;
	}
	/* As many free ones after it as wanted, within this refcount block. */
	while (n < *count && ((c + n) & ~mask) == (c & ~mask) && !qcow2_rb_get(q, b, (c + n) & mask))
		n++;
	for (uint64_t i = 0; i < n; i++) {
		v = qcow2_rb_get(q, b, (c + i) & mask);
		qcow2_rb_set(q, b, (c + i) & mask, v + 1);
	}
	qcow2_cache_dirty(q, &q->rb_cache, b);
	*fresh = c >= q->fresh_from;
	if (q->fresh_from < c + n)
		q->fresh_from = c + n;
	q->free_hint = c + n;
	*count = n;
	*off = c << q->cluster_bits;
	return extend_file(q, (c + n) << q->cluster_bits);
}
