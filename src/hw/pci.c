#include "hw/pci.h"

#include <string.h>

#include "util/err.h"

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_BAR0 0x10
#define PCI_HEADER_END 0x40
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_BAR_MEM_64 0x4

uint32_t pci_cfg_read(const struct pci_dev *d, unsigned off, unsigned size)
{
	uint32_t v = 0;

	memcpy(&v, &d->cfg[off], size);
	return v;
}

static void put_le(uint8_t *p, unsigned size, uint32_t v)
{
	memcpy(p, &v, size);
}

void pci_cfg_set(struct pci_dev *d, unsigned off, unsigned size, uint32_t v)
{
	put_le(&d->cfg[off], size, v);
}

void pci_dev_header(struct pci_dev *d, uint16_t vendor, uint16_t device, uint32_t class_code, uint16_t sub_vendor,
		    uint16_t sub_device, uint8_t revision)
{
	pci_cfg_set(d, 0x00, 2, vendor);
	pci_cfg_set(d, 0x02, 2, device);
	pci_cfg_set(d, 0x08, 1, revision);
	pci_cfg_set(d, 0x09, 3, class_code);
	pci_cfg_set(d, 0x2c, 2, sub_vendor);
	pci_cfg_set(d, 0x2e, 2, sub_device);
	/* Memory decode, bus mastering, INTx disable; no I/O BARs. */
	put_le(&d->wmask[PCI_COMMAND], 2, 0x0406);
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

void pci_dev_bar64(struct pci_dev *d, unsigned bar, uint64_t size)
{
	uint64_t mask = ~(size - 1);

	d->bar_size[bar] = size;
	pci_cfg_set(d, PCI_BAR0 + 4 * bar, 4, PCI_BAR_MEM_64);
	put_le(&d->wmask[PCI_BAR0 + 4 * bar], 4, (uint32_t)mask & ~0xfu);
	put_le(&d->wmask[PCI_BAR0 + 4 * bar + 4], 4, (uint32_t)(mask >> 32));
}

static uint64_t bar_addr(const struct pci_dev *d, unsigned bar)
{
	uint64_t lo = pci_cfg_read(d, PCI_BAR0 + 4 * bar, 4) & ~0xfULL;

	return lo | (uint64_t)pci_cfg_read(d, PCI_BAR0 + 4 * bar + 4, 4) << 32;
}

/* Recomputes decoded addresses after a header write; tells the device. */
static void update_bars(struct pci_dev *d)
{
	bool on = pci_cfg_read(d, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY;

	for (unsigned b = 0; b < PCI_BARS; b++) {
		uint64_t addr;

		if (!d->bar_size[b])
			continue;
		addr = on ? bar_addr(d, b) : 0;
		/* Half-programmed or sizing values decode nothing. */
		if (addr + d->bar_size[b] < addr)
			addr = 0;
		if (addr != d->bar_mapped[b]) {
			uint64_t old = d->bar_mapped[b];

			d->bar_mapped[b] = addr;
			if (d->bar_moved)
				d->bar_moved(d, b, old, addr);
		}
	}
}

static void cfg_write(struct pci_dev *d, unsigned off, const uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~d->wmask[off + i]) | (data[i] & d->wmask[off + i]));
	if (off < PCI_HEADER_END)
		update_bars(d);
	if (off + size > PCI_HEADER_END && d->cfg_access)
		d->cfg_access(d, off, size, true);
}

static void cfg_read(struct pci_dev *d, unsigned off, uint8_t *data, unsigned size)
{
	if (off + size > PCI_HEADER_END && d->cfg_access)
		d->cfg_access(d, off, size, false);
	memcpy(data, &d->cfg[off], size);
}

/* One config access to bus 0 at devfn/reg; absent functions read ~0. */
static void config_access(struct pci_host *h, unsigned bus, unsigned devfn, unsigned reg, uint8_t *data,
			  unsigned size, bool write)
{
	struct pci_dev *d = (bus == 0 && (devfn & 7) == 0) ? h->slot[devfn >> 3] : NULL;

	if (!d || reg + size > PCI_CFG_SIZE) {
		if (!write)
			memset(data, 0xff, size);
		return;
	}
	pthread_rwlock_wrlock(&h->lock);
	if (write)
		cfg_write(d, reg, data, size);
	else
		cfg_read(d, reg, data, size);
	pthread_rwlock_unlock(&h->lock);
}

static void config_port_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write)
{
	struct pci_host *h = opaque;
	uint32_t a;

	if (port == PCI_CONFIG_PORT) {
		if (size != 4) {
			if (!write)
				memset(data, 0xff, size);
		} else if (write) {
			memcpy(&h->config_address, data, 4);
		} else {
			memcpy(data, &h->config_address, 4);
		}
		return;
	}
	a = h->config_address;
	if (port < PCI_CONFIG_PORT + 4 || !(a & 0x80000000u) || (port & 3) + size > 4) {
		if (!write)
			memset(data, 0xff, size);
		return;
	}
	config_access(h, (a >> 16) & 0xff, (a >> 8) & 0xff, (a & 0xfc) + (unsigned)(port & 3), data, size, write);
}

static void ecam_io(void *opaque, uint64_t addr, uint8_t *data, unsigned size, bool write)
{
	struct pci_host *h = opaque;
	uint64_t off = addr - h->ecam_base;

	if ((off & 0xfff) + size > 0x1000) {
		if (!write)
			memset(data, 0xff, size);
		return;
	}
	config_access(h, (unsigned)(off >> 20), (unsigned)(off >> 12) & 0xff, (unsigned)(off & 0xfff), data, size,
		      write);
}

static void window_io(void *opaque, uint64_t addr, uint8_t *data, unsigned size, bool write)
{
	struct pci_host *h = opaque;

	pthread_rwlock_rdlock(&h->lock);
	for (unsigned s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *d = h->slot[s];

		for (unsigned b = 0; d && b < PCI_BARS; b++) {
			uint64_t base = d->bar_mapped[b];

			if (base && addr >= base && addr - base < d->bar_size[b]) {
				d->bar_io(d, b, addr - base, data, size, write);
				pthread_rwlock_unlock(&h->lock);
				return;
			}
		}
	}
	pthread_rwlock_unlock(&h->lock);
	if (!write)
		memset(data, 0xff, size);
}

int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio, uint64_t ecam_base,
		  uint64_t window_base, uint64_t window_size)
{
	memset(h, 0, sizeof(*h));
	h->ecam_base = ecam_base;
	h->window_base = h->window_next = window_base;
	h->window_end = window_base + window_size;
	if (pthread_rwlock_init(&h->lock, NULL))
		return CV_EFAIL;
	/* 0xcf8 is only the dword address register: 0xcf9 is the reset
	 * control register, another device's. */
	if (bus_register(pio, PCI_CONFIG_PORT, 1, config_port_io, h) ||
	    bus_register(pio, PCI_CONFIG_PORT + 4, 4, config_port_io, h) ||
	    bus_register(mmio, ecam_base, PCI_ECAM_SIZE, ecam_io, h) ||
	    bus_register(mmio, window_base, window_size, window_io, h)) {
		cv_err("PCI host windows overlap other devices");
		pthread_rwlock_destroy(&h->lock);
		return CV_EFAIL;
	}
	/* 00:00.0, the host bridge itself (Red Hat's generic PCIe host id). */
	pci_dev_header(&h->bridge, 0x1b36, 0x0008, 0x060000, 0x1af4, 0x1100, 0);
	h->slot[0] = &h->bridge;
	return 0;
}

void pci_host_destroy(struct pci_host *h)
{
	pthread_rwlock_destroy(&h->lock);
}

int pci_add(struct pci_host *h, struct pci_dev *d)
{
	unsigned s;

	for (s = 1; s < PCI_SLOTS && h->slot[s]; s++)
		;
	if (s == PCI_SLOTS) {
		cv_err("no free PCI slot");
		return CV_EFAIL;
	}
	if (d->cfg[0x34])
		pci_cfg_set(d, PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
	/* Firmware's job: give each BAR a naturally aligned address. */
	for (unsigned b = 0; b < PCI_BARS; b++) {
		uint64_t size = d->bar_size[b], at = (h->window_next + size - 1) & ~(size - 1);

		if (!size)
			continue;
		if (at + size > h->window_end) {
			cv_err("PCI memory window is full");
			return CV_EFAIL;
		}
		h->window_next = at + size;
		pci_cfg_set(d, PCI_BAR0 + 4 * b, 4, (uint32_t)at | PCI_BAR_MEM_64);
		pci_cfg_set(d, PCI_BAR0 + 4 * b + 4, 4, (uint32_t)(at >> 32));
	}
	h->slot[s] = d;
	return (int)s;
}

void pci_dev_save(const struct pci_dev *d, struct snap_writer *w)
{
	snap_put_bytes(w, d->cfg, PCI_CFG_SIZE);
}

int pci_dev_load(struct pci_dev *d, struct snap_reader *r)
{
	uint8_t cfg[PCI_CFG_SIZE];

	snap_get_bytes(r, cfg, sizeof(cfg));
	for (unsigned i = 0; i < PCI_CFG_SIZE && snap_reader_ok(r); i++)
		if ((cfg[i] ^ d->cfg[i]) & ~d->wmask[i])
			snap_reader_fail(r, "PCI configuration space of another device");
	if (!snap_reader_ok(r))
		return CV_EINPUT;
	memcpy(d->cfg, cfg, sizeof(cfg));
	update_bars(d);
	return 0;
}

int pci_host_save(void *host, struct snap_writer *w)
{
	struct pci_host *h = host;

	pthread_rwlock_rdlock(&h->lock);
	snap_put_u32(w, h->config_address);
	pci_dev_save(&h->bridge, w);
	pthread_rwlock_unlock(&h->lock);
	return 0;
}

int pci_host_load(void *host, struct snap_reader *r)
{
	struct pci_host *h = host;
	uint32_t addr = snap_get_u32(r);
	int rc;

	pthread_rwlock_wrlock(&h->lock);
	rc = pci_dev_load(&h->bridge, r);
	if (!rc)
		h->config_address = addr;
	pthread_rwlock_unlock(&h->lock);
	return rc;
}
