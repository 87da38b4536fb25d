/* The VM's virtio devices: built from the configuration, each attached to
 * the configured transport. */
#ifndef CELLVM_VMM_DEVICES_H
#define CELLVM_VMM_DEVICES_H

#include <stddef.h>

#include "block/block.h"
#include "vmm/config.h"

#include "virtio/mmio.h"
#include "virtio/pci.h"

struct vm;

#define VM_MAX_DEVICES 16
#define DISK_MAX_INFLIGHT 256

struct vm_device {
	struct virtio_dev *dev;
	enum virtio_transport_kind kind;
	bool attached;
	union {
		struct virtio_mmio mmio;
		struct virtio_pci pci;
	} t;
};

/* Creates the devices and appends what the guest must be told (MMIO
 * device entries) to cmdline. */
int devices_create(struct vm *vm, char *cmdline, size_t cap);
/* Opens path as disk i's block back-end (in disk i's format and mode). */
int devices_open_disk(struct vm *vm, unsigned i, const char *path, struct block **out);
/* How many request queues disk i has: queues=, else one per vCPU. */
unsigned devices_disk_queues(const struct vm_config *cfg, unsigned i);
/* Disk i's virtio-blk device. */
struct virtio_dev *devices_disk(struct vm *vm, unsigned i);
/* NIC i's virtio-net device. */
struct virtio_dev *devices_nic(struct vm *vm, unsigned i);
void devices_destroy(struct vm *vm);

#endif
