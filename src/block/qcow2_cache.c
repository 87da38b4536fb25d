/* A write-back cache of cluster-sized metadata tables (L2 tables and
 * refcount blocks), kept in their on-disk (big-endian) form so writing one
 * back is a single pwrite. Least recently used tables are evicted; a dirty
 * one is written first, after the cache it depends on (`before`) has been
 * written and synced: an L2 entry must never reach the disk before the
 * refcount that makes its cluster allocated. */
#include "block/qcow2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "block/iov.h"
#include "util/err.h"

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, const char *what, struct qcow2_cache *before)
{
	memset(c, 0, sizeof(*c));
	c->slot = calloc(n, sizeof(*c->slot));
	if (!c->slot) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	c->n = n;
	c->what = what;
	c->before = before;
	return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
	for (unsigned i = 0; c->slot && i < c->n; i++)
		free(c->slot[i].data);
	free(c->slot);
	c->slot = NULL;
}

bool qcow2_cache_has_dirty(const struct qcow2_cache *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->slot[i].dirty)
			return true;
	return false;
}

/* Whatever c's tables point at (refcounts, data) goes to disk first. */
static int order_before(struct qcow2 *q, struct qcow2_cache *c)
{
	int rc;

	if (!c->before)
		return 0;
	if ((rc = qcow2_cache_flush(q, c->before)))
		return rc;
	return qcow2_barrier(q);
}

static int write_slot(struct qcow2 *q, struct qcow2_cache_slot *s)
{
	int rc = pwrite_full(q->img.fd, s->data, q->cluster_size, s->off);

	if (!rc)
		s->dirty = false;
	return rc;
}

int qcow2_cache_flush(struct qcow2 *q, struct qcow2_cache *c)
{
	int rc;

	if (!qcow2_cache_has_dirty(c))
		return 0;
	if ((rc = order_before(q, c)))
		return rc;
	for (unsigned i = 0; i < c->n; i++)
		if (c->slot[i].dirty && (rc = write_slot(q, &c->slot[i])))
			return rc;
	return 0;
}

static struct qcow2_cache_slot *find(struct qcow2_cache *c, uint64_t off)
{
	if (c->slot[c->last].off == off)
		return &c->slot[c->last];
	for (unsigned i = 0; i < c->n; i++) {
		if (c->slot[i].off == off) {
			c->last = i;
			return &c->slot[i];
		}
	}
	return NULL;
}

/* A free slot, or the least recently used one, written back if dirty. */
static struct qcow2_cache_slot *victim(struct qcow2 *q, struct qcow2_cache *c, int *err)
{
	struct qcow2_cache_slot *v = &c->slot[0];

	for (unsigned i = 0; i < c->n; i++) {
		if (!c->slot[i].off) {
			v = &c->slot[i];
			break;
		}
		if (c->slot[i].used < v->used)
			v = &c->slot[i];
	}
	if (v->off && v->dirty && ((*err = order_before(q, c)) || (*err = write_slot(q, v))))
		return NULL;
	if (!v->data && !(v->data = malloc(q->cluster_size))) {
		*err = -ENOMEM;
		return NULL;
	}
	v->off = 0;
	return v;
}

void *qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t off, bool fresh, int *err)
{
	struct qcow2_cache_slot *s;

	/* Offset 0 is the header cluster, never a table; and a slot's off 0
	 * means "empty", so find() would hand back an empty slot without data
	 * (found by fuzz_qcow2: a hostile image whose refcounts leave cluster
	 * 0 free makes the allocator place a table there). */
	if (!off) {
		*err = qcow2_corrupt(q, "%s at offset 0", c->what);
		return NULL;
	}
	s = find(c, off);
	if (!s) {
		if (!(s = victim(q, c, err)))
			return NULL;
		if (fresh)
			memset(s->data, 0, q->cluster_size);
		else if ((*err = pread_full(q->img.fd, s->data, q->cluster_size, off)))
			return NULL;
		s->off = off;
		s->dirty = false;
		c->last = (unsigned)(s - c->slot);
	} else if (fresh) {
		memset(s->data, 0, q->cluster_size);
	}
	s->used = ++c->clock;
	return s->data;
}

void qcow2_cache_dirty(struct qcow2 *q, struct qcow2_cache *c, const void *p)
{
	const uint8_t *b = p;

	for (unsigned i = 0; i < c->n; i++) {
		if (c->slot[i].data && b >= c->slot[i].data && b < c->slot[i].data + q->cluster_size) {
			c->slot[i].dirty = true;
			return;
		}
	}
}
