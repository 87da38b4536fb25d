#include "virtio/pci.h"

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/err.h"
#include "virtio/transport.h"

/* BAR 0 layout. */
#define BAR_SIZE 0x8000
#define OFF_COMMON 0x0000
#define OFF_ISR 0x1000
#define OFF_DEVICE 0x2000
#define OFF_NOTIFY 0x3000
#define OFF_MSIX_TABLE 0x4000
#define OFF_MSIX_PBA 0x5000
#define NOTIFY_MULT 4

/* Capability chain in config space. */
#define CAP_COMMON 0x40
#define CAP_NOTIFY 0x50
#define CAP_ISR 0x64
#define CAP_DEVICE 0x74
#define CAP_PCI_CFG 0x84
#define CAP_MSIX 0x98
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_MASKED 1

#define COMMON_SIZE 0x38
#define ISR_QUEUE 0x1 /* not named in the uapi header */

static const uint32_t class_codes[] = {
	[1] = 0x020000, /* net: Ethernet */
	[2] = 0x018000, /* blk: mass storage */
	[3] = 0x078000, /* console: communication */
	[4] = 0x00ff00, /* rng */
	[5] = 0x05ff00, /* balloon: memory */
	[19] = 0x00ff00, /* vsock */
};

static uint16_t msix_ctrl(const struct virtio_pci *t)
{
	return (uint16_t)pci_cfg_read(&t->pci, CAP_MSIX + 2, 2);
}

static bool vector_masked(const struct virtio_pci *t, unsigned v)
{
	uint16_t ctrl = msix_ctrl(t);

	return !(ctrl & MSIX_CTRL_ENABLE) || (ctrl & MSIX_CTRL_MASKALL) || (t->msix[v].ctrl & MSIX_ENTRY_MASKED);
}

static void deliver(struct virtio_pci *t, uint16_t v)
{
	if (v >= t->nvec)
		return; /* VIRTIO_MSI_NO_VECTOR, or not ours */
	if (vector_masked(t, v)) {
		t->pending[v] = true;
		return;
	}
	irq_eventfd_signal(t->irq_efd[v]);
}

/* An entry became deliverable: route it, then send what was held back. */
static void unmasked(struct virtio_pci *t, unsigned v)
{
	uint64_t addr = (uint64_t)t->msix[v].addr_hi << 32 | t->msix[v].addr_lo;

	if (vector_masked(t, v))
		return;
	irq_msi_route(t->irq, t->gsi[v], addr, t->msix[v].data);
	if (t->pending[v]) {
		t->pending[v] = false;
		irq_eventfd_signal(t->irq_efd[v]);
	}
}

static void signal_queue(struct virtio_dev *d, unsigned q)
{
	struct virtio_pci *t = d->transport_priv;

	t->isr |= ISR_QUEUE;
	deliver(t, t->queue_vector[q]);
}

static void signal_config(struct virtio_dev *d)
{
	struct virtio_pci *t = d->transport_priv;

	t->isr |= VIRTIO_PCI_ISR_CONFIG;
	deliver(t, t->config_vector);
}

static const struct virtio_transport pci_transport = {
	.signal_queue = signal_queue,
	.signal_config = signal_config,
};

static struct virtq *selected(struct virtio_pci *t)
{
	return t->queue_sel < t->dev->ops->num_queues ? &t->dev->vq[t->queue_sel] : NULL;
}

/* The common configuration structure as the driver would read it now. */
static void common_image(struct virtio_pci *t, struct virtio_pci_common_cfg *c)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q = selected(t);

	memset(c, 0, sizeof(*c));
	c->device_feature_select = t->dev_feat_sel;
	c->device_feature = t->dev_feat_sel < 2 ? (uint32_t)(d->device_features >> (32 * t->dev_feat_sel)) : 0;
	c->guest_feature_select = t->drv_feat_sel;
	c->guest_feature = t->drv_feat_sel < 2 ? (uint32_t)(d->driver_features >> (32 * t->drv_feat_sel)) : 0;
	c->msix_config = t->config_vector;
	c->num_queues = (uint16_t)d->ops->num_queues;
	c->device_status = d->status;
	c->config_generation = (uint8_t)d->config_generation;
	c->queue_select = t->queue_sel;
	if (!q)
		return;
	c->queue_size = q->size;
	c->queue_msix_vector = t->queue_vector[t->queue_sel];
	c->queue_enable = q->ready;
	c->queue_notify_off = t->queue_sel;
	c->queue_desc_lo = (uint32_t)q->desc_gpa;
	c->queue_desc_hi = (uint32_t)(q->desc_gpa >> 32);
	c->queue_avail_lo = (uint32_t)q->avail_gpa;
	c->queue_avail_hi = (uint32_t)(q->avail_gpa >> 32);
	c->queue_used_lo = (uint32_t)q->used_gpa;
	c->queue_used_hi = (uint32_t)(q->used_gpa >> 32);
}

static bool touches(unsigned off, unsigned size, size_t field, size_t field_size)
{
	return off < field + field_size && field < off + size;
}

#define TOUCHES(f) touches(off, size, offsetof(struct virtio_pci_common_cfg, f), \
			   sizeof(((struct virtio_pci_common_cfg *)0)->f))

static uint16_t valid_vector(const struct virtio_pci *t, uint16_t v)
{
	return v < t->nvec ? v : VIRTIO_MSI_NO_VECTOR;
}

static void reset_transport(struct virtio_pci *t)
{
	t->isr = 0;
	t->queue_sel = 0;
	t->config_vector = VIRTIO_MSI_NO_VECTOR;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		t->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
		/* Queues start at their largest size; the driver may shrink them. */
		t->dev->vq[q].size = q < t->dev->ops->num_queues ? t->dev->ops->queue_max : 0;
	}
}

/* Applies the fields a write of [off, off+size) changed in image c. */
static void common_apply(struct virtio_pci *t, const struct virtio_pci_common_cfg *c, unsigned off, unsigned size)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q = selected(t);
	bool live = d->status & VIRTIO_CONFIG_S_DRIVER_OK;
	/* Queue layout can change only before the queue is enabled. */
	struct virtq *cfgq = (q && !q->ready && !live) ? q : NULL;

	if (TOUCHES(device_feature_select))
		t->dev_feat_sel = c->device_feature_select;
	if (TOUCHES(guest_feature_select))
		t->drv_feat_sel = c->guest_feature_select;
	if (TOUCHES(guest_feature) && t->drv_feat_sel < 2 && !(d->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		uint64_t shift = 32 * t->drv_feat_sel;

		d->driver_features = (d->driver_features & ~(0xffffffffULL << shift)) |
				     ((uint64_t)c->guest_feature << shift);
	}
	if (TOUCHES(msix_config))
		t->config_vector = valid_vector(t, c->msix_config);
	if (TOUCHES(device_status)) {
		virtio_set_status(d, c->device_status);
		if (!c->device_status)
			reset_transport(t);
	}
	if (TOUCHES(queue_select))
		t->queue_sel = c->queue_select;
	/* The queue fields of one access belong to the queue selected when it
	 * began: a wide write may also change queue_select, and indexing by
	 * the new value went past queue_vector[] (found by fuzz_transport). */
	if (TOUCHES(queue_msix_vector) && q)
		t->queue_vector[q - d->vq] = valid_vector(t, c->queue_msix_vector);
	if (!cfgq)
		return;
	if (TOUCHES(queue_size) && c->queue_size <= d->ops->queue_max)
		cfgq->size = c->queue_size;
	if (TOUCHES(queue_desc_lo) || TOUCHES(queue_desc_hi))
		cfgq->desc_gpa = (uint64_t)c->queue_desc_hi << 32 | c->queue_desc_lo;
	if (TOUCHES(queue_avail_lo) || TOUCHES(queue_avail_hi))
		cfgq->avail_gpa = (uint64_t)c->queue_avail_hi << 32 | c->queue_avail_lo;
	if (TOUCHES(queue_used_lo) || TOUCHES(queue_used_hi))
		cfgq->used_gpa = (uint64_t)c->queue_used_hi << 32 | c->queue_used_lo;
	if (TOUCHES(queue_enable) && c->queue_enable == 1)
		cfgq->ready = true;
}

static void common_io(struct virtio_pci *t, unsigned off, uint8_t *data, unsigned size, bool write)
{
	struct virtio_pci_common_cfg c;

	common_image(t, &c);
	if (!write) {
		memcpy(data, (uint8_t *)&c + off, size);
		return;
	}
	memcpy((uint8_t *)&c + off, data, size);
	common_apply(t, &c, off, size);
}

static void msix_table_io(struct virtio_pci *t, unsigned off, uint8_t *data, unsigned size, bool write)
{
	unsigned v = off / 16, reg = off % 16;
	uint32_t *words = &t->msix[v].addr_lo, val;

	if (v >= t->nvec || size != 4 || (reg & 3)) {
		if (!write)
			memset(data, 0, size);
		return;
	}
	if (!write) {
		memcpy(data, &words[reg / 4], 4);
		return;
	}
	memcpy(&val, data, 4);
	words[reg / 4] = reg == 12 ? (val & MSIX_ENTRY_MASKED) : val;
	unmasked(t, v);
}

static void msix_pba_io(struct virtio_pci *t, unsigned off, uint8_t *data, unsigned size, bool write)
{
	uint64_t bits = 0;

	if (write)
		return;
	for (unsigned v = 0; v < t->nvec; v++)
		bits |= (uint64_t)t->pending[v] << v;
	memset(data, 0, size);
	if (off < 8)
		memcpy(data, (uint8_t *)&bits + off, size <= 8 - off ? size : 8 - off);
}

static void bar_access(struct virtio_pci *t, uint64_t off, uint8_t *data, unsigned size, bool write)
{
	struct virtio_dev *d = t->dev;

	if (off + size <= OFF_COMMON + COMMON_SIZE) {
		common_io(t, (unsigned)off, data, size, write);
	} else if (off == OFF_ISR && !write) {
		memset(data, 0, size);
		data[0] = t->isr;
		t->isr = 0; /* reading acknowledges */
	} else if (off >= OFF_DEVICE && off < OFF_DEVICE + 0x1000) {
		virtio_config_access(d, (uint32_t)(off - OFF_DEVICE), data, size, write);
	} else if (off >= OFF_NOTIFY && off < OFF_NOTIFY + NOTIFY_MULT * d->ops->num_queues) {
		/* Doorbells normally go to the ioeventfds; this is the slow path. */
		if (write)
			virtio_kick(d, (unsigned)(off - OFF_NOTIFY) / NOTIFY_MULT);
		else
			memset(data, 0, size);
	} else if (off >= OFF_MSIX_TABLE && off < OFF_MSIX_TABLE + 16 * t->nvec) {
		msix_table_io(t, (unsigned)(off - OFF_MSIX_TABLE), data, size, write);
	} else if (off >= OFF_MSIX_PBA && off < OFF_MSIX_PBA + 8) {
		msix_pba_io(t, (unsigned)(off - OFF_MSIX_PBA), data, size, write);
	} else if (!write) {
		memset(data, 0, size);
	}
}

static void bar_io(struct pci_dev *p, unsigned bar, uint64_t off, uint8_t *data, unsigned size, bool write)
{
	struct virtio_pci *t = p->priv;

	(void)bar;
	if (size > 8)
		return;
	pthread_mutex_lock(&t->dev->lock);
	bar_access(t, off, data, size, write);
	pthread_mutex_unlock(&t->dev->lock);
}

/* VIRTIO_PCI_CAP_PCI_CFG: a window into the BAR through config space. */
static void pci_cfg_window(struct virtio_pci *t, bool write)
{
	unsigned bar = t->pci.cfg[CAP_PCI_CFG + 4];
	uint32_t off = pci_cfg_read(&t->pci, CAP_PCI_CFG + 8, 4);
	uint32_t len = pci_cfg_read(&t->pci, CAP_PCI_CFG + 12, 4);
	uint8_t *window = &t->pci.cfg[CAP_PCI_CFG + 16];

	if (bar != 0 || (len != 1 && len != 2 && len != 4) || off >= BAR_SIZE || off % len)
		return;
	bar_access(t, off, window, len, write);
}

static void cfg_access(struct pci_dev *p, unsigned off, unsigned size, bool write)
{
	struct virtio_pci *t = p->priv;

	pthread_mutex_lock(&t->dev->lock);
	if (touches(off, size, CAP_PCI_CFG + 16, 4))
		pci_cfg_window(t, write);
	if (write && touches(off, size, CAP_MSIX + 2, 2))
		for (unsigned v = 0; v < t->nvec; v++)
			unmasked(t, v);
	pthread_mutex_unlock(&t->dev->lock);
}

static void doorbells(struct virtio_pci *t, uint64_t base, bool assign)
{
	for (unsigned q = 0; q < t->dev->ops->num_queues; q++)
		irq_ioeventfd(t->vm_fd, t->kick_efd[q], base + OFF_NOTIFY + NOTIFY_MULT * q, 2, false, false, 0,
			      assign);
}

static void bar_moved(struct pci_dev *p, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
	struct virtio_pci *t = p->priv;

	(void)bar;
	(void)old_addr;
	if (t->notify_base)
		doorbells(t, t->notify_base, false);
	t->notify_base = new_addr;
	if (new_addr)
		doorbells(t, new_addr, true);
}

static void add_cap(struct virtio_pci *t, unsigned at, unsigned next, uint8_t len, uint8_t type, uint32_t off,
		    uint32_t length)
{
	struct virtio_pci_cap c = { .cap_vndr = 0x09, .cap_next = (uint8_t)next, .cap_len = len, .cfg_type = type,
				    .bar = 0, .offset = off, .length = length };

	memcpy(&t->pci.cfg[at], &c, sizeof(c));
}

static void build_config_space(struct virtio_pci *t)
{
	struct pci_dev *p = &t->pci;
	uint32_t id = t->dev->ops->device_id;
	uint32_t class_code = id < sizeof(class_codes) / sizeof(class_codes[0]) ? class_codes[id] : 0x00ff00;
	unsigned after_isr = t->dev->config_len ? CAP_DEVICE : CAP_PCI_CFG;

	pci_dev_header(p, 0x1af4, (uint16_t)(0x1040 + id), class_code, 0x1af4, 0x1100, 1);
	pci_dev_bar64(p, 0, BAR_SIZE);
	p->cfg[0x34] = CAP_COMMON;
	add_cap(t, CAP_COMMON, CAP_NOTIFY, sizeof(struct virtio_pci_cap), VIRTIO_PCI_CAP_COMMON_CFG, OFF_COMMON,
		COMMON_SIZE);
	add_cap(t, CAP_NOTIFY, CAP_ISR, sizeof(struct virtio_pci_notify_cap), VIRTIO_PCI_CAP_NOTIFY_CFG, OFF_NOTIFY,
		NOTIFY_MULT * t->dev->ops->num_queues);
	pci_cfg_set(p, CAP_NOTIFY + 16, 4, NOTIFY_MULT);
	add_cap(t, CAP_ISR, after_isr, sizeof(struct virtio_pci_cap), VIRTIO_PCI_CAP_ISR_CFG, OFF_ISR, 1);
	if (t->dev->config_len)
		add_cap(t, CAP_DEVICE, CAP_PCI_CFG, sizeof(struct virtio_pci_cap), VIRTIO_PCI_CAP_DEVICE_CFG,
			OFF_DEVICE, t->dev->config_len);
	add_cap(t, CAP_PCI_CFG, CAP_MSIX, sizeof(struct virtio_pci_cfg_cap), VIRTIO_PCI_CAP_PCI_CFG, 0, 0);
	/* bar, offset, length and data of the access window are the driver's. */
	memset(&p->wmask[CAP_PCI_CFG + 4], 0xff, 1);
	memset(&p->wmask[CAP_PCI_CFG + 8], 0xff, 12);
	/* MSI-X: table size - 1, table and PBA in BAR 0. */
	p->cfg[CAP_MSIX] = 0x11;
	p->cfg[CAP_MSIX + 1] = 0;
	pci_cfg_set(p, CAP_MSIX + 2, 2, t->nvec - 1);
	pci_cfg_set(p, CAP_MSIX + 4, 4, OFF_MSIX_TABLE);
	pci_cfg_set(p, CAP_MSIX + 8, 4, OFF_MSIX_PBA);
	p->wmask[CAP_MSIX + 3] = (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) >> 8;
}

int virtio_pci_init(struct virtio_pci *t, struct virtio_dev *dev, struct pci_host *host, struct irq_router *irq,
		    int vm_fd)
{
	memset(t, 0, sizeof(*t));
	t->dev = dev;
	t->irq = irq;
	t->vm_fd = vm_fd;
	t->nvec = dev->ops->num_queues + 1;
	for (unsigned i = 0; i < VIRTIO_PCI_VECTORS; i++)
		t->irq_efd[i] = -1;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->kick_efd[q] = -1;
	dev->transport = &pci_transport;
	dev->transport_priv = t;
	reset_transport(t);
	for (unsigned v = 0; v < t->nvec; v++) {
		t->msix[v].ctrl = MSIX_ENTRY_MASKED;
		t->irq_efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->irq_efd[v] < 0 || irq_msi_alloc(irq, &t->gsi[v]) || irq_irqfd(vm_fd, t->irq_efd[v], t->gsi[v], true))
			goto fail;
	}
	for (unsigned q = 0; q < dev->ops->num_queues; q++)
		if ((t->kick_efd[q] = virtio_kick_fd(dev, q)) < 0)
			goto fail;
	build_config_space(t);
	t->pci.priv = t;
	t->pci.bar_io = bar_io;
	t->pci.cfg_access = cfg_access;
	t->pci.bar_moved = bar_moved;
	if (pci_add(host, &t->pci) < 0)
		goto fail;
	return 0;
fail:
	virtio_pci_destroy(t);
	return CV_EFAIL;
}

void virtio_pci_destroy(struct virtio_pci *t)
{
	if (t->notify_base)
		doorbells(t, t->notify_base, false);
	t->notify_base = 0;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (t->kick_efd[q] >= 0)
			virtio_kick_fd_close(t->dev, t->kick_efd[q]);
		t->kick_efd[q] = -1;
	}
	for (unsigned v = 0; v < VIRTIO_PCI_VECTORS; v++) {
		if (t->irq_efd[v] >= 0)
			close(t->irq_efd[v]);
		t->irq_efd[v] = -1;
	}
}

/* Snapshot version 1 held 8 queue vectors and 9 MSI-X entries whatever
 * the device had; 2 holds the device's own numbers. */
#define V1_QUEUES 8
#define V1_VECTORS (V1_QUEUES + 1)
#define PCI_NFIELDS 8

/* The registers a snapshot keeps, for nq queues and nvec vectors. */
static void pci_fields(struct snap_field f[PCI_NFIELDS], unsigned nq, unsigned nvec)
{
	const struct snap_field fixed[PCI_NFIELDS] = {
		SNAP_FIELD(struct virtio_pci, dev_feat_sel),
		SNAP_FIELD(struct virtio_pci, drv_feat_sel),
		SNAP_FIELD(struct virtio_pci, queue_sel),
		SNAP_FIELD(struct virtio_pci, config_vector),
		{ offsetof(struct virtio_pci, queue_vector), SNAP_INT, sizeof(uint16_t), nq },
		SNAP_FIELD(struct virtio_pci, isr),
		/* The MSI-X table: four 32-bit words an entry. */
		{ offsetof(struct virtio_pci, msix), SNAP_INT, 4, 4 * nvec },
		{ offsetof(struct virtio_pci, pending), SNAP_BOOL, sizeof(bool), nvec },
	};

	memcpy(f, fixed, sizeof(fixed));
}

static bool pci_valid(const void *copy)
{
	const struct virtio_pci *t = copy;

	if (t->config_vector >= t->nvec && t->config_vector != VIRTIO_MSI_NO_VECTOR)
		return false;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		if (t->queue_vector[q] >= t->nvec && t->queue_vector[q] != VIRTIO_MSI_NO_VECTOR)
			return false;
	return true;
}

int virtio_pci_save(struct virtio_pci *t, struct snap_writer *w)
{
	struct snap_field f[PCI_NFIELDS];
	unsigned nq = t->dev->ops->num_queues;

	pci_fields(f, nq, t->nvec);
	pthread_mutex_lock(&t->dev->lock);
	pci_dev_save(&t->pci, w);
	snap_put_u32(w, nq);
	snap_put_u32(w, t->nvec);
	snap_put_fields(w, t, f, PCI_NFIELDS);
	pthread_mutex_unlock(&t->dev->lock);
	return 0;
}

int virtio_pci_load(struct virtio_pci *t, struct snap_reader *r)
{
	struct snap_field f[PCI_NFIELDS];
	unsigned nq = t->dev->ops->num_queues;
	bool v1 = r->version == 1; /* 0: not from a file section, the current layout */
	int rc;

	pthread_mutex_lock(&t->dev->lock);
	rc = pci_dev_load(&t->pci, r);
	if (!rc && !v1) {
		uint32_t saved_nq = snap_get_u32(r), saved_nvec = snap_get_u32(r);

		if (snap_reader_ok(r) && (saved_nq != nq || saved_nvec != t->nvec))
			snap_reader_fail(r, "another number of queues or MSI-X vectors");
		rc = snap_reader_ok(r) ? 0 : CV_EINPUT;
	}
	/* Version 1's fixed arrays: no device had more than fit in them. */
	if (!rc && v1 && nq > V1_QUEUES) {
		snap_reader_fail(r, "more queues than a version 1 section holds");
		rc = CV_EINPUT;
	}
	pci_fields(f, v1 ? V1_QUEUES : nq, v1 ? V1_VECTORS : t->nvec);
	if (!rc)
		rc = snap_load_fields(r, t, sizeof(*t), f, PCI_NFIELDS, pci_valid);
	for (unsigned v = 0; !rc && v < t->nvec; v++)
		unmasked(t, v);
	pthread_mutex_unlock(&t->dev->lock);
	return rc;
}
