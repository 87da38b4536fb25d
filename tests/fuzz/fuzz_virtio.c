/* libFuzzer target: virtqueues as a hostile guest lays them out, driving
 * the virtio devices' request handling (src/virtio/queue.c, blk.c, net.c,
 * console.c, rng.c). Input: device (blk, net, console, rng), log2 of the
 * queue size (at most 16 entries), the driver's feature bits (low byte:
 * device bits 0-7; then EVENT_IDX, INDIRECT_DESC, and 0x400: the NIC
 * carries the MMDS at 169.254.169.254), the number of kick
 * rounds, then the first bytes of guest RAM (64 KiB),
 * which hold every queue's rings (0x200 bytes per queue) and whatever the
 * descriptors point at. The disk is 64 KiB in memory, completing after
 * the kick returns as the event loop would (a real raw image completes on
 * io_uring through a running event loop, which a fuzzer cannot wait for);
 * the NIC's back-end swallows what the guest sends and offers it two
 * frames a round; the console writes to /dev/null. */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <pthread.h>

#include "block/block.h"
#include "fuzz.h"
#include "mmds/stack.h"
#include "net/backend.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/device.h"
#include "virtio/net.h"
#include "virtio/rng.h"

#define RAM (64 * 1024)
#define DISK (64 * 1024)
#define MAX_PENDING 256

/* ---- an in-memory disk ---------------------------------------------------- */

static uint8_t disk_data[DISK];
static struct {
	block_done cb;
	void *opaque;
	int64_t result;
} pending[MAX_PENDING];
static unsigned npending;

static int later(uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	if (off > DISK || len > DISK - off)
		abort(); /* the device must check the range against the disk's size */
	if (npending == MAX_PENDING)
		return -EAGAIN;
	pending[npending].cb = cb;
	pending[npending].opaque = opaque;
	pending[npending++].result = (int64_t)len;
	return 0;
}

static int m_readv(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb, void *opaque)
{
	uint64_t at = off;

	(void)b;
	for (unsigned i = 0; i < n; at += iov[i++].iov_len)
		if (at <= DISK && iov[i].iov_len <= DISK - at)
			memcpy(iov[i].iov_base, disk_data + at, iov[i].iov_len);
	return later(off, at - off, cb, opaque);
}

static int m_writev(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb, void *opaque)
{
	uint64_t at = off;

	(void)b;
	for (unsigned i = 0; i < n; at += iov[i++].iov_len)
		if (at <= DISK && iov[i].iov_len <= DISK - at)
			memcpy(disk_data + at, iov[i].iov_base, iov[i].iov_len);
	return later(off, at - off, cb, opaque);
}

static int m_flush(struct block *b, block_done cb, void *opaque)
{
	(void)b;
	return later(0, 0, cb, opaque);
}

static int m_discard(struct block *b, uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	(void)b;
	return later(off, len, cb, opaque);
}

static int m_write_zeroes(struct block *b, uint64_t off, uint64_t len, bool unmap, block_done cb, void *opaque)
{
	(void)b;
	(void)unmap;
	return later(off, len, cb, opaque);
}

static void m_submit(struct block *b)
{
	(void)b;
}

static int m_close(struct block *b)
{
	(void)b;
	return 0;
}

static const struct block_ops mem_disk_ops = {
	.readv = m_readv, .writev = m_writev, .flush = m_flush, .discard = m_discard,
	.write_zeroes = m_write_zeroes, .submit = m_submit, .close = m_close,
};

/* Outside the device lock, in order; a completion may queue more. */
static void complete_all(void)
{
	while (npending) {
		block_done cb = pending[0].cb;
		void *opaque = pending[0].opaque;
		int64_t result = pending[0].result;

		memmove(&pending[0], &pending[1], --npending * sizeof(pending[0]));
		cb(opaque, result);
	}
}

/* ---- a back-end that takes every frame and has a few for the guest -------- */

static int n_send(struct net_backend *b, const struct iovec *iov, unsigned n)
{
	(void)b;
	(void)iov;
	(void)n;
	return 0;
}

/* Frames the back-end still has for the guest this round. */
static unsigned rx_frames;

/* A broadcast ARP frame behind a zero virtio-net header. */
static ssize_t n_recv(struct net_backend *b, uint8_t *buf, size_t cap)
{
	static const uint8_t frame[NET_HDR_LEN + 60] = {
		[NET_HDR_LEN] = 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06,
	};

	(void)b;
	if (!rx_frames || cap < sizeof(frame))
		return 0;
	rx_frames--;
	memcpy(buf, frame, sizeof(frame));
	return sizeof(frame);
}

static int n_offload(struct net_backend *b, unsigned flags)
{
	(void)b;
	(void)flags;
	return 0;
}

static void n_want(struct net_backend *b, bool rx, bool tx)
{
	(void)b;
	(void)rx;
	(void)tx;
}

static void n_close(struct net_backend *b)
{
	(void)b;
}

static const struct net_backend_ops sink_ops = {
	.send = n_send, .recv = n_recv, .set_offload = n_offload, .want = n_want, .close = n_close,
};
static struct net_backend be_of_net = { .ops = &sink_ops };

/* ---- transport ------------------------------------------------------------ */

static void t_signal_queue(struct virtio_dev *d, unsigned q)
{
	(void)d;
	(void)q;
}

static void t_signal_config(struct virtio_dev *d)
{
	(void)d;
}

static const struct virtio_transport transport = {
	.signal_queue = t_signal_queue,
	.signal_config = t_signal_config,
};

static struct virtio_dev *make(unsigned kind, const struct guest_mem *m)
{
	static struct block disk = { .ops = &mem_disk_ops, .size = DISK };
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };
	static int null_fd = -1;
	/* Disks of kind 4, 8, 12 (and so on) have 2, 3 or 4 request queues. */
	struct virtio_blk_queues queues = { .n = 1 + (kind / 4) % 4 };

	if (null_fd < 0)
		null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	switch (kind % 4) {
	case 0:
		return virtio_blk_new(m, NULL, &disk, "fuzz", NULL, true, &queues);
	case 1:
		return virtio_net_new(m, NULL, &be_of_net, mac, NULL, NULL);
	case 2:
		return virtio_console_new(m, NULL, null_fd);
	default:
		return virtio_rng_new(m, NULL, NULL);
	}
}

static void set_status(struct virtio_dev *d, uint8_t status)
{
	pthread_mutex_lock(&d->lock);
	virtio_set_status(d, status);
	pthread_mutex_unlock(&d->lock);
}

/* The driver's bring-up: features, every queue at its place, DRIVER_OK. */
static void bring_up(struct virtio_dev *d, uint16_t qsize, uint32_t features)
{
	const uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

	set_status(d, s);
	pthread_mutex_lock(&d->lock);
	d->driver_features = d->device_features & ((1ULL << VIRTIO_F_VERSION_1) | (features & 0xff) |
						   (features & 0x100 ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0) |
						   (features & 0x200 ? 1ULL << VIRTIO_RING_F_INDIRECT_DESC : 0));
	virtio_set_status(d, s | VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned i = 0; i < d->ops->num_queues && i < VIRTIO_MAX_QUEUES; i++) {
		struct virtq *q = &d->vq[i];

		q->size = qsize;
		q->desc_gpa = 0x200ULL * i;
		q->avail_gpa = 0x200ULL * i + 0x100;
		q->used_gpa = 0x200ULL * i + 0x140;
		q->ready = true;
	}
	virtio_set_status(d, s | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	pthread_mutex_unlock(&d->lock);
}

/* The MMDS on the NIC: frames to it are answered, not sent. */
static void with_mmds(struct virtio_dev *d)
{
	static struct mmds_store store;
	static struct event_loop loop;
	static bool ready;
	struct mmds_service svc = { &store, MMDS_V1, false };
	struct net_intercept *ic;

	if (!ready && (mmds_store_init(&store, "fuzz") || event_loop_init(&loop)))
		abort();
	ready = true;
	if (!(ic = mmds_stack_new(&svc, 0xa9fea9feu, &loop)))
		abort();
	virtio_net_set_intercept(d, ic);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem m;
	struct fuzz_in in = { data, size };
	unsigned kind = (unsigned)fuzz_take(&in, 1), rounds;
	uint16_t qsize = (uint16_t)(1u << (fuzz_take(&in, 1) % 5));
	uint32_t features = (uint32_t)fuzz_take(&in, 2);
	struct virtio_dev *d;

	rounds = 1 + (unsigned)fuzz_take(&in, 1) % 4;
	if (!m.host)
		fuzz_guest_init(&m, RAM);
	memset(m.host, 0, RAM);
	memcpy(m.host, in.p, in.left < RAM ? in.left : RAM);
	if (!(d = make(kind, &m)))
		return 0;
	d->transport = &transport;
	if (kind % 4 == 1 && (features & 0x400))
		with_mmds(d);
	bring_up(d, qsize, features);
	for (unsigned r = 0; r < rounds; r++) {
		if (kind % 4 == 1 && be_of_net.ready) {
			/* The back-end has frames: the receive path fills the guest's buffers. */
			rx_frames = 2;
			be_of_net.ready(be_of_net.nic, true, false);
			rx_frames = 0;
		}
		if (kind % 4 == 2)
			virtio_console_receive(d, (const uint8_t *)"fuzz\n", 5);
		for (unsigned q = 0; q < d->ops->num_queues && q < VIRTIO_MAX_QUEUES; q++) {
			pthread_mutex_lock(&d->lock);
			virtio_kick(d, q);
			pthread_mutex_unlock(&d->lock);
		}
		complete_all();
	}
	set_status(d, 0);
	complete_all();
	d->ops->destroy(d);
	return 0;
}
