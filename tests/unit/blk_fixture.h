/* Shared fixture for the virtio-blk tests (src/virtio/blk.c,
 * test_virtio_blk_*.c): a fake block back-end and a fake transport, and a
 * guest (a heap buffer, so ASan sees any stray access) that lays out
 * requests and reads the used ring. Back-end completions are delivered
 * from the test after the kick returns (as the event loop would), never
 * from inside the block_ops call. Include after the cmocka prerequisites
 * (stdarg, stddef, stdint, setjmp, cmocka). */
#ifndef CELLVM_TESTS_UNIT_BLK_FIXTURE_H
#define CELLVM_TESTS_UNIT_BLK_FIXTURE_H

#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "helpers.h"
#include "util/iov.h"
#include "virtio/blk.h"
#include "virtio/device.h"

#define RAM (1 * MiB)
#define DESC_GPA 0x1000ULL
#define AVAIL_GPA 0x2000ULL
#define USED_GPA 0x3000ULL
#define DATA_GPA 0x10000ULL
#define QSIZE 16
#define DISK_SECTORS 128ULL
#define DISK_SIZE (DISK_SECTORS * 512)
#define DISK_ID "cellvm-test-disk"
#define STATUS_UNTOUCHED 0xee
#define MAX_PENDING 64

enum op { OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD, OP_ZEROES, OP_COUNT };

struct fake_disk {
	struct block b;
	unsigned calls[OP_COUNT], submits, closes;
	uint64_t last_off, last_len;
	unsigned last_n;
	bool last_unmap;
	int next_rc; /* returned (once) instead of accepting the next request */
	struct {
		block_done cb;
		void *opaque;
		int64_t result;
	} pending[MAX_PENDING];
	unsigned npending;
	uint8_t written[8192];
};

struct env {
	struct guest_mem m;
	struct fake_disk disk;
	struct virtio_dev *dev;
	unsigned sig_queue, sig_config;
	uint16_t next_desc, avail_idx;
	uint64_t next_data;
};

/* ---- fake back-end ------------------------------------------------------- */

static inline uint8_t pattern(uint64_t pos)
{
	return (uint8_t)(pos ^ (pos >> 8) ^ 0x5a);
}

static inline struct fake_disk *disk_of(struct block *b)
{
	return (struct fake_disk *)b;
}

/* Records the call; returns the injected error, or queues the completion. */
static inline int accept(struct fake_disk *d, enum op op, uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	int rc = d->next_rc;

	d->calls[op]++;
	d->last_off = off;
	d->last_len = len;
	d->next_rc = 0;
	if (rc)
		return rc;
	assert_true(off + len <= d->b.size);
	assert_true(d->npending < MAX_PENDING);
	d->pending[d->npending].cb = cb;
	d->pending[d->npending].opaque = opaque;
	d->pending[d->npending].result = (int64_t)len;
	d->npending++;
	return 0;
}

static inline int fake_readv(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb,
				    void *opaque)
{
	struct fake_disk *d = disk_of(b);
	uint64_t pos = off;
	int rc;

	d->last_n = n;
	rc = accept(d, OP_READ, off, iov_total(iov, n), cb, opaque);
	if (rc)
		return rc;
	for (unsigned i = 0; i < n; i++)
		for (size_t k = 0; k < iov[i].iov_len; k++)
			((uint8_t *)iov[i].iov_base)[k] = pattern(pos++);
	return 0;
}

static inline int fake_writev(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb,
				     void *opaque)
{
	struct fake_disk *d = disk_of(b);
	uint64_t len = iov_total(iov, n), at = 0;
	int rc;

	d->last_n = n;
	rc = accept(d, OP_WRITE, off, len, cb, opaque);
	if (rc)
		return rc;
	assert_true(len <= sizeof(d->written));
	for (unsigned i = 0; i < n; i++) {
		memcpy(d->written + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	return 0;
}

static inline int fake_flush(struct block *b, block_done cb, void *opaque)
{
	return accept(disk_of(b), OP_FLUSH, 0, 0, cb, opaque);
}

static inline int fake_discard(struct block *b, uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	return accept(disk_of(b), OP_DISCARD, off, len, cb, opaque);
}

static inline int fake_write_zeroes(struct block *b, uint64_t off, uint64_t len, bool unmap, block_done cb, void *opaque)
{
	disk_of(b)->last_unmap = unmap;
	return accept(disk_of(b), OP_ZEROES, off, len, cb, opaque);
}

static inline void fake_submit(struct block *b)
{
	disk_of(b)->submits++;
}

static inline int fake_close(struct block *b)
{
	disk_of(b)->closes++;
	return 0;
}

static const struct block_ops fake_ops = {
	.readv = fake_readv,
	.writev = fake_writev,
	.flush = fake_flush,
	.discard = fake_discard,
	.write_zeroes = fake_write_zeroes,
	.submit = fake_submit,
	.close = fake_close,
};

static inline unsigned backend_calls(const struct env *e)
{
	unsigned n = 0;

	for (unsigned i = 0; i < OP_COUNT; i++)
		n += e->disk.calls[i];
	return n;
}

/* Delivers queued completions in order, outside the device lock (as the
 * event loop does); a completion may queue more. */
static inline void complete_all(struct env *e)
{
	while (e->disk.npending) {
		block_done cb = e->disk.pending[0].cb;
		void *opaque = e->disk.pending[0].opaque;
		int64_t result = e->disk.pending[0].result;

		memmove(&e->disk.pending[0], &e->disk.pending[1], --e->disk.npending * sizeof(e->disk.pending[0]));
		cb(opaque, result);
	}
}

/* ---- fake transport ------------------------------------------------------ */

static inline void t_signal_queue(struct virtio_dev *d, unsigned q)
{
	struct env *e = d->transport_priv;

	assert_int_equal(q, 0);
	e->sig_queue++;
}

static inline void t_signal_config(struct virtio_dev *d)
{
	struct env *e = d->transport_priv;

	e->sig_config++;
}

static const struct virtio_transport fake_transport = {
	.signal_queue = t_signal_queue,
	.signal_config = t_signal_config,
};

/* ---- guest side ---------------------------------------------------------- */

static inline void *gpa(struct env *e, uint64_t addr, uint64_t len)
{
	void *p = guest_mem_ptr(&e->m, addr, len);

	assert_non_null(p);
	return p;
}

static inline struct vring_used *used(struct env *e)
{
	return gpa(e, USED_GPA, 6 + 8ULL * QSIZE);
}

static inline uint16_t used_idx(struct env *e)
{
	return used(e)->idx;
}

/* Driver-side bring-up: one queue of QSIZE, VERSION_1, DRIVER_OK. */
static inline void bring_up(struct env *e)
{
	struct virtio_dev *d = e->dev;
	struct virtq *q = &d->vq[0];

	memset(gpa(e, DESC_GPA, USED_GPA + 0x1000 - DESC_GPA), 0, USED_GPA + 0x1000 - DESC_GPA);
	e->next_desc = 0;
	e->avail_idx = 0;
	pthread_mutex_lock(&d->lock);
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	d->driver_features = 1ULL << VIRTIO_F_VERSION_1;
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_true(d->status & VIRTIO_CONFIG_S_FEATURES_OK);
	q->size = QSIZE;
	q->desc_gpa = DESC_GPA;
	q->avail_gpa = AVAIL_GPA;
	q->used_gpa = USED_GPA;
	q->ready = true;
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
				     VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(virtio_ready(d));
	pthread_mutex_unlock(&d->lock);
}

static inline void reset_dev(struct env *e)
{
	pthread_mutex_lock(&e->dev->lock);
	virtio_set_status(e->dev, 0);
	pthread_mutex_unlock(&e->dev->lock);
}

static inline struct env *env_new(bool readonly)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	guest_mem_layout(&e->m, RAM, LAYOUT_MMIO_HOLE);
	e->m.host = aligned_alloc(4096, RAM);
	assert_non_null(e->m.host);
	memset(e->m.host, 0, RAM);
	e->next_data = DATA_GPA;
	e->disk.b = (struct block){ .ops = &fake_ops, .size = DISK_SIZE, .readonly = readonly };
	/* No event loop: with no rate limit the device never arms a timer. */
#ifdef CELLVM_UTIL_RATELIMIT_H /* virtio_blk_new takes a rate limit (NULL: none) */
	e->dev = virtio_blk_new(&e->m, NULL, &e->disk.b, DISK_ID, NULL, true, NULL);
#else
	e->dev = virtio_blk_new(&e->m, NULL, &e->disk.b, DISK_ID);
#endif
	assert_non_null(e->dev);
	e->dev->transport = &fake_transport;
	e->dev->transport_priv = e;
	bring_up(e);
	return e;
}

static inline int setup(void **state)
{
	*state = env_new(false);
	return 0;
}

static inline int setup_ro(void **state)
{
	*state = env_new(true);
	return 0;
}

static inline int teardown(void **state)
{
	struct env *e = *state;

	/* Every request the back-end took was completed (else it leaks). */
	assert_int_equal(e->disk.npending, 0);
	e->dev->ops->destroy(e->dev);
	assert_int_equal(e->disk.closes, 1);
	free(e->m.host);
	free(e);
	return 0;
}

/* Guest data area of len bytes filled with `fill`. */
static inline uint64_t alloc(struct env *e, uint64_t len, uint8_t fill)
{
	uint64_t at = e->next_data;

	e->next_data = (e->next_data + len + 15) & ~15ULL;
	assert_true(e->next_data < RAM);
	memset(gpa(e, at, len ? len : 1), fill, len);
	return at;
}

static inline uint64_t header(struct env *e, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = type, .ioprio = 0, .sector = sector };
	uint64_t at = alloc(e, sizeof(h), 0);

	memcpy(gpa(e, at, sizeof(h)), &h, sizeof(h));
	return at;
}

struct seg {
	uint64_t addr;
	uint32_t len;
	bool write;
};

/* Writes the chain into the descriptor table and makes it available. */
static inline uint16_t offer(struct env *e, const struct seg *s, unsigned n)
{
	uint16_t head = e->next_desc;
	struct vring_avail *a = gpa(e, AVAIL_GPA, 6 + 2ULL * QSIZE);

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % QSIZE);
		struct vring_desc d = {
			.addr = s[i].addr,
			.len = s[i].len,
			.flags = (uint16_t)((i + 1 < n ? VRING_DESC_F_NEXT : 0) | (s[i].write ? VRING_DESC_F_WRITE : 0)),
			.next = (uint16_t)((idx + 1) % QSIZE),
		};

		memcpy(gpa(e, DESC_GPA + 16ULL * idx, 16), &d, 16);
	}
	e->next_desc = (uint16_t)((head + n) % QSIZE);
	a->ring[e->avail_idx % QSIZE] = head;
	e->avail_idx++;
	__atomic_store_n(&a->idx, e->avail_idx, __ATOMIC_RELEASE);
	return head;
}

static inline void kick(struct env *e)
{
	pthread_mutex_lock(&e->dev->lock);
	e->dev->ops->notify(e->dev, 0);
	pthread_mutex_unlock(&e->dev->lock);
}

static inline uint8_t byte_at(struct env *e, uint64_t addr)
{
	return *(uint8_t *)gpa(e, addr, 1);
}

/* The used entry for the n-th completed request. */
static inline struct vring_used_elem used_elem(struct env *e, unsigned n)
{
	assert_true(n < used_idx(e));
	return used(e)->ring[n % QSIZE];
}

static inline void expect_used(struct env *e, unsigned n, uint16_t head, uint32_t len)
{
	struct vring_used_elem u = used_elem(e, n);

	if (u.id != head || u.len != len)
		fail_msg("used[%u] = { id %u, len %u }, want { id %u, len %u }", n, u.id, u.len, head, len);
}

/* A read or write of `len` bytes at `sector` in one data descriptor;
 * returns the status byte's address. */
static inline uint64_t rw_request(struct env *e, uint32_t type, uint64_t sector, uint32_t len, uint16_t *head)
{
	uint64_t st = alloc(e, 1, STATUS_UNTOUCHED), data = alloc(e, len, 0x33);
	struct seg s[] = {
		{ header(e, type, sector), 16, false },
		{ data, len, type == VIRTIO_BLK_T_IN },
		{ st, 1, true },
	};

	if (type == VIRTIO_BLK_T_OUT)
		for (uint32_t i = 0; i < len; i++)
			*(uint8_t *)gpa(e, data + i, 1) = pattern(i * 3);
	if (len)
		*head = offer(e, s, 3);
	else
		*head = offer(e, (struct seg[]){ s[0], s[2] }, 2);
	return st;
}

/* DISCARD / WRITE_ZEROES with the given ranges (16 bytes each). */
static inline uint64_t range_request(struct env *e, uint32_t type, const struct virtio_blk_discard_write_zeroes *r,
				     unsigned n, uint16_t *head)
{
	uint64_t st = alloc(e, 1, STATUS_UNTOUCHED), ranges = alloc(e, 16ULL * n, 0);

	memcpy(gpa(e, ranges, 16ULL * n), r, 16ULL * n);
	*head = offer(e,
		      (struct seg[]){ { header(e, type, 0), 16, false }, { ranges, 16 * n, false }, { st, 1, true } },
		      3);
	return st;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

#endif
