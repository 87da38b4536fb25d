/* virtio-pci modern transport (virtio 1.2, 4.1): the common, notify, ISR
 * and device configuration structures in one 64-bit memory BAR, MSI-X for
 * interrupts (KVM MSI routes fed by irqfds) and ioeventfd doorbells. */
#ifndef CELLVM_VIRTIO_PCI_H
#define CELLVM_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/pci.h"
#include "snapshot/fields.h"
#include "virtio/device.h"
#include "vmm/irq.h"

#define VIRTIO_PCI_VECTORS (VIRTIO_MAX_QUEUES + 1)

struct virtio_pci {
	struct pci_dev pci;
	struct virtio_dev *dev;
	struct irq_router *irq;
	int vm_fd;
	uint32_t dev_feat_sel, drv_feat_sel;
	uint16_t queue_sel, config_vector, queue_vector[VIRTIO_MAX_QUEUES];
	uint8_t isr;
	unsigned nvec;
	struct {
		uint32_t addr_lo, addr_hi, data, ctrl;
	} msix[VIRTIO_PCI_VECTORS];
	bool pending[VIRTIO_PCI_VECTORS];
	unsigned gsi[VIRTIO_PCI_VECTORS];
	int irq_efd[VIRTIO_PCI_VECTORS];
	int kick_efd[VIRTIO_MAX_QUEUES];
	uint64_t notify_base; /* guest address the doorbells are registered at */
};

int virtio_pci_init(struct virtio_pci *t, struct virtio_dev *dev, struct pci_host *host, struct irq_router *irq,
		    int vm_fd);
void virtio_pci_destroy(struct virtio_pci *t);

/* Snapshots: config space, selectors, vectors, the MSI-X table and
 * pending bits. Resume re-creates what follows from them (doorbells at the
 * BAR's address, MSI routes of unmasked vectors). */
int virtio_pci_save(struct virtio_pci *t, struct snap_writer *w);
int virtio_pci_load(struct virtio_pci *t, struct snap_reader *r);

#endif
