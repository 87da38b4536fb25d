#include "virtio/balloon.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/iov.h"

#define BALLOON_QUEUE_SIZE 128
/* Free page reporting sends up to 32 blocks in one chain. */
#define BALLOON_MAX_SEGS 64
/* Bounds the work one request can make us do: Linux sends at most 256
 * PFNs per buffer. */
#define BALLOON_MAX_PFNS 4096
#define PAGE 4096ULL

enum { Q_INFLATE, Q_DEFLATE };

struct balloon_config_space {
	uint32_t num_pages; /* le: the target */
	uint32_t actual;    /* le: what the guest holds */
	uint32_t free_page_hint_cmd_id, poison_val;
};

struct virtio_balloon {
	struct virtio_dev dev;
	struct virtio_ops ops; /* num_queues depends on the features offered */
	struct balloon_config_space config;
	struct event_timer timer;
	bool timer_ok;
	uint32_t target; /* pages; config.num_pages mirrors it */
	unsigned stats_s;
	/* Queue indices as the driver negotiated them (-1: absent): queues
	 * of features not negotiated take no index. */
	int stats_q, report_q;
	uint32_t stats_mask;
	uint64_t stats[BALLOON_NSTATS];
	uint64_t discarded;
};

static struct virtio_balloon *to_balloon(struct virtio_dev *d)
{
	return d->priv;
}

/* Gives back n pages from gpa (a run of consecutive PFNs). */
static void discard_run(struct virtio_balloon *b, uint64_t pfn, uint64_t n)
{
	if (n && !guest_mem_discard(b->dev.mem, pfn * PAGE, n * PAGE))
		b->discarded += n;
}

/* Inflate: the buffer is an array of le32 PFNs, which may lie anywhere
 * (RAM or not: what is not RAM is skipped). */
static void inflate(struct virtio_balloon *b, const struct virtq_req *r)
{
	uint64_t start = 0, n = 0, count = r->out_len / 4;

	if (count > BALLOON_MAX_PFNS)
		count = BALLOON_MAX_PFNS;
	for (uint64_t i = 0; i < count; i++) {
		uint32_t le, pfn;

		iov_to_buf(r->out, r->nout, i * 4, &le, 4);
		pfn = le32toh(le);
		if (n && pfn == start + n) {
			n++;
			continue;
		}
		discard_run(b, start, n);
		start = pfn;
		n = 1;
	}
	discard_run(b, start, n);
}

/* Free page reporting: every writable buffer is a block of free pages. */
static void report(struct virtio_balloon *b, const struct virtq_req *r)
{
	for (unsigned i = 0; i < r->nin; i++) {
		uintptr_t p = (uintptr_t)r->in[i].iov_base, end = p + r->in[i].iov_len;
		uintptr_t first = (p + PAGE - 1) & ~(uintptr_t)(PAGE - 1), last = end & ~(uintptr_t)(PAGE - 1);

		/* Host and guest pages align alike: RAM is mapped page-aligned. */
		if (last > first && !guest_mem_discard_host(b->dev.mem, (void *)first, last - first))
			b->discarded += (last - first) / PAGE;
	}
}

/* Statistics: 10-byte entries (le16 tag, le64 value). */
static void read_stats(struct virtio_balloon *b, const struct virtq_req *r)
{
	uint64_t n = r->out_len / 10;

	if (n > 64)
		n = 64;
	for (uint64_t i = 0; i < n; i++) {
		uint8_t e[10];
		uint16_t tag;
		uint64_t val;

		iov_to_buf(r->out, r->nout, i * 10, e, 10);
		memcpy(&tag, e, 2);
		memcpy(&val, e + 2, 8);
		tag = le16toh(tag);
		if (tag < BALLOON_NSTATS) {
			b->stats[tag] = le64toh(val);
			b->stats_mask |= 1u << tag;
		}
	}
}

/* The driver keeps one statistics buffer with the device; cellvm reads it
 * and leaves it in the ring (un-popped), so nothing is in flight for a
 * snapshot, and hands it back when the polling interval comes. */
static void stats_notify(struct virtio_balloon *b, unsigned qi)
{
	struct iovec out[BALLOON_MAX_SEGS], in[BALLOON_MAX_SEGS];
	struct virtq_req r;
	bool held = false, pushed = false;
	uint16_t head = 0;

	while (virtio_pop(&b->dev, qi, &r, out, in, BALLOON_MAX_SEGS)) {
		if (held) {
			virtq_push(&b->dev.vq[qi], head, 0);
			pushed = true;
		}
		read_stats(b, &r);
		head = r.head;
		held = true;
	}
	if (held)
		virtq_unpop(&b->dev.vq[qi]);
	if (pushed)
		virtio_signal_used(&b->dev, qi);
}

static void on_timer(void *opaque)
{
	struct virtio_balloon *b = opaque;
	struct iovec out[BALLOON_MAX_SEGS], in[BALLOON_MAX_SEGS];
	struct virtq_req r;

	pthread_mutex_lock(&b->dev.lock);
	if (virtio_ready(&b->dev) && b->stats_q >= 0 && b->dev.vq[b->stats_q].ready) {
		/* Asks for fresh values: the guest posts them in a new buffer. */
		if (virtio_pop(&b->dev, (unsigned)b->stats_q, &r, out, in, BALLOON_MAX_SEGS)) {
			virtq_push(&b->dev.vq[b->stats_q], r.head, 0);
			virtio_signal_used(&b->dev, (unsigned)b->stats_q);
			/* Re-arms the guest's kick (EVENT_IDX) for the buffer it posts next. */
			if (virtq_enable_notify(&b->dev.vq[b->stats_q]))
				stats_notify(b, (unsigned)b->stats_q);
		}
		event_timer_arm(&b->timer, (uint64_t)b->stats_s * 1000000000ULL);
	}
	pthread_mutex_unlock(&b->dev.lock);
}

static void balloon_notify(struct virtio_dev *d, unsigned qi)
{
	struct virtio_balloon *b = to_balloon(d);
	struct iovec out[BALLOON_MAX_SEGS], in[BALLOON_MAX_SEGS];
	struct virtq_req r;

	if ((int)qi == b->stats_q) {
		stats_notify(b, qi);
		return;
	}
	if (qi != Q_INFLATE && qi != Q_DEFLATE && (int)qi != b->report_q)
		return;
	while (virtio_pop(d, qi, &r, out, in, BALLOON_MAX_SEGS)) {
		/* Deflated pages need nothing: they fault back in as zeros. */
		if (qi == Q_INFLATE)
			inflate(b, &r);
		else if ((int)qi == b->report_q)
			report(b, &r);
		virtq_push(&d->vq[qi], r.head, 0);
	}
	virtio_signal_used(d, qi);
}

static int balloon_activate(struct virtio_dev *d)
{
	struct virtio_balloon *b = to_balloon(d);
	int next = 2;

	b->stats_q = d->driver_features & (1ULL << BALLOON_F_STATS_VQ) ? next++ : -1;
	b->report_q = d->driver_features & (1ULL << BALLOON_F_REPORTING) ? next++ : -1;
	if (next > (int)b->ops.num_queues)
		return CV_EFAIL;
	if (b->stats_q >= 0 && b->stats_s && b->timer_ok)
		event_timer_arm(&b->timer, (uint64_t)b->stats_s * 1000000000ULL);
	return 0;
}

static void balloon_reset(struct virtio_dev *d)
{
	struct virtio_balloon *b = to_balloon(d);

	if (b->timer_ok)
		event_timer_cancel(&b->timer);
	b->stats_q = b->report_q = -1;
	b->config.actual = 0;
}

/* Only `actual` is the driver's to write; the target stays the host's. */
static void balloon_config_write(struct virtio_dev *d, uint32_t off, uint32_t len)
{
	struct virtio_balloon *b = to_balloon(d);

	(void)off;
	(void)len;
	b->config.num_pages = htole32(b->target);
	b->config.free_page_hint_cmd_id = b->config.poison_val = 0;
}

static void balloon_destroy(struct virtio_dev *d)
{
	struct virtio_balloon *b = to_balloon(d);

	if (b->timer_ok)
		event_timer_destroy(&b->timer);
	virtio_dev_destroy(d);
	free(b);
}

struct virtio_dev *virtio_balloon_new(const struct guest_mem *mem, struct event_loop *loop,
				      const struct balloon_config *c)
{
	struct virtio_balloon *b = calloc(1, sizeof(*b));
	uint64_t features = 0;

	if (!b) {
		cv_err("out of memory");
		return NULL;
	}
	b->ops = (struct virtio_ops){
		.name = "balloon",
		.device_id = 5,
		.num_queues = 2,
		.queue_max = BALLOON_QUEUE_SIZE,
		.notify = balloon_notify,
		.activate = balloon_activate,
		.reset = balloon_reset,
		.config_write = balloon_config_write,
		.destroy = balloon_destroy,
	};
	if (c->stats_s) {
		features |= 1ULL << BALLOON_F_STATS_VQ;
		b->ops.num_queues++;
	}
	if (c->deflate_on_oom)
		features |= 1ULL << BALLOON_F_DEFLATE_ON_OOM;
	if (c->reporting) {
		features |= 1ULL << BALLOON_F_REPORTING;
		b->ops.num_queues++;
	}
	b->stats_s = c->stats_s;
	b->stats_q = b->report_q = -1;
	b->target = (uint32_t)((uint64_t)c->amount_mib << 20 >> 12);
	b->config.num_pages = htole32(b->target);
	if (event_timer_init(&b->timer, loop, on_timer, b)) {
		free(b);
		return NULL;
	}
	b->timer_ok = true;
	if (virtio_dev_init(&b->dev, &b->ops, b, features, (uint8_t *)&b->config, sizeof(b->config), mem, loop)) {
		event_timer_destroy(&b->timer);
		free(b);
		cv_err("out of memory");
		return NULL;
	}
	return &b->dev;
}

void virtio_balloon_set_target(struct virtio_dev *d, uint32_t pages)
{
	struct virtio_balloon *b = to_balloon(d);

	pthread_mutex_lock(&d->lock);
	b->target = pages;
	b->config.num_pages = htole32(pages);
	virtio_config_changed(d);
	pthread_mutex_unlock(&d->lock);
}

void virtio_balloon_set_interval(struct virtio_dev *d, unsigned s)
{
	struct virtio_balloon *b = to_balloon(d);

	pthread_mutex_lock(&d->lock);
	b->stats_s = s;
	if (s && b->stats_q >= 0 && virtio_ready(d))
		event_timer_arm(&b->timer, (uint64_t)s * 1000000000ULL);
	pthread_mutex_unlock(&d->lock);
}

void virtio_balloon_info(struct virtio_dev *d, struct balloon_info *out)
{
	struct virtio_balloon *b = to_balloon(d);

	pthread_mutex_lock(&d->lock);
	*out = (struct balloon_info){
		.active = virtio_ready(d),
		.stats_on = d->device_features & (1ULL << BALLOON_F_STATS_VQ),
		.stats_s = b->stats_s,
		.target_pages = b->target,
		.actual_pages = le32toh(b->config.actual),
		.stats_mask = b->stats_mask,
		.discarded_pages = b->discarded,
	};
	memcpy(out->stats, b->stats, sizeof(out->stats));
	pthread_mutex_unlock(&d->lock);
}

int virtio_balloon_save(void *dev, struct snap_writer *w)
{
	struct virtio_balloon *b = to_balloon(dev);

	pthread_mutex_lock(&b->dev.lock);
	snap_put_u32(w, b->target);
	snap_put_u32(w, b->stats_s);
	snap_put_u32(w, b->stats_mask);
	for (unsigned i = 0; i < BALLOON_NSTATS; i++)
		snap_put_u64(w, b->stats[i]);
	snap_put_u64(w, b->discarded);
	pthread_mutex_unlock(&b->dev.lock);
	return 0;
}

int virtio_balloon_load(void *dev, struct snap_reader *r)
{
	struct virtio_balloon *b = to_balloon(dev);
	uint32_t target = snap_get_u32(r), s = snap_get_u32(r), mask = snap_get_u32(r);
	uint64_t stats[BALLOON_NSTATS], discarded;

	for (unsigned i = 0; i < BALLOON_NSTATS; i++)
		stats[i] = snap_get_u64(r);
	discarded = snap_get_u64(r);
	if (snap_reader_ok(r) && ((uint64_t)target * PAGE > b->dev.mem->size || !s != !b->stats_s || s > CV_MAX_BALLOON_STATS_S || mask >> BALLOON_NSTATS))
		snap_reader_fail(r, "balloon statistics out of range");
	if (!snap_reader_ok(r))
		return CV_EINPUT;
	pthread_mutex_lock(&b->dev.lock);
	b->target = target;
	b->config.num_pages = htole32(target);
	b->stats_s = s;
	b->stats_mask = mask;
	memcpy(b->stats, stats, sizeof(stats));
	b->discarded = discarded;
	pthread_mutex_unlock(&b->dev.lock);
	return 0;
}
