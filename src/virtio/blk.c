#include "virtio/blk.h"

#include <errno.h>
#include <linux/virtio_blk.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/err.h"
#include "util/iov.h"
#include "util/ratelimit.h"
#include "virtio/poll.h"

#define BLK_QUEUE_SIZE 256
#define BLK_SEG_MAX 254
/* Data segments plus the header and status buffers. */
#define BLK_MAX_IOV (BLK_SEG_MAX + 2)
#define SECTOR 512ULL
#define MAX_DISCARD_SECTORS (UINT32_MAX / SECTOR)

struct virtio_blk;

/* One request queue and how it is served. */
struct blk_queue {
	struct virtio_blk *blk;
	unsigned idx;
	bool stalled; /* the back-end was full: retry on the next completion */
	struct vq_poll poll;
	struct event_poller poller;
	bool poller_added;
};

struct blk_req {
	struct virtio_blk *blk;
	struct blk_queue *queue;
	struct blk_req *next_free;
	uint16_t head;
	uint32_t generation; /* device resets since; stale completions are dropped */
	uint8_t *status;
	uint32_t in_len;     /* bytes the device writes, reported in the used ring */
	struct virtio_blk_discard_write_zeroes range;
	struct iovec out[BLK_MAX_IOV], in[BLK_MAX_IOV];
	struct iovec data[BLK_MAX_IOV];
	unsigned ndata;
};

struct virtio_blk {
	struct virtio_dev dev;
	struct virtio_ops ops; /* num_queues is the disk's queues= */
	struct virtio_blk_config config;
	struct block *disk;
	char id[VIRTIO_BLK_ID_BYTES];
	uint32_t generation;
	struct ratelimit limit;
	struct blk_req *free_list;
	struct blk_queue q[VIRTIO_BLK_MAX_QUEUES];
};

static void kick_all(struct virtio_blk *b)
{
	for (unsigned i = 0; i < b->ops.num_queues; i++)
		virtio_kick(&b->dev, i);
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static struct blk_req *req_get(struct virtio_blk *b)
{
	struct blk_req *r = b->free_list;

	if (r) {
		b->free_list = r->next_free;
		return r;
	}
	r = malloc(sizeof(*r));
	if (r)
		r->blk = b;
	return r;
}

static void req_put(struct blk_req *r)
{
	r->next_free = r->blk->free_list;
	r->blk->free_list = r;
}

static void complete(struct blk_req *r, uint8_t status)
{
	struct virtio_blk *b = r->blk;

	if (r->generation == b->generation && virtio_ready(&b->dev)) {
		if (r->status)
			*r->status = status;
		virtq_push(&b->dev.vq[r->queue->idx], r->head, r->in_len);
	}
	req_put(r);
}

static void on_done(void *opaque, int64_t result)
{
	struct blk_req *r = opaque;
	struct virtio_blk *b = r->blk;
	struct blk_queue *bq = r->queue;

	pthread_mutex_lock(&b->dev.lock);
	complete(r, result < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
	/* After a reset the queue is unmapped: nothing was pushed, and
	 * there are no rings to look at. */
	if (virtio_ready(&b->dev) && b->dev.vq[bq->idx].ready) {
		virtio_signal_used(&b->dev, bq->idx);
		if (bq->poller_added && vq_poll_begin(&bq->poll, now_ns()))
			event_poller_start(&bq->poller);
	}
	/* The back-end is shared: room freed here is room for any queue. */
	for (unsigned i = 0; i < b->ops.num_queues; i++) {
		if (b->q[i].stalled) {
			b->q[i].stalled = false;
			virtio_kick(&b->dev, i);
		}
	}
	pthread_mutex_unlock(&b->dev.lock);
}

/* The event loop's round while queue bq is polled: false when it is over. */
static bool on_poll(void *opaque)
{
	struct blk_queue *bq = opaque;
	struct virtio_dev *dev = &bq->blk->dev;
	bool more;

	pthread_mutex_lock(&dev->lock);
	/* A broken device is not looked at; its queue is reset later. */
	if (!virtio_ready(dev))
		dev->vq[bq->idx].polling = false;
	else if (vq_poll_step(&bq->poll, now_ns()) == VQ_POLL_WORK)
		virtio_kick(dev, bq->idx);
	more = vq_poll_active(&bq->poll);
	pthread_mutex_unlock(&dev->lock);
	return more;
}

/* The status byte is the last byte the device may write; NULL if none. */
static uint8_t *status_byte(const struct virtq_req *q)
{
	for (int i = (int)q->nin - 1; i >= 0; i--)
		if (q->in[i].iov_len)
			return (uint8_t *)q->in[i].iov_base + q->in[i].iov_len - 1;
	return NULL;
}

/* Points r->data at the data between the header and the status byte. */
static void split_data(struct blk_req *r, const struct virtq_req *q, bool data_in)
{
	if (data_in)
		r->ndata = iov_slice(q->in, q->nin, 0, q->in_len - 1, r->data, BLK_MAX_IOV);
	else
		r->ndata = iov_slice(q->out, q->nout, sizeof(struct virtio_blk_outhdr),
				     q->out_len - sizeof(struct virtio_blk_outhdr), r->data, BLK_MAX_IOV);
}

static bool in_range(const struct virtio_blk *b, uint64_t sector, uint64_t bytes)
{
	uint64_t sectors = b->disk->size / SECTOR;

	return bytes % SECTOR == 0 && sector <= sectors && bytes / SECTOR <= sectors - sector;
}

/* Starts one request; returns the status if it finished at once, or -1 if
 * it is in flight, -EAGAIN if the back-end is full (retry later). */
static int start(struct virtio_blk *b, struct blk_req *r, const struct virtq_req *q)
{
	struct virtio_blk_outhdr hdr;
	struct block *d = b->disk;
	bool data_in;
	int rc;

	r->status = status_byte(q);
	r->in_len = r->status ? 1 : 0;
	if (!r->status || q->out_len < sizeof(hdr))
		return VIRTIO_BLK_S_IOERR;
	iov_to_buf(q->out, q->nout, 0, &hdr, sizeof(hdr));
	data_in = hdr.type == VIRTIO_BLK_T_IN || hdr.type == VIRTIO_BLK_T_GET_ID;
	split_data(r, q, data_in);
	if (data_in)
		r->in_len = (uint32_t)q->in_len;

	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (!in_range(b, hdr.sector, iov_total(r->data, r->ndata)))
			return VIRTIO_BLK_S_IOERR;
		if (hdr.type == VIRTIO_BLK_T_OUT && d->readonly)
			return VIRTIO_BLK_S_IOERR;
		if (!iov_total(r->data, r->ndata))
			return VIRTIO_BLK_S_OK;
		rc = hdr.type == VIRTIO_BLK_T_IN
			     ? d->ops->readv(d, hdr.sector * SECTOR, r->data, r->ndata, on_done, r)
			     : d->ops->writev(d, hdr.sector * SECTOR, r->data, r->ndata, on_done, r);
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (d->readonly)
			return VIRTIO_BLK_S_OK;
		rc = d->ops->flush(d, on_done, r);
		break;
	case VIRTIO_BLK_T_GET_ID:
		iov_from_buf(r->data, r->ndata, 0, b->id, sizeof(b->id));
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		/* We advertise one range per request. */
		if (d->readonly || iov_total(r->data, r->ndata) != sizeof(r->range))
			return VIRTIO_BLK_S_IOERR;
		iov_to_buf(r->data, r->ndata, 0, &r->range, sizeof(r->range));
		if (!r->range.num_sectors || r->range.num_sectors > MAX_DISCARD_SECTORS ||
		    !in_range(b, r->range.sector, (uint64_t)r->range.num_sectors * SECTOR) ||
		    (r->range.flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
		    (hdr.type == VIRTIO_BLK_T_DISCARD && r->range.flags))
			return hdr.type == VIRTIO_BLK_T_DISCARD && r->range.flags ? VIRTIO_BLK_S_UNSUPP
										  : VIRTIO_BLK_S_IOERR;
		rc = hdr.type == VIRTIO_BLK_T_DISCARD
			     ? d->ops->discard(d, r->range.sector * SECTOR, r->range.num_sectors * SECTOR, on_done, r)
			     : d->ops->write_zeroes(d, r->range.sector * SECTOR, r->range.num_sectors * SECTOR,
						    r->range.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, on_done, r);
		break;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (rc == -EAGAIN)
		return -EAGAIN;
	return rc < 0 ? VIRTIO_BLK_S_IOERR : -1;
}

static void blk_notify(struct virtio_dev *dev, unsigned qi)
{
	struct virtio_blk *b = dev->priv;
	struct virtq_req vr;
	struct blk_req *r;
	int st;

	/* Without a disk (being switched) requests wait in the ring. */
	if (!b->disk)
		return;
	/* Over its rate limit the queue is left as it is until the
	 * limiter's timer calls back (on_limit_resume). */
	while (ratelimit_admit(&b->limit) && (r = req_get(b))) {
		if (!virtio_pop(dev, qi, &vr, r->out, r->in, BLK_MAX_IOV)) {
			req_put(r);
			break;
		}
		r->head = vr.head;
		r->queue = &b->q[qi];
		r->generation = b->generation;
		st = start(b, r, &vr);
		if (st == -EAGAIN) {
			/* The back-end is full; its completions kick us again. */
			virtq_unpop(&dev->vq[qi]);
			req_put(r);
			b->q[qi].stalled = true;
			break;
		}
		/* Bytes moved: the chain less the header and status byte. */
		ratelimit_charge(&b->limit, vr.out_len + vr.in_len > sizeof(struct virtio_blk_outhdr) + 1
						    ? vr.out_len + vr.in_len - sizeof(struct virtio_blk_outhdr) - 1
						    : 0);
		if (st >= 0)
			complete(r, (uint8_t)st);
	}
	b->disk->ops->submit(b->disk);
	virtio_signal_used(dev, qi);
}

static void on_limit_resume(void *opaque)
{
	struct virtio_blk *b = opaque;

	pthread_mutex_lock(&b->dev.lock);
	kick_all(b);
	pthread_mutex_unlock(&b->dev.lock);
}

static void blk_reset(struct virtio_dev *dev)
{
	struct virtio_blk *b = dev->priv;

	b->generation++;
	ratelimit_reset(&b->limit);
	for (unsigned i = 0; i < b->ops.num_queues; i++)
		b->q[i].stalled = false;
}

static void blk_destroy(struct virtio_dev *dev)
{
	struct virtio_blk *b = dev->priv;

	if (b->disk && b->disk->ops->close(b->disk))
		cv_warn("virtio-blk: closing disk '%s' failed", b->id);
	ratelimit_destroy(&b->limit);
	for (unsigned i = 0; i < b->ops.num_queues; i++)
		if (b->q[i].poller_added)
			event_poller_del(&b->q[i].poller);
	while (b->free_list) {
		struct blk_req *r = b->free_list;

		b->free_list = r->next_free;
		free(r);
	}
	virtio_dev_destroy(dev);
	free(b);
}

struct block *virtio_blk_detach(struct virtio_dev *dev)
{
	struct virtio_blk *b = dev->priv;
	struct block *d;

	pthread_mutex_lock(&dev->lock);
	d = b->disk;
	b->disk = NULL;
	pthread_mutex_unlock(&dev->lock);
	return d;
}

struct block *virtio_blk_disk(struct virtio_dev *dev)
{
	return ((struct virtio_blk *)dev->priv)->disk;
}

void virtio_blk_attach(struct virtio_dev *dev, struct block *disk)
{
	struct virtio_blk *b = dev->priv;
	bool resized;

	pthread_mutex_lock(&dev->lock);
	b->disk = disk;
	resized = b->config.capacity != disk->size / SECTOR;
	b->config.capacity = disk->size / SECTOR;
	if (resized)
		virtio_config_changed(dev);
	kick_all(b);
	pthread_mutex_unlock(&dev->lock);
}

int virtio_blk_set_limit(struct virtio_dev *dev, const struct ratelimit_config *c, unsigned which)
{
	struct virtio_blk *b = dev->priv;
	int rc;

	pthread_mutex_lock(&dev->lock);
	if (ratelimit_update(&b->limit, c, which, &rc))
		kick_all(b);
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

uint64_t virtio_blk_throttled(struct virtio_dev *dev)
{
	return ((struct virtio_blk *)dev->priv)->limit.throttled;
}

struct virtio_dev *virtio_blk_new(const struct guest_mem *mem, struct event_loop *loop, struct block *disk,
				  const char *id, const struct ratelimit_config *limit, bool flush,
				  const struct virtio_blk_queues *queues)
{
	struct virtio_blk *b;
	unsigned nq = queues ? queues->n : 1;
	uint64_t features;

	if (nq < 1 || nq > VIRTIO_BLK_MAX_QUEUES || (queues && queues->poll_us > VQ_POLL_MAX_US)) {
		cv_err("virtio-blk: %u queues polled for %u us (1..%d queues, 0..%d us)", nq, queues ? queues->poll_us : 0,
		       VIRTIO_BLK_MAX_QUEUES, VQ_POLL_MAX_US);
		return NULL;
	}
	if (!(b = calloc(1, sizeof(*b)))) {
		cv_err("out of memory");
		return NULL;
	}
	b->ops = (struct virtio_ops){
		.name = "blk",
		.device_id = 2,
		.num_queues = nq,
		.queue_max = BLK_QUEUE_SIZE,
		.notify = blk_notify,
		.reset = blk_reset,
		.destroy = blk_destroy,
	};
	/* One queue offers no MQ: the device a snapshot of before queues=
	 * existed saw, feature for feature. */
	features = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
			(flush ? 1ULL << VIRTIO_BLK_F_FLUSH : 0) | (nq > 1 ? 1ULL << VIRTIO_BLK_F_MQ : 0) |
			(disk->readonly ? 1ULL << VIRTIO_BLK_F_RO
					: (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	b->disk = disk;
	b->config.num_queues = (uint16_t)nq;
	strncpy(b->id, id ? id : "", sizeof(b->id));
	b->config.capacity = disk->size / SECTOR;
	b->config.seg_max = BLK_SEG_MAX;
	b->config.blk_size = SECTOR;
	b->config.max_discard_sectors = MAX_DISCARD_SECTORS;
	b->config.max_discard_seg = 1;
	b->config.discard_sector_alignment = 4096 / SECTOR;
	b->config.max_write_zeroes_sectors = MAX_DISCARD_SECTORS;
	b->config.max_write_zeroes_seg = 1;
	b->config.write_zeroes_may_unmap = 1;
	if (ratelimit_init(&b->limit, limit, loop, on_limit_resume, b) ||
	    virtio_dev_init(&b->dev, &b->ops, b, features, (uint8_t *)&b->config, sizeof(b->config), mem, loop)) {
		ratelimit_destroy(&b->limit);
		free(b);
		return NULL;
	}
	for (unsigned i = 0; i < nq; i++) {
		struct blk_queue *bq = &b->q[i];

		*bq = (struct blk_queue){ .blk = b, .idx = i };
		vq_poll_init(&bq->poll, &b->dev.vq[i], queues ? queues->poll_us : 0);
		/* Polling is the event loop's: without one there is none. */
		if (loop && bq->poll.window_ns) {
			event_poller_add(&bq->poller, loop, on_poll, bq);
			bq->poller_added = true;
		}
	}
	return &b->dev;
}
