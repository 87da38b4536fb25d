/* PCI bus 0 behind a host bridge: configuration space through ports
 * 0xcf8/0xcfc and an ECAM window, and a memory window where device BARs
 * live. The host owns every device's standard header; devices hook the
 * rest (capabilities) and their BARs. */
#ifndef CELLVM_HW_PCI_H
#define CELLVM_HW_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "snapshot/fields.h"
#include "vmm/bus.h"

#define PCI_SLOTS 32
#define PCI_BARS 6
#define PCI_CFG_SIZE 256
#define PCI_CONFIG_PORT 0xcf8
#define PCI_ECAM_SIZE (1ULL << 20) /* bus 0 only */

struct pci_dev {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may change */
	uint64_t bar_size[PCI_BARS]; /* 0: no BAR; a 64-bit BAR takes two */
	uint64_t bar_mapped[PCI_BARS]; /* decoded address, 0 when off */
	/* Access to a BAR at offset `off` (host lock held for reading). */
	void (*bar_io)(struct pci_dev *d, unsigned bar, uint64_t off, uint8_t *data, unsigned size, bool write);
	/* Config bytes [off, off+size) beyond the header were written, or are
	 * about to be read. */
	void (*cfg_access)(struct pci_dev *d, unsigned off, unsigned size, bool write);
	/* A BAR moved (guest reprogrammed it or toggled decoding). */
	void (*bar_moved)(struct pci_dev *d, unsigned bar, uint64_t old_addr, uint64_t new_addr);
	void *priv;
};

struct pci_host {
	pthread_rwlock_t lock;
	struct pci_dev *slot[PCI_SLOTS];
	struct pci_dev bridge;
	uint32_t config_address;
	uint64_t window_base, window_next, window_end, ecam_base;
};

/* Claims the config ports, the ECAM window and the BAR window on the buses. */
int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio, uint64_t ecam_base,
		  uint64_t window_base, uint64_t window_size);
void pci_host_destroy(struct pci_host *h);

/* Header helpers for device set-up (before pci_add). */
void pci_dev_header(struct pci_dev *d, uint16_t vendor, uint16_t device, uint32_t class_code, uint16_t sub_vendor,
		    uint16_t sub_device, uint8_t revision);
/* Declares a 64-bit memory BAR of `size` (power of two >= 4 KiB). */
void pci_dev_bar64(struct pci_dev *d, unsigned bar, uint64_t size);

/* Puts d in the first free slot and gives its BARs addresses. Returns the
 * slot or CV_EFAIL. */
int pci_add(struct pci_host *h, struct pci_dev *d);

/* Little-endian accessors for config space. */
uint32_t pci_cfg_read(const struct pci_dev *d, unsigned off, unsigned size);
void pci_cfg_set(struct pci_dev *d, unsigned off, unsigned size, uint32_t v);

/* Snapshots. A device's config space: saved whole; on load the bits the
 * guest cannot write must match this device's (else it is another
 * device), and BAR decoding follows the loaded header. */
void pci_dev_save(const struct pci_dev *d, struct snap_writer *w);
int pci_dev_load(struct pci_dev *d, struct snap_reader *r);
/* The host: its address latch and the host bridge's config space. */
int pci_host_save(void *host, struct snap_writer *w);
int pci_host_load(void *host, struct snap_reader *r);

#endif
