/* qcow2 consistency check: rebuilds every host cluster's reference count
 * from the tables (header, L1, L2, refcount structures, internal
 * snapshots) and compares it with the stored refcounts. Stored counts
 * that are too low, entries that point outside the file or at unaligned
 * offsets, and COPIED flags that disagree with the refcount are errors;
 * counts that are too high are leaks (wasted space, harmless). */
#include "block/qcow2.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/iov.h"

struct check {
	struct qcow2 *q;
	uint32_t *refs; /* references per host cluster */
	uint64_t n;     /* clusters in the file */
	uint64_t *l2;   /* an L2 table, host order */
	void (*report)(void *ctx, const char *line);
	void *ctx;
	struct qcow2_check_result *res;
};

/* One error, one line. (Leaks are only counted: the caller sums them up.) */
static void problem(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct check *c, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->res->errors++;
	if (c->report)
		c->report(c->ctx, line);
}

/* Counts a reference to the host bytes [off, off+len). */
static void ref(struct check *c, const char *what, uint64_t off, uint64_t len)
{
	uint64_t first = off >> c->q->cluster_bits, last = (off + len - 1) >> c->q->cluster_bits;

	for (uint64_t i = first; i <= last; i++) {
		if (i >= c->n) {
			problem(c, "%s at 0x%llx is past the end of the file", what, (unsigned long long)off);
			return;
		}
		if (c->refs[i] < UINT32_MAX)
			c->refs[i]++;
	}
}

static bool bad_pointer(struct check *c, const char *what, uint64_t e, uint64_t reserved)
{
	uint64_t off = e & QCOW2_OFFSET_MASK;

	if (e & reserved) {
		problem(c, "%s 0x%llx has reserved bits set", what, (unsigned long long)e);
		return true;
	}
	if (off & (c->q->cluster_size - 1)) {
		problem(c, "%s 0x%llx is not aligned to a cluster", what, (unsigned long long)off);
		return true;
	}
	return false;
}

static int read_l2(struct check *c, uint64_t off)
{
	int rc = pread_full(c->q->img.fd, c->l2, c->q->cluster_size, off);

	for (uint64_t i = 0; !rc && i < c->q->cluster_size / 8; i++)
		c->l2[i] = be64toh(c->l2[i]);
	return rc;
}

/* Counts everything an L1 table reaches; with `active`, also the guest
 * clusters allocated in this layer. */
static int walk_l1(struct check *c, const uint64_t *l1, uint64_t l1_size, bool active)
{
	struct qcow2 *q = c->q;
	int rc;

	for (uint64_t i = 0; i < l1_size; i++) {
		uint64_t l2_off = l1[i] & QCOW2_OFFSET_MASK;

		if (!l2_off || bad_pointer(c, "L1 entry", l1[i], QCOW2_L1_RESERVED))
			continue;
		ref(c, "L2 table", l2_off, q->cluster_size);
		if (l2_off >= q->file_size)
			continue;
		if ((rc = read_l2(c, l2_off)))
			return rc;
		for (uint64_t j = 0; j < q->cluster_size / 8; j++) {
			uint64_t e = c->l2[j], first, count;

			switch (qcow2_kind(q, e)) {
			case Q_COMPRESSED:
				if (e & QCOW2_COPIED)
					problem(c, "compressed L2 entry 0x%llx has the COPIED flag",
						(unsigned long long)e);
				qcow2_compressed_range(q, e, &first, &count);
				ref(c, "compressed cluster", first << q->cluster_bits, count << q->cluster_bits);
				c->res->compressed += active;
				c->res->allocated += active;
				break;
			case Q_NORMAL:
			case Q_ZERO:
				if (!(e & QCOW2_OFFSET_MASK) || bad_pointer(c, "L2 entry", e, QCOW2_L2_RESERVED))
					break;
				ref(c, "data cluster", e & QCOW2_OFFSET_MASK, q->cluster_size);
				c->res->allocated += active && qcow2_kind(q, e) == Q_NORMAL;
				break;
			case Q_UNALLOC:
				break;
			}
		}
	}
	return 0;
}

/* Internal snapshots: the table itself and everything their L1 tables reach. */
static int walk_snapshots(struct check *c)
{
	struct qcow2 *q = c->q;
	uint64_t pos = q->h.snapshots_offset;
	uint8_t e[40];
	int rc;

	for (uint32_t s = 0; s < q->h.nb_snapshots; s++) {
		uint64_t l1_off, l1_size, *l1, len;
		uint16_t id_len, name_len;
		uint32_t extra, l1_n;

		if ((rc = pread_full(q->img.fd, e, sizeof(e), pos)))
			return rc;
		memcpy(&l1_off, e, 8);
		l1_off = be64toh(l1_off);
		memcpy(&l1_n, e + 8, 4);
		l1_size = be32toh(l1_n);
		memcpy(&id_len, e + 12, 2);
		memcpy(&name_len, e + 14, 2);
		memcpy(&extra, e + 36, 4);
		len = 40 + (uint64_t)be32toh(extra) + be16toh(id_len) + be16toh(name_len);
		pos += (len + 7) & ~7ULL;
		if (l1_size * 8 > QCOW2_MAX_L1_BYTES || (l1_off & (q->cluster_size - 1)) || l1_off >= q->file_size) {
			problem(c, "snapshot %u has an invalid L1 table (0x%llx, %llu entries)", s,
				(unsigned long long)l1_off, (unsigned long long)l1_size);
			continue;
		}
		if (!l1_size)
			continue;
		ref(c, "snapshot L1 table", l1_off, l1_size * 8);
		if (!(l1 = malloc(l1_size * 8)))
			return -ENOMEM;
		if (!(rc = pread_full(q->img.fd, l1, l1_size * 8, l1_off))) {
			for (uint64_t i = 0; i < l1_size; i++)
				l1[i] = be64toh(l1[i]);
			rc = walk_l1(c, l1, l1_size, false);
		}
		free(l1);
		if (rc)
			return rc;
	}
	if (q->h.nb_snapshots)
		ref(c, "snapshot table", q->h.snapshots_offset, pos - q->h.snapshots_offset);
	return 0;
}

/* The COPIED flag must be set exactly where the refcount is 1. */
static int check_copied(struct check *c)
{
	struct qcow2 *q = c->q;
	uint64_t v;
	int rc;

	for (uint64_t i = 0; i < q->h.l1_size; i++) {
		uint64_t l2_off = q->l1[i] & QCOW2_OFFSET_MASK;

		if (!l2_off || l2_off >= q->file_size || (q->l1[i] & QCOW2_L1_RESERVED) ||
		    (l2_off & (q->cluster_size - 1)))
			continue;
		if ((rc = qcow2_refcount_get(q, l2_off >> q->cluster_bits, &v)))
			return rc;
		if (!(q->l1[i] & QCOW2_COPIED) != (v != 1))
			problem(c, "L1 entry %llu: COPIED flag does not match refcount %llu",
				(unsigned long long)i, (unsigned long long)v);
		if ((rc = read_l2(c, l2_off)))
			return rc;
		for (uint64_t j = 0; j < q->cluster_size / 8; j++) {
			uint64_t e = c->l2[j], off = e & QCOW2_OFFSET_MASK;

			if (qcow2_kind(q, e) == Q_COMPRESSED || qcow2_kind(q, e) == Q_UNALLOC || !off ||
			    off >= q->file_size || (e & QCOW2_L2_RESERVED) || (off & (q->cluster_size - 1)))
				continue;
			if ((rc = qcow2_refcount_get(q, off >> q->cluster_bits, &v)))
				return rc;
			if (!(e & QCOW2_COPIED) != (v != 1))
				problem(c, "L2 entry of guest cluster 0x%llx: COPIED flag does not match refcount %llu",
					(unsigned long long)((i << q->l2_bits) + j), (unsigned long long)v);
		}
	}
	return 0;
}

static int compare(struct check *c)
{
	uint64_t stored;
	int rc;

	for (uint64_t i = 0; i < c->n; i++) {
		if ((rc = qcow2_refcount_get(c->q, i, &stored)))
			return rc;
		if (stored < c->refs[i])
			problem(c, "cluster 0x%llx: refcount %llu but %u references",
				(unsigned long long)(i << c->q->cluster_bits), (unsigned long long)stored, c->refs[i]);
		else if (stored > c->refs[i])
			c->res->leaks++;
	}
	return 0;
}

int qcow2_check(struct image *img, void (*report)(void *ctx, const char *line), void *ctx,
		struct qcow2_check_result *res)
{
	struct qcow2 *q = qcow2_of(img);
	struct check c = { .q = q, .report = report, .ctx = ctx, .res = res };
	int rc;

	memset(res, 0, sizeof(*res));
	if (!q)
		return -EINVAL;
	res->total = (img->size + q->cluster_size - 1) >> q->cluster_bits;
	c.n = (q->file_size + q->cluster_size - 1) >> q->cluster_bits;
	c.refs = calloc(c.n ? c.n : 1, sizeof(*c.refs));
	c.l2 = malloc(q->cluster_size);
	if (!c.refs || !c.l2) {
		free(c.refs);
		free(c.l2);
		return -ENOMEM;
	}
	pthread_mutex_lock(&q->lock);
	ref(&c, "header", 0, q->cluster_size);
	if (q->h.l1_size)
		ref(&c, "L1 table", q->h.l1_table_offset, (uint64_t)q->h.l1_size * 8);
	ref(&c, "refcount table", q->h.refcount_table_offset, (uint64_t)q->h.refcount_table_clusters << q->cluster_bits);
	for (uint64_t i = 0; i < q->rt_entries; i++)
		if (q->rt[i])
			ref(&c, "refcount block", q->rt[i], q->cluster_size);
	rc = walk_l1(&c, q->l1, q->h.l1_size, true);
	if (!rc)
		rc = walk_snapshots(&c);
	if (!rc)
		rc = compare(&c);
	if (!rc)
		rc = check_copied(&c);
	pthread_mutex_unlock(&q->lock);
	free(c.refs);
	free(c.l2);
	return rc;
}
