#include "virtio/queue.h"

#include <linux/virtio_ring.h>
#include <string.h>

static uint64_t ring_bytes_avail(uint16_t size)
{
	return 4 + 2ULL * size + 2; /* flags, idx, ring, used_event */
}

static uint64_t ring_bytes_used(uint16_t size)
{
	return 4 + 8ULL * size + 2; /* flags, idx, ring, avail_event */
}

bool virtq_start(struct virtq *q, const struct guest_mem *mem)
{
	if (!q->size || (q->size & (q->size - 1)) || q->size > 32768)
		return false;
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return false;
	q->mem = mem;
	q->desc = guest_mem_ptr(mem, q->desc_gpa, 16ULL * q->size);
	q->avail = guest_mem_ptr(mem, q->avail_gpa, ring_bytes_avail(q->size));
	q->used = guest_mem_ptr(mem, q->used_gpa, ring_bytes_used(q->size));
	if (!q->desc || !q->avail || !q->used)
		return false;
	q->last_avail = q->used_idx = q->signalled = 0;
	q->signalled_valid = false;
	return true;
}

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

static uint16_t load16(const uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Every store of the device is to the used ring. */
static void store16(struct virtq *q, uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
	guest_mem_mark_dirty(q->mem, p, sizeof(*p));
}

static uint16_t *used_event(struct virtq *q)
{
	return &q->avail->ring[q->size];
}

static uint16_t *avail_event(struct virtq *q)
{
	return (uint16_t *)&q->used->ring[q->size];
}

/* Adds one buffer to the request; false if the chain is malformed. */
static bool add_buffer(struct virtq *q, struct virtq_req *r, const struct vring_desc *d, unsigned max)
{
	void *p = guest_mem_ptr(q->mem, d->addr, d->len);

	if (!p && d->len)
		return false;
	if (d->flags & VRING_DESC_F_WRITE) {
		if (r->nin == max)
			return false;
		/* Drained before any snapshot, so marking now cannot miss the write. */
		guest_mem_mark_dirty(q->mem, p, d->len);
		r->in[r->nin++] = (struct iovec){ .iov_base = p, .iov_len = d->len };
		r->in_len += d->len;
	} else {
		/* Readable buffers must all precede the writable ones. */
		if (r->nin || r->nout == max)
			return false;
		r->out[r->nout++] = (struct iovec){ .iov_base = p, .iov_len = d->len };
		r->out_len += d->len;
	}
	return true;
}

/* Walks the indirect table described by d; it may not chain on or nest. */
static bool walk_indirect(struct virtq *q, struct virtq_req *r, const struct vring_desc *d, unsigned max,
			  unsigned *budget)
{
	const uint8_t *table; /* any alignment: read entries with memcpy */
	unsigned n, i = 0;

	if ((d->flags & VRING_DESC_F_NEXT) || !d->len || d->len % sizeof(struct vring_desc))
		return false;
	n = d->len / sizeof(struct vring_desc);
	if (n > *budget || !(table = guest_mem_ptr(q->mem, d->addr, d->len)))
		return false;
	for (unsigned seen = 0;; seen++) {
		struct vring_desc e;

		if (seen == n || i >= n)
			return false; /* loop or index out of the table */
		memcpy(&e, table + (size_t)i * sizeof(e), sizeof(e));
		if ((e.flags & VRING_DESC_F_INDIRECT) || !add_buffer(q, r, &e, max))
			return false;
		(*budget)--;
		if (!(e.flags & VRING_DESC_F_NEXT))
			return true;
		i = e.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_req *req, struct iovec *out, struct iovec *in, unsigned max)
{
	uint16_t avail = load16(&q->avail->idx), head, i;
	unsigned budget = VIRTQ_MAX_CHAIN;

	if (avail == q->last_avail)
		return VIRTQ_EMPTY;
	/* The driver can be at most a ring ahead of us. */
	if ((uint16_t)(avail - q->last_avail) > q->size)
		return VIRTQ_BROKEN;
	head = load16(&q->avail->ring[q->last_avail & (q->size - 1)]);
	if (head >= q->size)
		return VIRTQ_BROKEN;
	*req = (struct virtq_req){ .head = head, .out = out, .in = in };
	i = head;
	for (unsigned seen = 0;; seen++) {
		struct vring_desc d;

		if (seen == q->size || !budget)
			return VIRTQ_BROKEN; /* a loop, or a chain longer than allowed */
		memcpy(&d, &q->desc[i], sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!walk_indirect(q, req, &d, max, &budget))
				return VIRTQ_BROKEN;
			break;
		}
		if (!add_buffer(q, req, &d, max))
			return VIRTQ_BROKEN;
		budget--;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		i = d.next;
		if (i >= q->size)
			return VIRTQ_BROKEN;
	}
	q->last_avail++;
	return VIRTQ_GOT;
}

void virtq_unpop(struct virtq *q)
{
	q->last_avail--;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &q->used->ring[q->used_idx & (q->size - 1)];

	e->id = head;
	e->len = len;
	guest_mem_mark_dirty(q->mem, e, sizeof(*e));
	q->used_idx++;
	store16(q, &q->used->idx, q->used_idx);
}

bool virtq_should_signal(struct virtq *q)
{
	uint16_t old = q->signalled, now = q->used_idx;
	bool valid = q->signalled_valid;

	/* The driver reads used->idx after we publish it; order the check. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->signalled = now;
	q->signalled_valid = true;
	if (!q->event_idx)
		return !(load16(&q->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	return vring_need_event(load16(used_event(q)), now, old);
}

bool virtq_enable_notify(struct virtq *q)
{
	if (q->event_idx)
		store16(q, avail_event(q), q->last_avail);
	else
		store16(q, &q->used->flags, 0);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return load16(&q->avail->idx) != q->last_avail;
}

void virtq_disable_notify(struct virtq *q)
{
	/* With EVENT_IDX: an avail_event the driver has passed already, so
	 * vring_need_event() is false for every add until it wraps. */
	if (q->event_idx)
		store16(q, avail_event(q), (uint16_t)(q->last_avail - 1));
	else
		store16(q, &q->used->flags, VRING_USED_F_NO_NOTIFY);
}

bool virtq_has_avail(struct virtq *q)
{
	return load16(&q->avail->idx) != q->last_avail;
}

bool virtq_notify_on_more(struct virtq *q)
{
	uint16_t seen = load16(&q->avail->idx);

	if (q->event_idx)
		store16(q, avail_event(q), seen);
	else
		store16(q, &q->used->flags, 0);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return load16(&q->avail->idx) != seen;
}
