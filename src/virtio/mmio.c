#include "virtio/mmio.h"

#include <errno.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/cmdline.h"
#include "util/err.h"
#include "virtio/transport.h"
#include "vmm/irq.h"

#define MAGIC 0x74726976 /* "virt" */
#define VENDOR 0x4c564c43 /* "CLVL" */
#define INT_VRING 1
#define INT_CONFIG 2

static void raise_isr(struct virtio_mmio *t, uint32_t bit)
{
	t->isr |= bit;
	irq_eventfd_signal(t->irq_efd);
}

static void signal_queue(struct virtio_dev *d, unsigned q)
{
	(void)q;
	raise_isr(d->transport_priv, INT_VRING);
}

static void signal_config(struct virtio_dev *d)
{
	raise_isr(d->transport_priv, INT_CONFIG);
}

static const struct virtio_transport mmio_transport = {
	.signal_queue = signal_queue,
	.signal_config = signal_config,
};

static struct virtq *selected(struct virtio_mmio *t)
{
	return t->queue_sel < t->dev->ops->num_queues ? &t->dev->vq[t->queue_sel] : NULL;
}

static uint32_t reg_read(struct virtio_mmio *t, uint64_t off)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q = selected(t);

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE: return MAGIC;
	case VIRTIO_MMIO_VERSION: return 2;
	case VIRTIO_MMIO_DEVICE_ID: return d->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID: return VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return t->dev_feat_sel < 2 ? (uint32_t)(d->device_features >> (32 * t->dev_feat_sel)) : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX: return q ? d->ops->queue_max : 0;
	case VIRTIO_MMIO_QUEUE_READY: return q ? q->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS: return t->isr;
	case VIRTIO_MMIO_STATUS: return d->status;
	case VIRTIO_MMIO_CONFIG_GENERATION: return d->config_generation;
	default: return 0;
	}
}

static void set_half(uint64_t *v, bool high, uint32_t x)
{
	*v = high ? (*v & 0xffffffffULL) | ((uint64_t)x << 32) : (*v & ~0xffffffffULL) | x;
}

static void reg_write(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q = selected(t);
	/* Queue layout is frozen once the queue is live. */
	struct virtq *cfgq = (q && !q->ready && !(d->status & 0x04)) ? q : NULL;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL: t->dev_feat_sel = v; break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL: t->drv_feat_sel = v; break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (t->drv_feat_sel < 2 && !(d->status & 0x08))
			set_half(&d->driver_features, t->drv_feat_sel, v);
		break;
	case VIRTIO_MMIO_QUEUE_SEL: t->queue_sel = v; break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (cfgq && v <= d->ops->queue_max)
			cfgq->size = (uint16_t)v;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (q && !(v & 1))
			q->ready = false;
		else if (cfgq)
			q->ready = true;
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY: virtio_kick(d, v); break;
	case VIRTIO_MMIO_INTERRUPT_ACK: t->isr &= ~v; break;
	case VIRTIO_MMIO_STATUS:
		virtio_set_status(d, (uint8_t)v);
		if (!v)
			t->isr = 0;
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (cfgq)
			set_half(&cfgq->desc_gpa, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (cfgq)
			set_half(&cfgq->avail_gpa, off == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (cfgq)
			set_half(&cfgq->used_gpa, off == VIRTIO_MMIO_QUEUE_USED_HIGH, v);
		break;
	default:
		break;
	}
}

static void mmio_io(void *opaque, uint64_t addr, uint8_t *data, unsigned size, bool write)
{
	struct virtio_mmio *t = opaque;
	uint64_t off = addr - t->base;
	uint32_t v = 0;

	pthread_mutex_lock(&t->dev->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		virtio_config_access(t->dev, (uint32_t)(off - VIRTIO_MMIO_CONFIG), data, size, write);
	} else if (size != 4 || (off & 3)) {
		/* The register block takes aligned 32-bit accesses only. */
		if (!write)
			memset(data, 0, size);
	} else if (write) {
		memcpy(&v, data, 4);
		reg_write(t, off, v);
	} else {
		v = reg_read(t, off);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&t->dev->lock);
}

int virtio_mmio_init(struct virtio_mmio *t, struct virtio_dev *dev, int vm_fd, struct bus *mmio,
		     uint64_t base, unsigned gsi)
{
	memset(t, 0, sizeof(*t));
	t->dev = dev;
	t->vm_fd = vm_fd;
	t->base = base;
	t->gsi = gsi;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		t->kick_efd[i] = -1;
	dev->transport = &mmio_transport;
	dev->transport_priv = t;
	t->irq_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->irq_efd < 0 || irq_irqfd(vm_fd, t->irq_efd, gsi, true))
		goto fail;
	for (unsigned q = 0; q < dev->ops->num_queues; q++) {
		int fd = virtio_kick_fd(dev, q);

		if (fd < 0)
			goto fail;
		if (irq_ioeventfd(vm_fd, fd, base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, false, true, q, true)) {
			virtio_kick_fd_close(dev, fd);
			goto fail;
		}
		t->kick_efd[q] = fd;
	}
	if (bus_register(mmio, base, VIRTIO_MMIO_SIZE, mmio_io, t)) {
		cv_err("virtio-mmio window at 0x%llx overlaps another device", (unsigned long long)base);
		goto fail;
	}
	return 0;
fail:
	virtio_mmio_destroy(t);
	return CV_EFAIL;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (t->kick_efd[q] < 0)
			continue;
		irq_ioeventfd(t->vm_fd, t->kick_efd[q], t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, false, true, q, false);
		virtio_kick_fd_close(t->dev, t->kick_efd[q]);
		t->kick_efd[q] = -1;
	}
	if (t->irq_efd >= 0)
		close(t->irq_efd);
	t->irq_efd = -1;
}

int virtio_mmio_cmdline(const struct virtio_mmio *t, char *cmdline, size_t cap)
{
	char param[64];

	snprintf(param, sizeof(param), "virtio_mmio.device=4K@0x%llx:%u", (unsigned long long)t->base, t->gsi);
	if (cmdline_add(cmdline, cap, param)) {
		cv_err("kernel command line too long for the virtio-mmio device entries");
		return CV_EINPUT;
	}
	return 0;
}

static const struct snap_field mmio_fields[] = {
	SNAP_FIELD(struct virtio_mmio, dev_feat_sel),
	SNAP_FIELD(struct virtio_mmio, drv_feat_sel),
	SNAP_FIELD(struct virtio_mmio, queue_sel),
	SNAP_FIELD(struct virtio_mmio, isr),
};

int virtio_mmio_save(struct virtio_mmio *t, struct snap_writer *w)
{
	pthread_mutex_lock(&t->dev->lock);
	snap_put_fields(w, t, mmio_fields, SNAP_NFIELDS(mmio_fields));
	pthread_mutex_unlock(&t->dev->lock);
	return 0;
}

int virtio_mmio_load(struct virtio_mmio *t, struct snap_reader *r)
{
	int rc;

	pthread_mutex_lock(&t->dev->lock);
	rc = snap_load_fields(r, t, sizeof(*t), mmio_fields, SNAP_NFIELDS(mmio_fields), NULL);
	pthread_mutex_unlock(&t->dev->lock);
	return rc;
}
