/* virtio-blk (src/virtio/blk.c) against a fake block back-end and a fake
 * transport: request parsing and validation, what reaches the back-end,
 * status bytes and used-ring lengths, back-pressure (-EAGAIN), completions
 * that arrive after a reset, and a queue the guest broke. The guest is a
 * heap buffer, so ASan sees any stray access. Back-end completions are
 * delivered from the test after the kick returns (as the event loop would),
 * never from inside the block_ops call. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "helpers.h"
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

static uint8_t pattern(uint64_t pos)
{
	return (uint8_t)(pos ^ (pos >> 8) ^ 0x5a);
}

static struct fake_disk *disk_of(struct block *b)
{
	return (struct fake_disk *)b;
}

static uint64_t iov_total(const struct iovec *iov, unsigned n)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Records the call; returns the injected error, or queues the completion. */
static int accept(struct fake_disk *d, enum op op, uint64_t off, uint64_t len, block_done cb, void *opaque)
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

static int fake_readv(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb,
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

static int fake_writev(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb,
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

static int fake_flush(struct block *b, block_done cb, void *opaque)
{
	return accept(disk_of(b), OP_FLUSH, 0, 0, cb, opaque);
}

static int fake_discard(struct block *b, uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	return accept(disk_of(b), OP_DISCARD, off, len, cb, opaque);
}

static int fake_write_zeroes(struct block *b, uint64_t off, uint64_t len, bool unmap, block_done cb, void *opaque)
{
	disk_of(b)->last_unmap = unmap;
	return accept(disk_of(b), OP_ZEROES, off, len, cb, opaque);
}

static void fake_submit(struct block *b)
{
	disk_of(b)->submits++;
}

static void fake_close(struct block *b)
{
	disk_of(b)->closes++;
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

static unsigned backend_calls(const struct env *e)
{
	unsigned n = 0;

	for (unsigned i = 0; i < OP_COUNT; i++)
		n += e->disk.calls[i];
	return n;
}

/* Delivers queued completions in order, outside the device lock (as the
 * event loop does); a completion may queue more. */
static void complete_all(struct env *e)
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

static void t_signal_queue(struct virtio_dev *d, unsigned q)
{
	struct env *e = d->transport_priv;

	assert_int_equal(q, 0);
	e->sig_queue++;
}

static void t_signal_config(struct virtio_dev *d)
{
	struct env *e = d->transport_priv;

	e->sig_config++;
}

static const struct virtio_transport fake_transport = {
	.signal_queue = t_signal_queue,
	.signal_config = t_signal_config,
};

/* ---- guest side ---------------------------------------------------------- */

static void *gpa(struct env *e, uint64_t addr, uint64_t len)
{
	void *p = guest_mem_ptr(&e->m, addr, len);

	assert_non_null(p);
	return p;
}

static struct vring_used *used(struct env *e)
{
	return gpa(e, USED_GPA, 6 + 8ULL * QSIZE);
}

static uint16_t used_idx(struct env *e)
{
	return used(e)->idx;
}

/* Driver-side bring-up: one queue of QSIZE, VERSION_1, DRIVER_OK. */
static void bring_up(struct env *e)
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

static void reset_dev(struct env *e)
{
	pthread_mutex_lock(&e->dev->lock);
	virtio_set_status(e->dev, 0);
	pthread_mutex_unlock(&e->dev->lock);
}

static struct env *env_new(bool readonly)
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
	e->dev = virtio_blk_new(&e->m, NULL, &e->disk.b, DISK_ID, NULL);
#else
	e->dev = virtio_blk_new(&e->m, NULL, &e->disk.b, DISK_ID);
#endif
	assert_non_null(e->dev);
	e->dev->transport = &fake_transport;
	e->dev->transport_priv = e;
	bring_up(e);
	return e;
}

static int setup(void **state)
{
	*state = env_new(false);
	return 0;
}

static int setup_ro(void **state)
{
	*state = env_new(true);
	return 0;
}

static int teardown(void **state)
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
static uint64_t alloc(struct env *e, uint64_t len, uint8_t fill)
{
	uint64_t at = e->next_data;

	e->next_data = (e->next_data + len + 15) & ~15ULL;
	assert_true(e->next_data < RAM);
	memset(gpa(e, at, len ? len : 1), fill, len);
	return at;
}

static uint64_t header(struct env *e, uint32_t type, uint64_t sector)
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
static uint16_t offer(struct env *e, const struct seg *s, unsigned n)
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

static void kick(struct env *e)
{
	pthread_mutex_lock(&e->dev->lock);
	e->dev->ops->notify(e->dev, 0);
	pthread_mutex_unlock(&e->dev->lock);
}

static uint8_t byte_at(struct env *e, uint64_t addr)
{
	return *(uint8_t *)gpa(e, addr, 1);
}

/* The used entry for the n-th completed request. */
static struct vring_used_elem used_elem(struct env *e, unsigned n)
{
	assert_true(n < used_idx(e));
	return used(e)->ring[n % QSIZE];
}

static void expect_used(struct env *e, unsigned n, uint16_t head, uint32_t len)
{
	struct vring_used_elem u = used_elem(e, n);

	if (u.id != head || u.len != len)
		fail_msg("used[%u] = { id %u, len %u }, want { id %u, len %u }", n, u.id, u.len, head, len);
}

/* A read or write of `len` bytes at `sector` in one data descriptor;
 * returns the status byte's address. */
static uint64_t rw_request(struct env *e, uint32_t type, uint64_t sector, uint32_t len, uint16_t *head)
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
static uint64_t range_request(struct env *e, uint32_t type, const struct virtio_blk_discard_write_zeroes *r,
			      unsigned n, uint16_t *head)
{
	uint64_t st = alloc(e, 1, STATUS_UNTOUCHED), ranges = alloc(e, 16ULL * n, 0);

	memcpy(gpa(e, ranges, 16ULL * n), r, 16ULL * n);
	*head = offer(e,
		      (struct seg[]){ { header(e, type, 0), 16, false }, { ranges, 16 * n, false }, { st, 1, true } },
		      3);
	return st;
}

/* ---- tests --------------------------------------------------------------- */

static void test_features_and_config(void **state)
{
	struct env *e = *state;
	struct virtio_blk_config c;

	assert_true(e->dev->device_features & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(e->dev->device_features & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_true(e->dev->device_features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_true(e->dev->device_features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_false(e->dev->device_features & (1ULL << VIRTIO_BLK_F_RO));
	assert_true(e->dev->config_len >= offsetof(struct virtio_blk_config, max_discard_sectors));
	memcpy(&c, e->dev->config, sizeof(c) < e->dev->config_len ? sizeof(c) : e->dev->config_len);
	assert_int_equal(c.capacity, DISK_SECTORS);
	assert_int_equal(c.max_discard_seg, 1);
	assert_int_equal(c.max_write_zeroes_seg, 1);
}

static void test_read(void **state)
{
	struct env *e = *state;
	uint64_t d0 = alloc(e, 512, 0x33), d1 = alloc(e, 512, 0x33), st = alloc(e, 1, STATUS_UNTOUCHED);
	struct seg s[] = {
		{ header(e, VIRTIO_BLK_T_IN, 2), 16, false },
		{ d0, 512, true },
		{ d1, 512, true },
		{ st, 1, true },
	};
	uint16_t head = offer(e, s, 4);

	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 1);
	assert_int_equal(backend_calls(e), 1);
	assert_int_equal(e->disk.last_off, 2 * 512);
	assert_int_equal(e->disk.last_len, 1024);
	assert_int_equal(e->disk.last_n, 2);
	assert_true(e->disk.submits >= 1);
	/* In flight: nothing used yet. */
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);

	complete_all(e);
	assert_int_equal(used_idx(e), 1);
	expect_used(e, 0, head, 1024 + 1);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(byte_at(e, (i < 512 ? d0 : d1 - 512) + i), pattern(1024 + i));
	assert_true(e->sig_queue >= 1);
}

/* Data and status in one writable buffer. */
static void test_read_status_shares_buffer(void **state)
{
	struct env *e = *state;
	uint64_t buf = alloc(e, 513, STATUS_UNTOUCHED);
	uint16_t head = offer(e, (struct seg[]){ { header(e, VIRTIO_BLK_T_IN, 5), 16, false }, { buf, 513, true } }, 2);

	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 1);
	assert_int_equal(e->disk.last_off, 5 * 512);
	assert_int_equal(e->disk.last_len, 512);
	complete_all(e);
	expect_used(e, 0, head, 513);
	assert_int_equal(byte_at(e, buf + 512), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, buf), pattern(5 * 512));
}

static void test_write(void **state)
{
	struct env *e = *state;
	uint16_t head;
	uint64_t st = rw_request(e, VIRTIO_BLK_T_OUT, 3, 1024, &head);

	kick(e);
	assert_int_equal(e->disk.calls[OP_WRITE], 1);
	assert_int_equal(backend_calls(e), 1);
	assert_int_equal(e->disk.last_off, 3 * 512);
	assert_int_equal(e->disk.last_len, 1024);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(e->disk.written[i], pattern(i * 3));
	assert_int_equal(used_idx(e), 0);
	complete_all(e);
	expect_used(e, 0, head, 1);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
}

/* Header and data in the same readable buffer, header split across two. */
static void test_write_odd_layouts(void **state)
{
	struct env *e = *state;
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_OUT, .sector = 7 };
	uint64_t one = alloc(e, 16 + 512, 0x44), split = alloc(e, 16, 0), st = alloc(e, 1, STATUS_UNTOUCHED),
		 st2 = alloc(e, 1, STATUS_UNTOUCHED), data = alloc(e, 512, 0x55);

	memcpy(gpa(e, one, 16), &h, 16);
	offer(e, (struct seg[]){ { one, 16 + 512, false }, { st, 1, true } }, 2);
	kick(e);
	assert_int_equal(e->disk.calls[OP_WRITE], 1);
	assert_int_equal(e->disk.last_off, 7 * 512);
	assert_int_equal(e->disk.last_len, 512);
	assert_int_equal(e->disk.written[0], 0x44);
	assert_int_equal(e->disk.written[511], 0x44);

	h.sector = 9;
	memcpy(gpa(e, split, 16), &h, 16);
	offer(e, (struct seg[]){ { split, 8, false }, { split + 8, 8, false }, { data, 512, false }, { st2, 1, true } },
	      4);
	kick(e);
	assert_int_equal(e->disk.calls[OP_WRITE], 2);
	assert_int_equal(e->disk.last_off, 9 * 512);
	assert_int_equal(e->disk.written[0], 0x55);
	complete_all(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, st2), VIRTIO_BLK_S_OK);
}

static void test_flush(void **state)
{
	struct env *e = *state;
	uint64_t st = alloc(e, 1, STATUS_UNTOUCHED);
	uint16_t head = offer(e, (struct seg[]){ { header(e, VIRTIO_BLK_T_FLUSH, 0), 16, false }, { st, 1, true } }, 2);

	kick(e);
	assert_int_equal(e->disk.calls[OP_FLUSH], 1);
	assert_int_equal(backend_calls(e), 1);
	complete_all(e);
	expect_used(e, 0, head, 1);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
}

static void test_get_id(void **state)
{
	struct env *e = *state;
	uint64_t id = alloc(e, VIRTIO_BLK_ID_BYTES, 0x77), st = alloc(e, 1, STATUS_UNTOUCHED);
	uint16_t head = offer(e,
			      (struct seg[]){ { header(e, VIRTIO_BLK_T_GET_ID, 0), 16, false },
					      { id, VIRTIO_BLK_ID_BYTES, true },
					      { st, 1, true } },
			      3);
	char want[VIRTIO_BLK_ID_BYTES] = { 0 };

	kick(e);
	/* Answered by the device itself, at once. */
	assert_int_equal(backend_calls(e), 0);
	assert_int_equal(used_idx(e), 1);
	expect_used(e, 0, head, VIRTIO_BLK_ID_BYTES + 1);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	memcpy(want, DISK_ID, strlen(DISK_ID));
	assert_memory_equal(gpa(e, id, VIRTIO_BLK_ID_BYTES), want, VIRTIO_BLK_ID_BYTES);
	assert_true(e->sig_queue >= 1);
}

static void test_beyond_capacity(void **state)
{
	static const struct {
		uint64_t sector;
		uint32_t len;
	} bad[] = {
		{ DISK_SECTORS - 1, 1024 }, /* last sector plus one */
		{ DISK_SECTORS, 512 },
		{ DISK_SECTORS + 1, 0 },
		{ UINT64_MAX / 512, 512 },
		{ UINT64_MAX, 512 },
		{ 1ULL << 55, 512 }, /* sector * 512 wraps to 0 */
	};
	struct env *e = *state;
	unsigned n = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (uint32_t type = VIRTIO_BLK_T_IN; type <= VIRTIO_BLK_T_OUT; type++) {
			uint16_t head;
			uint64_t st = rw_request(e, type, bad[i].sector, bad[i].len, &head);

			kick(e);
			if (byte_at(e, st) != VIRTIO_BLK_S_IOERR)
				fail_msg("type %u sector %llu len %u: status %u", type,
					 (unsigned long long)bad[i].sector, bad[i].len, byte_at(e, st));
			assert_int_equal(used_idx(e), ++n);
			assert_int_equal(used_elem(e, n - 1).id, head);
		}
	}
	assert_int_equal(backend_calls(e), 0);

	/* The last sector itself is fine. */
	{
		uint16_t head;
		uint64_t st = rw_request(e, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 512, &head);

		kick(e);
		assert_int_equal(e->disk.calls[OP_READ], 1);
		assert_int_equal(e->disk.last_off, DISK_SIZE - 512);
		complete_all(e);
		assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	}
}

static void test_partial_sector_length(void **state)
{
	static const uint32_t lens[] = { 1, 100, 511, 513, 1000 };
	struct env *e = *state;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (uint32_t type = VIRTIO_BLK_T_IN; type <= VIRTIO_BLK_T_OUT; type++) {
			uint16_t head;
			uint64_t st = rw_request(e, type, 0, lens[i], &head);

			kick(e);
			if (byte_at(e, st) != VIRTIO_BLK_S_IOERR)
				fail_msg("type %u of %u bytes: status %u", type, lens[i], byte_at(e, st));
		}
	}
	assert_int_equal(backend_calls(e), 0);
}

static void test_short_header(void **state)
{
	static const uint32_t lens[] = { 0, 1, 8, 15 };
	struct env *e = *state;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint64_t st = alloc(e, 1, STATUS_UNTOUCHED);
		/* A flush whose header is cut short. */
		uint16_t head = offer(
			e, (struct seg[]){ { header(e, VIRTIO_BLK_T_FLUSH, 0), lens[i], false }, { st, 1, true } }, 2);

		kick(e);
		if (byte_at(e, st) != VIRTIO_BLK_S_IOERR)
			fail_msg("%u-byte header: status %u", lens[i], byte_at(e, st));
		expect_used(e, (unsigned)i, head, 1);
	}
	assert_int_equal(backend_calls(e), 0);
}

static void test_no_writable_byte(void **state)
{
	struct env *e = *state;
	uint64_t h = header(e, VIRTIO_BLK_T_IN, 0), data = alloc(e, 512, 0x66), empty = alloc(e, 16, 0x66);
	uint16_t h0, h1, h2;

	/* Header only. */
	h0 = offer(e, (struct seg[]){ { h, 16, false } }, 1);
	/* Header, data, but the "writable" part is empty. */
	h1 = offer(e, (struct seg[]){ { h, 16, false }, { data, 512, false }, { empty, 0, true } }, 3);
	/* A flush with a zero-length status buffer. */
	h2 = offer(e, (struct seg[]){ { header(e, VIRTIO_BLK_T_FLUSH, 0), 16, false }, { empty, 0, true } }, 2);
	kick(e);
	assert_int_equal(used_idx(e), 3);
	expect_used(e, 0, h0, 0);
	expect_used(e, 1, h1, 0);
	expect_used(e, 2, h2, 0);
	assert_int_equal(backend_calls(e), 0);
	assert_true(test_all_bytes(gpa(e, empty, 16), 16, 0x66));
	assert_true(virtio_ready(e->dev));
}

static void test_unknown_type(void **state)
{
	static const uint32_t types[] = { 99, VIRTIO_BLK_T_SCSI_CMD, VIRTIO_BLK_T_SECURE_ERASE, 0x7fffffff };
	struct env *e = *state;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint64_t st = alloc(e, 1, STATUS_UNTOUCHED);
		uint16_t head =
			offer(e, (struct seg[]){ { header(e, types[i], 0), 16, false }, { st, 1, true } }, 2);

		kick(e);
		if (byte_at(e, st) != VIRTIO_BLK_S_UNSUPP)
			fail_msg("type 0x%x: status %u", types[i], byte_at(e, st));
		expect_used(e, (unsigned)i, head, 1);
	}
	assert_int_equal(backend_calls(e), 0);
}

static void test_read_only_disk(void **state)
{
	struct env *e = *state;
	struct virtio_blk_discard_write_zeroes r = { .sector = 0, .num_sectors = 8 };
	uint16_t head;
	uint64_t st;

	assert_true(e->dev->device_features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(e->dev->device_features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_false(e->dev->device_features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));

	st = rw_request(e, VIRTIO_BLK_T_OUT, 0, 512, &head);
	kick(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
	st = range_request(e, VIRTIO_BLK_T_DISCARD, &r, 1, &head);
	kick(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
	st = range_request(e, VIRTIO_BLK_T_WRITE_ZEROES, &r, 1, &head);
	kick(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
	assert_int_equal(backend_calls(e), 0);
	assert_int_equal(used_idx(e), 3);

	/* Reads still work. */
	st = rw_request(e, VIRTIO_BLK_T_IN, 1, 512, &head);
	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 1);
	assert_int_equal(e->disk.calls[OP_WRITE], 0);
	complete_all(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
}

static void test_discard_and_write_zeroes(void **state)
{
	struct env *e = *state;
	struct virtio_blk_discard_write_zeroes r = { .sector = 8, .num_sectors = 16, .flags = 0 };
	uint16_t head;
	uint64_t st1, st2, st3;

	st1 = range_request(e, VIRTIO_BLK_T_DISCARD, &r, 1, &head);
	kick(e);
	assert_int_equal(e->disk.calls[OP_DISCARD], 1);
	assert_int_equal(e->disk.last_off, 8 * 512);
	assert_int_equal(e->disk.last_len, 16 * 512);

	r = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = DISK_SECTORS,
						       .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	st2 = range_request(e, VIRTIO_BLK_T_WRITE_ZEROES, &r, 1, &head);
	kick(e);
	assert_int_equal(e->disk.calls[OP_ZEROES], 1);
	assert_int_equal(e->disk.last_off, 0);
	assert_int_equal(e->disk.last_len, DISK_SIZE);
	assert_true(e->disk.last_unmap);

	r = (struct virtio_blk_discard_write_zeroes){ .sector = DISK_SECTORS - 1, .num_sectors = 1, .flags = 0 };
	st3 = range_request(e, VIRTIO_BLK_T_WRITE_ZEROES, &r, 1, &head);
	kick(e);
	assert_int_equal(e->disk.calls[OP_ZEROES], 2);
	assert_int_equal(e->disk.last_off, DISK_SIZE - 512);
	assert_int_equal(e->disk.last_len, 512);
	assert_false(e->disk.last_unmap);
	assert_int_equal(backend_calls(e), 3);

	complete_all(e);
	assert_int_equal(used_idx(e), 3);
	assert_int_equal(byte_at(e, st1), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, st2), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, st3), VIRTIO_BLK_S_OK);
	expect_used(e, 2, head, 1);
}

static void test_discard_invalid_ranges(void **state)
{
	static const struct {
		uint32_t type;
		struct virtio_blk_discard_write_zeroes r[2];
		unsigned n;
		uint8_t want; /* 0xff: IOERR or UNSUPP */
	} cases[] = {
		{ VIRTIO_BLK_T_DISCARD, { { 0, 0, 0 } }, 1, VIRTIO_BLK_S_IOERR },            /* no sectors */
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 0, 0, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		{ VIRTIO_BLK_T_DISCARD, { { DISK_SECTORS - 8, 16, 0 } }, 1, VIRTIO_BLK_S_IOERR }, /* runs past the end */
		{ VIRTIO_BLK_T_DISCARD, { { DISK_SECTORS, 1, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { UINT64_MAX, 1, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 1ULL << 55, 1, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		{ VIRTIO_BLK_T_DISCARD, { { 0, UINT32_MAX, 0 } }, 1, VIRTIO_BLK_S_IOERR },
		/* Flags: DISCARD takes none, WRITE_ZEROES only UNMAP. */
		{ VIRTIO_BLK_T_DISCARD, { { 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP } }, 1, VIRTIO_BLK_S_UNSUPP },
		{ VIRTIO_BLK_T_DISCARD, { { 0, 8, 2 } }, 1, 0xff },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 0, 8, 2 } }, 1, 0xff },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 0, 8, 0x80000001 } }, 1, 0xff },
		/* More than the one range we advertise. */
		{ VIRTIO_BLK_T_DISCARD, { { 0, 8, 0 }, { 16, 8, 0 } }, 2, 0xff },
		{ VIRTIO_BLK_T_WRITE_ZEROES, { { 0, 8, 0 }, { 16, 8, 0 } }, 2, 0xff },
	};
	struct env *e = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint16_t head;
		uint64_t st = range_request(e, cases[i].type, cases[i].r, cases[i].n, &head);
		uint8_t got;

		kick(e);
		got = byte_at(e, st);
		if (cases[i].want == 0xff ? got != VIRTIO_BLK_S_IOERR && got != VIRTIO_BLK_S_UNSUPP
					  : got != cases[i].want)
			fail_msg("case %zu (type %u, sector %llu, %u sectors, flags 0x%x, %u ranges): status %u", i,
				 cases[i].type, (unsigned long long)cases[i].r[0].sector, cases[i].r[0].num_sectors,
				 cases[i].r[0].flags, cases[i].n, got);
		expect_used(e, (unsigned)i, head, 1);
		if (backend_calls(e))
			fail_msg("case %zu reached the back-end", i);
	}
	/* A range given short (8 bytes) is malformed too. */
	{
		uint64_t st = alloc(e, 1, STATUS_UNTOUCHED), r = alloc(e, 8, 0);

		offer(e,
		      (struct seg[]){ { header(e, VIRTIO_BLK_T_DISCARD, 0), 16, false }, { r, 8, false }, { st, 1, true } },
		      3);
		kick(e);
		assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
		assert_int_equal(backend_calls(e), 0);
	}
}

static void test_back_end_error(void **state)
{
	struct env *e = *state;
	uint16_t head;
	uint64_t st = rw_request(e, VIRTIO_BLK_T_OUT, 0, 512, &head), st2;

	/* Refused at submission. */
	e->disk.next_rc = -EIO;
	kick(e);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_IOERR);
	expect_used(e, 0, head, 1);
	/* Failed on completion. */
	st2 = rw_request(e, VIRTIO_BLK_T_IN, 0, 512, &head);
	kick(e);
	assert_int_equal(e->disk.npending, 1);
	e->disk.pending[0].result = -EIO;
	complete_all(e);
	assert_int_equal(byte_at(e, st2), VIRTIO_BLK_S_IOERR);
	expect_used(e, 1, head, 513);
}

static void test_eagain_stays_queued(void **state)
{
	struct env *e = *state;
	uint16_t ha, hb;
	uint64_t sa = rw_request(e, VIRTIO_BLK_T_IN, 1, 512, &ha), sb;

	kick(e);
	assert_int_equal(e->disk.npending, 1); /* A in flight */

	sb = rw_request(e, VIRTIO_BLK_T_IN, 2, 512, &hb);
	e->disk.next_rc = -EAGAIN; /* the back-end is full */
	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 2);
	assert_int_equal(e->disk.npending, 1);
	/* B was neither completed nor consumed. */
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, sb), STATUS_UNTOUCHED);
	assert_int_equal(e->dev->vq[0].last_avail, 1);

	/* A's completion makes room: B is popped again and submitted. */
	complete_all(e);
	assert_int_equal(e->disk.calls[OP_READ], 3);
	assert_int_equal(e->disk.last_off, 2 * 512);
	assert_int_equal(used_idx(e), 2);
	expect_used(e, 0, ha, 513);
	expect_used(e, 1, hb, 513);
	assert_int_equal(byte_at(e, sa), VIRTIO_BLK_S_OK);
	assert_int_equal(byte_at(e, sb), VIRTIO_BLK_S_OK);
}

static void test_batch_one_submit(void **state)
{
	struct env *e = *state;
	uint16_t h[3];
	unsigned submits = e->disk.submits;

	for (unsigned i = 0; i < 3; i++)
		rw_request(e, VIRTIO_BLK_T_IN, i, 512, &h[i]);
	kick(e);
	assert_int_equal(e->disk.calls[OP_READ], 3);
	assert_int_equal(e->disk.submits, submits + 1);
	complete_all(e);
	for (unsigned i = 0; i < 3; i++)
		expect_used(e, i, h[i], 513);
}

static void test_reset_drops_late_completion(void **state)
{
	struct env *e = *state;
	uint16_t head;
	uint64_t st = rw_request(e, VIRTIO_BLK_T_IN, 4, 512, &head);
	unsigned sig;

	kick(e);
	assert_int_equal(e->disk.npending, 1);
	reset_dev(e);
	sig = e->sig_queue;
	complete_all(e); /* the back-end finishes after the driver reset */
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);
	assert_int_equal(e->sig_queue, sig);

	/* Also when the driver has brought the device up again meanwhile. */
	bring_up(e);
	st = rw_request(e, VIRTIO_BLK_T_IN, 4, 512, &head);
	kick(e);
	reset_dev(e);
	bring_up(e);
	complete_all(e);
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);

	/* The device still works. */
	st = rw_request(e, VIRTIO_BLK_T_IN, 4, 512, &head);
	kick(e);
	complete_all(e);
	assert_int_equal(used_idx(e), 1);
	expect_used(e, 0, head, 513);
	assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
}

static void test_broken_queue_needs_reset(void **state)
{
	struct env *e = *state;
	uint64_t h = header(e, VIRTIO_BLK_T_IN, 0);
	struct vring_desc loop = { .addr = h, .len = 16, .flags = VRING_DESC_F_NEXT, .next = 0 };
	struct vring_avail *a = gpa(e, AVAIL_GPA, 6 + 2ULL * QSIZE);
	uint32_t gen = e->dev->config_generation;

	/* Descriptor 0 chains to itself. */
	memcpy(gpa(e, DESC_GPA, 16), &loop, 16);
	a->ring[0] = 0;
	a->idx = 1;
	kick(e);
	assert_true(e->dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(e->dev->status & 0x40, 0x40);
	assert_false(virtio_ready(e->dev));
	assert_int_equal(e->sig_config, 1);
	assert_int_not_equal(e->dev->config_generation, gen);
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(backend_calls(e), 0);
	/* Said once. */
	kick(e);
	assert_int_equal(e->sig_config, 1);

	/* A reset brings it back. */
	reset_dev(e);
	assert_int_equal(e->dev->status, 0);
	bring_up(e);
	{
		uint16_t head;
		uint64_t st = rw_request(e, VIRTIO_BLK_T_IN, 0, 512, &head);

		kick(e);
		complete_all(e);
		assert_int_equal(byte_at(e, st), VIRTIO_BLK_S_OK);
	}
}

static void test_buffer_outside_ram_needs_reset(void **state)
{
	struct env *e = *state;
	uint64_t st = alloc(e, 1, STATUS_UNTOUCHED);

	offer(e,
	      (struct seg[]){ { header(e, VIRTIO_BLK_T_IN, 0), 16, false }, { RAM - 256, 512, true }, { st, 1, true } },
	      3);
	kick(e);
	assert_true(e->dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(e->sig_config, 1);
	assert_int_equal(backend_calls(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);
}

/* A completion that lands while the device is in NEEDS_RESET is dropped. */
static void test_completion_after_needs_reset(void **state)
{
	struct env *e = *state;
	uint16_t head;
	uint64_t st = rw_request(e, VIRTIO_BLK_T_IN, 0, 512, &head);

	kick(e);
	assert_int_equal(e->disk.npending, 1);
	pthread_mutex_lock(&e->dev->lock);
	virtio_needs_reset(e->dev, "test");
	pthread_mutex_unlock(&e->dev->lock);
	complete_all(e);
	assert_int_equal(used_idx(e), 0);
	assert_int_equal(byte_at(e, st), STATUS_UNTOUCHED);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_features_and_config),
		T(test_read),
		T(test_read_status_shares_buffer),
		T(test_write),
		T(test_write_odd_layouts),
		T(test_flush),
		T(test_get_id),
		T(test_beyond_capacity),
		T(test_partial_sector_length),
		T(test_short_header),
		T(test_no_writable_byte),
		T(test_unknown_type),
		cmocka_unit_test_setup_teardown(test_read_only_disk, setup_ro, teardown),
		T(test_discard_and_write_zeroes),
		T(test_discard_invalid_ranges),
		T(test_back_end_error),
		T(test_eagain_stays_queued),
		T(test_batch_one_submit),
		T(test_reset_drops_late_completion),
		T(test_broken_queue_needs_reset),
		T(test_buffer_outside_ram_needs_reset),
		T(test_completion_after_needs_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
