#include "virtio/device.h"

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <string.h>

#include "snapshot/fields.h"
#include "util/err.h"

int virtio_dev_init(struct virtio_dev *d, const struct virtio_ops *ops, void *priv, uint64_t features,
		    uint8_t *config, uint32_t config_len, const struct guest_mem *mem, struct event_loop *loop)
{
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->config = config;
	d->config_len = config_len;
	d->mem = mem;
	d->loop = loop;
	d->device_features = features | (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			     (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	return pthread_mutex_init(&d->lock, NULL) ? CV_EFAIL : 0;
}

void virtio_dev_destroy(struct virtio_dev *d)
{
	pthread_mutex_destroy(&d->lock);
}

bool virtio_ready(const struct virtio_dev *d)
{
	return (d->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void reset(struct virtio_dev *d)
{
	if (d->ops->reset)
		d->ops->reset(d);
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq_reset(&d->vq[i]);
	d->status = 0;
	d->driver_features = 0;
}

void virtio_needs_reset(struct virtio_dev *d, const char *why)
{
	if (d->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	cv_warn("virtio-%s: %s; device needs reset", d->ops->name, why);
	d->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	virtio_config_changed(d);
}

static void driver_ok(struct virtio_dev *d)
{
	bool event_idx = d->driver_features & (1ULL << VIRTIO_RING_F_EVENT_IDX);

	for (unsigned i = 0; i < d->ops->num_queues; i++) {
		struct virtq *q = &d->vq[i];

		if (!q->ready)
			continue;
		q->event_idx = event_idx;
		if (!virtq_start(q, d->mem)) {
			virtio_needs_reset(d, "queue placed outside guest RAM or misaligned");
			return;
		}
	}
	if (d->ops->activate && d->ops->activate(d))
		virtio_needs_reset(d, "device could not start");
}

void virtio_set_status(struct virtio_dev *d, uint8_t status)
{
	uint8_t old = d->status;

	if (!status) {
		reset(d);
		return;
	}
	if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
		/* Only a subset of ours, and never the legacy interface. */
		if ((d->driver_features & ~d->device_features) ||
		    !(d->driver_features & (1ULL << VIRTIO_F_VERSION_1)))
			status &= ~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	/* NEEDS_RESET belongs to the device; the driver cannot clear it. */
	d->status = status | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
	if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK))
		driver_ok(d);
}

void virtio_config_access(struct virtio_dev *d, uint32_t off, uint8_t *data, unsigned len, bool write)
{
	if (off > d->config_len || len > d->config_len - off) {
		if (!write)
			memset(data, 0, len);
		return;
	}
	if (!write) {
		memcpy(data, d->config + off, len);
		return;
	}
	if (d->ops->config_write) {
		memcpy(d->config + off, data, len);
		d->ops->config_write(d, off, len);
	}
}

void virtio_kick(struct virtio_dev *d, unsigned q)
{
	if (q < d->ops->num_queues && virtio_ready(d) && d->vq[q].ready)
		d->ops->notify(d, q);
}

bool virtio_pop(struct virtio_dev *d, unsigned qi, struct virtq_req *r, struct iovec *out, struct iovec *in,
		unsigned max)
{
	struct virtq *q = &d->vq[qi];

	for (;;) {
		switch (virtq_pop(q, r, out, in, max)) {
		case VIRTQ_GOT:
			return true;
		case VIRTQ_BROKEN:
			virtio_needs_reset(d, "malformed request in a queue");
			return false;
		default:
			/* A polled queue stays quiet until its poller stops. */
			if (q->polling || !virtq_enable_notify(q))
				return false;
		}
	}
}

void virtio_signal_used(struct virtio_dev *d, unsigned q)
{
	if (virtq_should_signal(&d->vq[q]))
		d->transport->signal_queue(d, q);
}

void virtio_config_changed(struct virtio_dev *d)
{
	d->config_generation++;
	if (d->transport)
		d->transport->signal_config(d);
}

/* A queue as the driver configured it and how far the device got. */
static const struct snap_field vq_fields[] = {
	SNAP_FIELD(struct virtq, size),	      SNAP_FLAG(struct virtq, ready),	    SNAP_FIELD(struct virtq, desc_gpa),
	SNAP_FIELD(struct virtq, avail_gpa),  SNAP_FIELD(struct virtq, used_gpa),   SNAP_FLAG(struct virtq, event_idx),
	SNAP_FIELD(struct virtq, last_avail), SNAP_FIELD(struct virtq, used_idx),   SNAP_FIELD(struct virtq, signalled),
	SNAP_FLAG(struct virtq, signalled_valid),
};

int virtio_dev_save(struct virtio_dev *d, struct snap_writer *w)
{
	pthread_mutex_lock(&d->lock);
	snap_put_u64(w, d->device_features);
	snap_put_u64(w, d->driver_features);
	snap_put_u8(w, d->status);
	snap_put_u32(w, d->config_generation);
	snap_put_u32(w, d->config_len);
	snap_put_bytes(w, d->config, d->config_len);
	snap_put_u32(w, d->ops->num_queues);
	for (unsigned i = 0; i < d->ops->num_queues; i++)
		snap_put_fields(w, &d->vq[i], vq_fields, SNAP_NFIELDS(vq_fields));
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int virtio_dev_load(struct virtio_dev *d, struct snap_reader *r)
{
	struct virtq vq[VIRTIO_MAX_QUEUES] = { 0 };
	uint64_t dev_features = snap_get_u64(r), drv_features = snap_get_u64(r);
	uint8_t status = snap_get_u8(r);
	uint32_t generation = snap_get_u32(r), config_len = snap_get_u32(r), nq;
	const uint8_t *config;

	if (snap_reader_ok(r) && dev_features != d->device_features)
		snap_reader_fail(r, "the device offers other features than the saved one");
	if (snap_reader_ok(r) && (drv_features & ~dev_features))
		snap_reader_fail(r, "the driver's features are not a subset of the device's");
	if (snap_reader_ok(r) && config_len != d->config_len)
		snap_reader_fail(r, "configuration space of another size");
	config = snap_get_view(r, config_len);
	nq = snap_get_u32(r);
	if (snap_reader_ok(r) && nq != d->ops->num_queues)
		snap_reader_fail(r, "another number of queues");
	for (unsigned i = 0; i < nq && snap_reader_ok(r); i++) {
		snap_get_fields(r, &vq[i], vq_fields, SNAP_NFIELDS(vq_fields));
		if (vq[i].size > d->ops->queue_max)
			snap_reader_fail(r, "a queue is larger than the device allows");
	}
	if (!snap_reader_ok(r))
		return CV_EINPUT;
	pthread_mutex_lock(&d->lock);
	/* Config bytes go straight in: the device rewrites nothing on load. */
	if (config_len)
		memcpy(d->config, config, config_len);
	d->driver_features = drv_features;
	d->status = status;
	d->config_generation = generation;
	memcpy(d->vq, vq, sizeof(vq));
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int virtio_dev_resume(struct virtio_dev *d)
{
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; virtio_ready(d) && i < d->ops->num_queues; i++) {
		struct virtq *q = &d->vq[i], saved = *q;

		if (!q->ready)
			continue;
		if (!virtq_start(q, d->mem)) {
			cv_err("restore: virtio-%s queue %u lies outside guest RAM or is misaligned", d->ops->name, i);
			rc = CV_EINPUT;
			break;
		}
		q->last_avail = saved.last_avail;
		q->used_idx = saved.used_idx;
		q->signalled = saved.signalled;
		q->signalled_valid = saved.signalled_valid;
	}
	if (!rc && virtio_ready(d) && d->ops->activate && d->ops->activate(d)) {
		cv_err("restore: virtio-%s could not start", d->ops->name);
		rc = CV_EFAIL;
	}
	/* Requests the guest queued while the snapshot was taken. */
	for (unsigned i = 0; !rc && i < d->ops->num_queues; i++)
		virtio_kick(d, i);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

bool virtio_dev_idle(struct virtio_dev *d)
{
	bool idle = true;

	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; virtio_ready(d) && i < d->ops->num_queues; i++)
		if (d->vq[i].ready && d->vq[i].last_avail != d->vq[i].used_idx)
			idle = false;
	pthread_mutex_unlock(&d->lock);
	return idle;
}
