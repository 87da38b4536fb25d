/* Multi-queue virtio-blk (src/virtio/blk.c, VIRTIO_BLK_F_MQ) and its
 * adaptive polling: each request completes on the queue it came from and
 * interrupts that queue alone; what a guest may do wrong with queue
 * indices and num_queues is refused; the device state of N queues
 * survives a save and load; a polled queue takes requests without a kick
 * and turns kicks back on before it stops. The fake back-end and guest
 * RAM come from blk_fixture.h; each queue here has its own rings. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "blk_fixture.h"
#include "util/err.h"
#include "virtio/poll.h"
#include "vmm/event_loop.h"

#define NQ 4
/* Rings of queue q, above the data the fixture hands out. */
#define QDESC(q) (0x80000ULL + 0x3000ULL * (q))
#define QAVAIL(q) (QDESC(q) + 0x1000)
#define QUSED(q) (QDESC(q) + 0x2000)

struct mq {
	struct env e;
	unsigned nq;
	unsigned sig[VIRTIO_BLK_MAX_QUEUES];
	uint16_t next_desc[VIRTIO_BLK_MAX_QUEUES], avail_idx[VIRTIO_BLK_MAX_QUEUES];
	struct event_loop loop;
	bool has_loop;
};

static void mq_signal_queue(struct virtio_dev *d, unsigned q)
{
	struct mq *m = d->transport_priv;

	assert_true(q < m->nq);
	m->sig[q]++;
}

static void mq_signal_config(struct virtio_dev *d)
{
	(void)d;
}

static const struct virtio_transport mq_transport = {
	.signal_queue = mq_signal_queue,
	.signal_config = mq_signal_config,
};

static struct vring_used *qused(struct mq *m, unsigned q)
{
	return gpa(&m->e, QUSED(q), 6 + 8ULL * QSIZE);
}

static struct vring_avail *qavail(struct mq *m, unsigned q)
{
	return gpa(&m->e, QAVAIL(q), 6 + 2ULL * QSIZE);
}

/* Features (EVENT_IDX when asked), `enabled` queues of QSIZE, DRIVER_OK. */
static void mq_bring_up(struct mq *m, unsigned enabled, bool event_idx)
{
	struct virtio_dev *d = m->e.dev;

	for (unsigned q = 0; q < enabled; q++) {
		memset(gpa(&m->e, QDESC(q), 0x3000), 0, 0x3000);
		m->next_desc[q] = m->avail_idx[q] = 0;
	}
	pthread_mutex_lock(&d->lock);
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	d->driver_features = (1ULL << VIRTIO_F_VERSION_1) | (d->device_features & (1ULL << VIRTIO_BLK_F_MQ)) |
			     (event_idx ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0);
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned q = 0; q < enabled; q++) {
		d->vq[q].size = QSIZE;
		d->vq[q].desc_gpa = QDESC(q);
		d->vq[q].avail_gpa = QAVAIL(q);
		d->vq[q].used_gpa = QUSED(q);
		d->vq[q].ready = true;
	}
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
				     VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(virtio_ready(d));
	pthread_mutex_unlock(&d->lock);
}

static struct mq *mq_new(unsigned nq, uint32_t poll_us)
{
	struct mq *m = calloc(1, sizeof(*m));
	struct virtio_blk_queues q = { .n = nq, .poll_us = poll_us };

	assert_non_null(m);
	m->nq = nq;
	guest_mem_layout(&m->e.m, RAM, LAYOUT_MMIO_HOLE);
	m->e.m.host = aligned_alloc(4096, RAM);
	assert_non_null(m->e.m.host);
	memset(m->e.m.host, 0, RAM);
	m->e.next_data = DATA_GPA;
	m->e.disk.b = (struct block){ .ops = &fake_ops, .size = DISK_SIZE };
	if (poll_us) {
		assert_int_equal(event_loop_init(&m->loop), 0);
		m->has_loop = true;
	}
	m->e.dev = virtio_blk_new(&m->e.m, m->has_loop ? &m->loop : NULL, &m->e.disk.b, DISK_ID, NULL, true, &q);
	assert_non_null(m->e.dev);
	m->e.dev->transport = &mq_transport;
	m->e.dev->transport_priv = m;
	return m;
}

static void mq_free(struct mq *m)
{
	assert_int_equal(m->e.disk.npending, 0);
	m->e.dev->ops->destroy(m->e.dev);
	if (m->has_loop) {
		/* The device took its pollers with it. */
		assert_null(m->loop.pollers);
		event_loop_destroy(&m->loop);
	}
	free(m->e.m.host);
	free(m);
}

/* A 512-byte read of `sector` offered on queue q; returns its status byte. */
static uint64_t offer_read(struct mq *m, unsigned q, uint64_t sector, uint16_t *head)
{
	struct env *e = &m->e;
	uint64_t st = alloc(e, 1, STATUS_UNTOUCHED), data = alloc(e, 512, 0);
	struct seg s[] = { { header(e, VIRTIO_BLK_T_IN, sector), 16, false }, { data, 512, true }, { st, 1, true } };
	struct vring_avail *a = qavail(m, q);

	*head = m->next_desc[q];
	for (unsigned i = 0; i < 3; i++) {
		uint16_t idx = (uint16_t)((*head + i) % QSIZE);
		struct vring_desc d = {
			.addr = s[i].addr,
			.len = s[i].len,
			.flags = (uint16_t)((i < 2 ? VRING_DESC_F_NEXT : 0) | (s[i].write ? VRING_DESC_F_WRITE : 0)),
			.next = (uint16_t)((idx + 1) % QSIZE),
		};

		memcpy(gpa(e, QDESC(q) + 16ULL * idx, 16), &d, 16);
	}
	m->next_desc[q] = (uint16_t)((*head + 3) % QSIZE);
	a->ring[m->avail_idx[q] % QSIZE] = *head;
	__atomic_store_n(&a->idx, ++m->avail_idx[q], __ATOMIC_RELEASE);
	return st;
}

static void mq_kick(struct mq *m, unsigned q)
{
	pthread_mutex_lock(&m->e.dev->lock);
	virtio_kick(m->e.dev, q);
	pthread_mutex_unlock(&m->e.dev->lock);
}

static void test_offers_mq_and_num_queues(void **state)
{
	struct mq *m = mq_new(NQ, 0), *one = mq_new(1, 0);
	struct virtio_blk_config c;

	(void)state;
	assert_int_equal(m->e.dev->ops->num_queues, NQ);
	assert_true(m->e.dev->device_features & (1ULL << VIRTIO_BLK_F_MQ));
	virtio_config_access(m->e.dev, 0, (uint8_t *)&c, sizeof(c), false);
	assert_int_equal(c.num_queues, NQ);
	/* One queue looks as it did before queues= (snapshots compare features). */
	assert_int_equal(one->e.dev->ops->num_queues, 1);
	assert_false(one->e.dev->device_features & (1ULL << VIRTIO_BLK_F_MQ));
	mq_free(m);
	mq_free(one);
}

static void test_requests_complete_on_their_own_queue(void **state)
{
	struct mq *m = mq_new(NQ, 0);
	uint16_t head[NQ];
	uint64_t st[NQ];
	unsigned before[NQ];

	(void)state;
	mq_bring_up(m, NQ, false);
	/* Queue q gets q + 1 requests, all in flight at once. */
	for (unsigned q = 0; q < NQ; q++) {
		for (unsigned k = 0; k <= q; k++)
			st[q] = offer_read(m, q, q * 8 + k, &head[q]);
		mq_kick(m, q);
	}
	assert_int_equal(m->e.disk.calls[OP_READ], 1 + 2 + 3 + 4);
	for (unsigned q = 0; q < NQ; q++)
		assert_int_equal(qused(m, q)->idx, 0);
	memcpy(before, m->sig, sizeof(before));
	complete_all(&m->e);
	for (unsigned q = 0; q < NQ; q++) {
		struct vring_used *u = qused(m, q);

		assert_int_equal(u->idx, q + 1);
		/* The last request of queue q was its last descriptor chain. */
		assert_int_equal(u->ring[q].id, head[q]);
		assert_int_equal(u->ring[q].len, 513);
		assert_int_equal(byte_at(&m->e, st[q]), VIRTIO_BLK_S_OK);
		/* Every completion interrupts its own queue, none another. */
		assert_int_equal(m->sig[q] - before[q], q + 1);
	}
	mq_free(m);
}

static void test_back_end_full_retries_every_stalled_queue(void **state)
{
	struct mq *m = mq_new(NQ, 0);
	uint16_t head;

	(void)state;
	mq_bring_up(m, NQ, false);
	offer_read(m, 0, 0, &head);
	mq_kick(m, 0);
	/* Queues 2 and 3 find the back-end full. */
	for (unsigned q = 2; q < NQ; q++) {
		offer_read(m, q, q, &head);
		m->e.disk.next_rc = -EAGAIN;
		mq_kick(m, q);
	}
	assert_int_equal(m->e.disk.npending, 1);
	/* Queue 0's completion makes room: both are taken again. */
	complete_all(&m->e);
	for (unsigned q = 2; q < NQ; q++)
		assert_int_equal(qused(m, q)->idx, 1);
	assert_int_equal(qused(m, 0)->idx, 1);
	assert_int_equal(qused(m, 1)->idx, 0);
	mq_free(m);
}

static void test_hostile_queue_index_and_num_queues(void **state)
{
	struct mq *m = mq_new(NQ, 0);
	struct virtio_blk_config c;
	uint16_t forged = 0xffff, head;
	struct virtio_blk_queues bad[] = { { 0, 0 }, { VIRTIO_BLK_MAX_QUEUES + 1, 0 }, { 1, VQ_POLL_MAX_US + 1 } };

	(void)state;
	/* The driver enables two of the four queues (fewer CPUs than queues). */
	mq_bring_up(m, 2, false);
	offer_read(m, 3, 0, &head);
	/* Kicks of queues that are not enabled, or that do not exist. */
	for (unsigned q = 2; q < 300; q++)
		mq_kick(m, q);
	mq_kick(m, UINT32_MAX);
	assert_int_equal(backend_calls(&m->e), 0);
	assert_true(virtio_ready(m->e.dev));
	/* num_queues is the device's: a guest writing it changes nothing. */
	virtio_config_access(m->e.dev, offsetof(struct virtio_blk_config, num_queues), (uint8_t *)&forged, 2, true);
	virtio_config_access(m->e.dev, 0, (uint8_t *)&c, sizeof(c), false);
	assert_int_equal(c.num_queues, NQ);
	/* Reads past the config space read as zero. */
	virtio_config_access(m->e.dev, sizeof(c), (uint8_t *)&forged, 2, false);
	assert_int_equal(forged, 0);
	/* Out-of-range queue counts and poll windows make no device. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_null(virtio_blk_new(&m->e.m, NULL, &m->e.disk.b, DISK_ID, NULL, true, &bad[i]));
	mq_free(m);
}

/* Device state of NQ queues, after some traffic on each. */
static void save_after_traffic(struct mq *m, struct snap_writer *w)
{
	uint16_t head;

	mq_bring_up(m, NQ, true);
	for (unsigned q = 0; q < NQ; q++) {
		for (unsigned k = 0; k <= q; k++)
			offer_read(m, q, k, &head);
		mq_kick(m, q);
	}
	complete_all(&m->e);
	snap_writer_init(w);
	assert_int_equal(virtio_dev_save(m->e.dev, w), 0);
}

static void test_save_load_round_trip_with_n_queues(void **state)
{
	struct mq *a = mq_new(NQ, 0), *b = mq_new(NQ, 0), *fewer = mq_new(NQ - 1, 0);
	struct snap_writer w;
	struct snap_reader r;

	(void)state;
	save_after_traffic(a, &w);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_dev_load(b->e.dev, &r), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	for (unsigned q = 0; q < NQ; q++) {
		const struct virtq *x = &a->e.dev->vq[q], *y = &b->e.dev->vq[q];

		assert_true(y->ready);
		assert_int_equal(y->size, x->size);
		assert_int_equal(y->desc_gpa, QDESC(q));
		assert_int_equal(y->avail_gpa, QAVAIL(q));
		assert_int_equal(y->used_gpa, QUSED(q));
		assert_true(y->event_idx);
		assert_int_equal(y->last_avail, q + 1);
		assert_int_equal(y->used_idx, x->used_idx);
		assert_int_equal(y->signalled, x->signalled);
	}
	assert_int_equal(b->e.dev->status, a->e.dev->status);
	/* The restored device goes on where it was, on its own queues: b
	 * shares no RAM with a, so its rings are copied over first. */
	memcpy(b->e.m.host, a->e.m.host, RAM);
	memcpy(b->avail_idx, a->avail_idx, sizeof(b->avail_idx));
	memcpy(b->next_desc, a->next_desc, sizeof(b->next_desc));
	b->e.next_data = a->e.next_data;
	assert_int_equal(virtio_dev_resume(b->e.dev), 0);
	for (unsigned q = 0; q < NQ; q++) {
		uint16_t head;

		offer_read(b, q, 0, &head);
		mq_kick(b, q);
	}
	complete_all(&b->e);
	for (unsigned q = 0; q < NQ; q++)
		assert_int_equal(qused(b, q)->idx, q + 2);
	/* A device with another number of queues refuses the state. */
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_dev_load(fewer->e.dev, &r), CV_EINPUT);
	assert_non_null(strstr(r.bad, "number of queues"));
	snap_writer_free(&w);
	mq_free(a);
	mq_free(b);
	mq_free(fewer);
}

/* What the driver of a queue would decide after adding a buffer. */
static bool driver_would_kick(struct mq *m, unsigned q)
{
	struct virtq *vq = &m->e.dev->vq[q];
	uint16_t now = qavail(m, q)->idx, avail_event;

	memcpy(&avail_event, &qused(m, q)->ring[QSIZE], sizeof(avail_event));

	if (vq->event_idx)
		return vring_need_event(avail_event, now, (uint16_t)(now - 1));
	return !(qused(m, q)->flags & VRING_USED_F_NO_NOTIFY);
}

static void run_until_idle(struct mq *m)
{
	/* Each round looks at the ring; the window is short. */
	for (unsigned i = 0; event_loop_polling(&m->loop); i++) {
		assert_int_equal(event_loop_run_once(&m->loop, 0), 0);
		assert_true(i < 100000000);
	}
}

static void polled_queue(bool event_idx)
{
	struct mq *m = mq_new(2, VQ_POLL_MAX_US);
	uint16_t head;

	mq_bring_up(m, 2, event_idx);
	offer_read(m, 1, 0, &head);
	mq_kick(m, 1);
	assert_false(event_loop_polling(&m->loop));
	complete_all(&m->e);
	/* After the completion queue 1 is polled, its kicks off; queue 0
	 * still waits for kicks. */
	assert_true(event_loop_polling(&m->loop));
	assert_true(m->e.dev->vq[1].polling);
	assert_false(m->e.dev->vq[0].polling);
	offer_read(m, 1, 1, &head);
	assert_false(driver_would_kick(m, 1));
	offer_read(m, 0, 1, &head);
	assert_true(driver_would_kick(m, 0));
	/* No kick: the loop's round takes queue 1's request, not queue 0's. */
	assert_int_equal(event_loop_run_once(&m->loop, 0), 0);
	assert_int_equal(m->e.disk.calls[OP_READ], 2);
	assert_int_equal(m->e.dev->vq[0].last_avail, 0);
	complete_all(&m->e);
	assert_int_equal(qused(m, 1)->idx, 2);
	mq_kick(m, 0);
	complete_all(&m->e);
	mq_free(m);
}

static void test_polled_queue_takes_requests_without_a_kick(void **state)
{
	(void)state;
	polled_queue(false);
	polled_queue(true);
}

static void test_polling_ends_with_kicks_on(void **state)
{
	struct mq *m = mq_new(1, 1);
	uint16_t head;

	(void)state;
	for (int event_idx = 0; event_idx < 2; event_idx++) {
		mq_bring_up(m, 1, event_idx);
		offer_read(m, 0, 0, &head);
		mq_kick(m, 0);
		complete_all(&m->e);
		assert_true(event_loop_polling(&m->loop));
		run_until_idle(m);
		/* The window is over: the next buffer kicks. */
		assert_false(m->e.dev->vq[0].polling);
		offer_read(m, 0, 1, &head);
		assert_true(driver_would_kick(m, 0));
		mq_kick(m, 0);
		complete_all(&m->e);
		run_until_idle(m);
		assert_int_equal(qused(m, 0)->idx, 2);
		reset_dev(&m->e);
	}
	mq_free(m);
}

static void test_reset_while_polling(void **state)
{
	struct mq *m = mq_new(1, VQ_POLL_MAX_US);
	uint16_t head;

	(void)state;
	mq_bring_up(m, 1, false);
	offer_read(m, 0, 0, &head);
	mq_kick(m, 0);
	complete_all(&m->e);
	assert_true(event_loop_polling(&m->loop));
	/* The rings are gone: the poller stops without touching them. */
	reset_dev(&m->e);
	assert_int_equal(event_loop_run_once(&m->loop, 0), 0);
	assert_false(event_loop_polling(&m->loop));
	mq_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offers_mq_and_num_queues),
		cmocka_unit_test(test_requests_complete_on_their_own_queue),
		cmocka_unit_test(test_back_end_full_retries_every_stalled_queue),
		cmocka_unit_test(test_hostile_queue_index_and_num_queues),
		cmocka_unit_test(test_save_load_round_trip_with_n_queues),
		cmocka_unit_test(test_polled_queue_takes_requests_without_a_kick),
		cmocka_unit_test(test_polling_ends_with_kicks_on),
		cmocka_unit_test(test_reset_while_polling),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
