/* virtio-mmio transport (virtio 1.2, 4.2), version 2 register layout. The
 * device is announced to the guest with a virtio_mmio.device= entry on the
 * kernel command line; its interrupt is an edge on an IOAPIC pin. */
#ifndef CELLVM_VIRTIO_MMIO_H
#define CELLVM_VIRTIO_MMIO_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot/fields.h"
#include "virtio/device.h"
#include "vmm/bus.h"

#define VIRTIO_MMIO_SIZE 0x1000

struct virtio_mmio {
	struct virtio_dev *dev;
	int vm_fd;
	uint64_t base;
	unsigned gsi;
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel;
	uint32_t isr;
	int irq_efd;
	int kick_efd[VIRTIO_MAX_QUEUES];
};

int virtio_mmio_init(struct virtio_mmio *t, struct virtio_dev *dev, int vm_fd, struct bus *mmio,
		     uint64_t base, unsigned gsi);
void virtio_mmio_destroy(struct virtio_mmio *t);

/* Adds "virtio_mmio.device=4K@0x...:GSI" to the kernel part of cmdline. */
int virtio_mmio_cmdline(const struct virtio_mmio *t, char *cmdline, size_t cap);

/* Snapshots: the selectors and the interrupt status. */
int virtio_mmio_save(struct virtio_mmio *t, struct snap_writer *w);
int virtio_mmio_load(struct virtio_mmio *t, struct snap_reader *r);

#endif
