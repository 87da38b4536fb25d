/* The VM's virtio devices: built from the configuration, each attached to
 * the configured transport. */
#ifndef CELLVM_VMM_DEVICES_H
#define CELLVM_VMM_DEVICES_H

#include <stddef.h>

#include "vmm/config.h"

#include "virtio/mmio.h"
#include "virtio/pci.h"

struct vm;

#define VM_MAX_DEVICES 16

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
void devices_destroy(struct vm *vm);

#endif
