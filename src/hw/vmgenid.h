/* VM Generation ID (Microsoft's "Virtual Machine Generation ID" ACPI
 * device, as QEMU and Firecracker provide it): 16 bytes in reserved guest
 * memory that change whenever the VM is restored from a snapshot, with an
 * ACPI notification, so the guest knows it may be one of several copies
 * (Linux reseeds its RNG; other software regenerates identities). */
#ifndef CELLVM_HW_VMGENID_H
#define CELLVM_HW_VMGENID_H

#include "hw/pm.h"
#include "vmm/memory.h"

#define VMGENID_LEN 16
#define VMGENID_GPE 0 /* the DSDT's \_GPE._E00 notifies the device */

/* Writes a new random ID at addr. 0 or CV_EFAIL. */
int vmgenid_new(struct guest_mem *m, uint64_t addr);
/* A new ID and the notification: for a VM that was just restored. */
int vmgenid_changed(struct guest_mem *m, uint64_t addr, struct pm *pm);

#endif
