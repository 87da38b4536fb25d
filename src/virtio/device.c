#include "virtio/device.h"

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <string.h>

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
			if (!virtq_enable_notify(q))
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
