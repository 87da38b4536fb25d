/* The PCI host bridge (src/hw/pci.c): configuration space through ports
 * 0xcf8/0xcfc and ECAM, BAR placement, sizing and decoding, and the memory
 * window that routes accesses to device BARs. Everything goes through
 * bus_access(), as a vCPU exit would. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "hw/pci.h"
#include "vmm/bus.h"

#define ECAM 0xe0000000ULL
#define WIN 0xc0000000ULL
#define WIN_SIZE 0x10000000ULL
#define BAR_SZ 0x8000ULL
#define CMD_MEM 0x2

/* A device model that records what the host tells it. */
struct fdev {
	struct pci_dev pci;
	unsigned moved, moved_bar;
	uint64_t moved_old, moved_new;
	unsigned io_calls, io_bar, io_size;
	uint64_t io_off;
	bool io_write;
	unsigned cfg_calls, cfg_off, cfg_size;
	bool cfg_write;
	uint8_t mem[BAR_SZ];
};

struct env {
	struct bus pio, mmio;
	struct pci_host h;
	struct fdev d[2];
};

static void fdev_bar_io(struct pci_dev *p, unsigned bar, uint64_t off, uint8_t *data, unsigned size, bool write)
{
	struct fdev *f = p->priv;

	f->io_calls++;
	f->io_bar = bar;
	f->io_off = off;
	f->io_size = size;
	f->io_write = write;
	assert_true(off + size <= BAR_SZ);
	if (write)
		memcpy(&f->mem[off], data, size);
	else
		memcpy(data, &f->mem[off], size);
}

static void fdev_bar_moved(struct pci_dev *p, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
	struct fdev *f = p->priv;

	f->moved++;
	f->moved_bar = bar;
	f->moved_old = old_addr;
	f->moved_new = new_addr;
}

static void fdev_cfg_access(struct pci_dev *p, unsigned off, unsigned size, bool write)
{
	struct fdev *f = p->priv;

	f->cfg_calls++;
	f->cfg_off = off;
	f->cfg_size = size;
	f->cfg_write = write;
}

static void fdev_init(struct fdev *f, uint16_t device, uint64_t bar_size)
{
	memset(f, 0, sizeof(*f));
	pci_dev_header(&f->pci, 0x1af4, device, 0x018000, 0x1af4, 0x0002, 7);
	if (bar_size)
		pci_dev_bar64(&f->pci, 0, bar_size);
	f->pci.priv = f;
	f->pci.bar_io = fdev_bar_io;
	f->pci.bar_moved = fdev_bar_moved;
	f->pci.cfg_access = fdev_cfg_access;
	for (unsigned i = 0; i < BAR_SZ; i++)
		f->mem[i] = (uint8_t)(i ^ (i >> 8));
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e || pci_host_init(&e->h, &e->pio, &e->mmio, ECAM, WIN, WIN_SIZE)) {
		free(e);
		return -1;
	}
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	pci_host_destroy(&e->h);
	free(e);
	return 0;
}

/* Adds d[0] (slot 1) with a 32 KiB BAR. */
static struct fdev *add_dev(struct env *e)
{
	fdev_init(&e->d[0], 0x1042, BAR_SZ);
	assert_int_equal(pci_add(&e->h, &e->d[0].pci), 1);
	return &e->d[0];
}

/* ---- access helpers ------------------------------------------------------ */

static uint32_t get(const uint8_t *b, unsigned size)
{
	uint32_t v = 0;

	memcpy(&v, b, size);
	return v;
}

static void select_reg(struct env *e, unsigned bus, unsigned devfn, unsigned reg, bool enable)
{
	uint32_t a = (enable ? 0x80000000u : 0) | bus << 16 | devfn << 8 | (reg & 0xfc);
	uint8_t b[4];

	memcpy(b, &a, 4);
	assert_true(bus_access(&e->pio, 0xcf8, b, 4, true));
}

/* Port read of `size` bytes of register `reg` (the data port offset is reg & 3). */
static uint32_t port_read(struct env *e, unsigned devfn, unsigned reg, unsigned size)
{
	uint8_t b[4] = { 0x11, 0x22, 0x33, 0x44 };

	select_reg(e, 0, devfn, reg, true);
	assert_true(bus_access(&e->pio, 0xcfc + (reg & 3), b, size, false));
	return get(b, size);
}

static void port_write(struct env *e, unsigned devfn, unsigned reg, unsigned size, uint32_t v)
{
	uint8_t b[4];

	memcpy(b, &v, 4);
	select_reg(e, 0, devfn, reg, true);
	assert_true(bus_access(&e->pio, 0xcfc + (reg & 3), b, size, true));
}

static uint64_t ecam_addr(unsigned dev, unsigned fn, unsigned reg)
{
	return ECAM + ((uint64_t)dev << 15) + ((uint64_t)fn << 12) + reg;
}

static uint32_t ecam_read(struct env *e, unsigned dev, unsigned fn, unsigned reg, unsigned size)
{
	uint8_t b[4] = { 0x11, 0x22, 0x33, 0x44 };

	assert_true(bus_access(&e->mmio, ecam_addr(dev, fn, reg), b, size, false));
	return get(b, size);
}

static void ecam_write(struct env *e, unsigned dev, unsigned reg, unsigned size, uint32_t v)
{
	uint8_t b[4];

	memcpy(b, &v, 4);
	assert_true(bus_access(&e->mmio, ecam_addr(dev, 0, reg), b, size, true));
}

static uint32_t ones(unsigned size)
{
	return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

/* ---- tests --------------------------------------------------------------- */

static void test_host_bridge_through_ports(void **state)
{
	struct env *e = *state;

	assert_int_equal(port_read(e, 0, 0x00, 4), 0x00081b36);
	assert_int_equal(port_read(e, 0, 0x00, 2), 0x1b36);
	assert_int_equal(port_read(e, 0, 0x02, 2), 0x0008);
	assert_int_equal(port_read(e, 0, 0x00, 1), 0x36);
	assert_int_equal(port_read(e, 0, 0x01, 1), 0x1b);
	assert_int_equal(port_read(e, 0, 0x02, 1), 0x08);
	assert_int_equal(port_read(e, 0, 0x03, 1), 0x00);
	/* Class: host bridge (06 00 00) above revision 0. */
	assert_int_equal(port_read(e, 0, 0x08, 4), 0x06000000);
	assert_int_equal(port_read(e, 0, 0x0b, 1), 0x06);
	/* Subsystem. */
	assert_int_equal(port_read(e, 0, 0x2c, 4), 0x11001af4);
}

static void test_config_address_register(void **state)
{
	struct env *e = *state;
	uint8_t b[4];

	select_reg(e, 0, 0x08, 0x10, true);
	assert_true(bus_access(&e->pio, 0xcf8, b, 4, false));
	assert_int_equal(get(b, 4), 0x80000810);
	/* Only dword accesses reach the address register. */
	memset(b, 0, sizeof(b));
	assert_true(bus_access(&e->pio, 0xcf8, b, 2, true));
	assert_true(bus_access(&e->pio, 0xcf8, b, 4, false));
	assert_int_equal(get(b, 4), 0x80000810);
	assert_true(bus_access(&e->pio, 0xcf8, b, 1, false));
	assert_int_equal(b[0], 0xff);
}

static void test_absent_functions_read_ones(void **state)
{
	struct env *e = *state;
	uint8_t b[4];

	add_dev(e);
	for (unsigned size = 1; size <= 4; size *= 2) {
		assert_int_equal(port_read(e, 5 << 3, 0, size), ones(size));      /* empty slot */
		assert_int_equal(port_read(e, (0 << 3) | 1, 0, size), ones(size)); /* 00:00.1 */
		assert_int_equal(port_read(e, (1 << 3) | 7, 0, size), ones(size)); /* 00:01.7 */
		assert_int_equal(port_read(e, 31 << 3, 0, size), ones(size));
		assert_int_equal(ecam_read(e, 5, 0, 0, size), ones(size));
		assert_int_equal(ecam_read(e, 0, 1, 0, size), ones(size));
		assert_int_equal(ecam_read(e, 1, 3, 0, size), ones(size));
	}
	/* Bus 1 does not exist. */
	select_reg(e, 1, 0, 0, true);
	assert_true(bus_access(&e->pio, 0xcfc, b, 4, false));
	assert_int_equal(get(b, 4), 0xffffffff);
	/* Without the enable bit the data port decodes nothing. */
	select_reg(e, 0, 0, 0, false);
	assert_true(bus_access(&e->pio, 0xcfc, b, 4, false));
	assert_int_equal(get(b, 4), 0xffffffff);
	/* Writes to absent functions go nowhere (and do not crash). */
	port_write(e, 5 << 3, 0x04, 2, 0xffff);
	assert_int_equal(port_read(e, 5 << 3, 0x04, 2), 0xffff);
}

static void test_ecam_agrees_with_ports(void **state)
{
	struct env *e = *state;

	add_dev(e);
	for (unsigned dev = 0; dev < 3; dev++) {
		for (unsigned reg = 0; reg < PCI_CFG_SIZE; reg++) {
			for (unsigned size = 1; size <= 4; size *= 2) {
				uint32_t p, m;

				if ((reg & 3) + size > 4)
					continue;
				p = port_read(e, dev << 3, reg, size);
				m = ecam_read(e, dev, 0, reg, size);
				if (p != m)
					fail_msg("00:%02x.0 reg 0x%02x size %u: port 0x%x, ECAM 0x%x", dev, reg, size, p,
						 m);
			}
		}
	}
	assert_int_equal(ecam_read(e, 1, 0, 0, 4), 0x10421af4);
}

static void test_bar_placement(void **state)
{
	struct env *e = *state;
	uint64_t a0, a1;

	fdev_init(&e->d[0], 0x1042, BAR_SZ);
	fdev_init(&e->d[1], 0x1041, 0x100000);
	assert_int_equal(pci_add(&e->h, &e->d[0].pci), 1);
	assert_int_equal(pci_add(&e->h, &e->d[1].pci), 2);
	a0 = (ecam_read(e, 1, 0, 0x10, 4) & ~0xfULL) | (uint64_t)ecam_read(e, 1, 0, 0x14, 4) << 32;
	a1 = (ecam_read(e, 2, 0, 0x10, 4) & ~0xfULL) | (uint64_t)ecam_read(e, 2, 0, 0x14, 4) << 32;
	/* 64-bit memory BARs (type bits 10b), inside the window, naturally aligned. */
	assert_int_equal(ecam_read(e, 1, 0, 0x10, 4) & 0xf, 0x4);
	assert_int_equal(ecam_read(e, 2, 0, 0x10, 4) & 0xf, 0x4);
	assert_true(a0 >= WIN && a0 + BAR_SZ <= WIN + WIN_SIZE);
	assert_true(a1 >= WIN && a1 + 0x100000 <= WIN + WIN_SIZE);
	assert_int_equal(a0 % BAR_SZ, 0);
	assert_int_equal(a1 % 0x100000, 0);
	assert_true(a0 + BAR_SZ <= a1 || a1 + 0x100000 <= a0);
	/* Until the guest enables decoding, nothing is mapped. */
	assert_int_equal(e->d[0].moved, 0);
	assert_int_equal(e->d[0].pci.bar_mapped[0], 0);
}

static void test_window_full(void **state)
{
	struct env *e = *state;

	add_dev(e);
	/* The window is 256 MiB and 32 KiB of it is taken. */
	fdev_init(&e->d[1], 0x1041, WIN_SIZE);
	assert_true(pci_add(&e->h, &e->d[1].pci) < 0);
	assert_int_equal(ecam_read(e, 2, 0, 0, 4), 0xffffffff);
}

static void test_slots_full(void **state)
{
	struct env *e = *state;
	struct fdev *f = calloc(PCI_SLOTS, sizeof(*f));

	assert_non_null(f);
	for (unsigned i = 1; i < PCI_SLOTS; i++) {
		fdev_init(&f[i], (uint16_t)i, 0);
		assert_int_equal(pci_add(&e->h, &f[i].pci), (int)i);
	}
	fdev_init(&f[0], 0, 0);
	assert_true(pci_add(&e->h, &f[0].pci) < 0);
	assert_int_equal(ecam_read(e, 31, 0, 2, 2), 31);
	free(f);
}

static void test_bar_sizing(void **state)
{
	struct env *e = *state;
	uint32_t lo, hi;

	add_dev(e);
	lo = ecam_read(e, 1, 0, 0x10, 4);
	hi = ecam_read(e, 1, 0, 0x14, 4);
	ecam_write(e, 1, 0x10, 4, 0xffffffff);
	ecam_write(e, 1, 0x14, 4, 0xffffffff);
	/* ~(size - 1) with the 64-bit memory type in the low bits. */
	assert_int_equal(ecam_read(e, 1, 0, 0x10, 4), (uint32_t)~(BAR_SZ - 1) | 0x4);
	assert_int_equal(ecam_read(e, 1, 0, 0x14, 4), 0xffffffff);
	/* Through the ports as well. */
	assert_int_equal(port_read(e, 1 << 3, 0x10, 4), (uint32_t)~(BAR_SZ - 1) | 0x4);
	/* Decoding was off: sizing moved nothing. */
	assert_int_equal(e->d[0].moved, 0);
	ecam_write(e, 1, 0x10, 4, lo);
	ecam_write(e, 1, 0x14, 4, hi);
	assert_int_equal(ecam_read(e, 1, 0, 0x10, 4), lo);
	assert_int_equal(ecam_read(e, 1, 0, 0x14, 4), hi);
	/* Unimplemented BARs stay 0. */
	for (unsigned reg = 0x18; reg <= 0x24; reg += 4) {
		ecam_write(e, 1, reg, 4, 0xffffffff);
		assert_int_equal(ecam_read(e, 1, 0, reg, 4), 0);
	}
	/* Low address bits below the BAR size are not writable. */
	ecam_write(e, 1, 0x10, 4, 0x12345670);
	assert_int_equal(ecam_read(e, 1, 0, 0x10, 4), 0x12340004);
}

static void test_read_only_fields(void **state)
{
	struct env *e = *state;
	uint8_t before[64];

	add_dev(e);
	for (unsigned reg = 0; reg < 64; reg++)
		before[reg] = (uint8_t)ecam_read(e, 1, 0, reg, 1);
	ecam_write(e, 1, 0x00, 4, 0x12345678); /* vendor, device */
	ecam_write(e, 1, 0x08, 4, 0xffffffff); /* revision, class */
	ecam_write(e, 1, 0x0c, 4, 0xffffffff); /* header type etc. */
	ecam_write(e, 1, 0x2c, 4, 0);          /* subsystem */
	ecam_write(e, 1, 0x34, 1, 0x80);       /* capability pointer */
	port_write(e, 1 << 3, 0x00, 2, 0xabcd);
	port_write(e, 1 << 3, 0x0b, 1, 0x02);
	for (unsigned reg = 0; reg < 64; reg++) {
		if (reg >= 0x10 && reg < 0x28)
			continue; /* BARs */
		if ((uint8_t)ecam_read(e, 1, 0, reg, 1) != before[reg])
			fail_msg("read-only config byte 0x%02x changed", reg);
	}
	assert_int_equal(ecam_read(e, 1, 0, 0, 4), 0x10421af4);
	assert_int_equal(ecam_read(e, 1, 0, 0x09, 2), 0x8000);
	assert_int_equal(ecam_read(e, 1, 0, 0x0b, 1), 0x01);
	/* Command: memory, bus master and INTx disable only. */
	ecam_write(e, 1, 0x04, 2, 0xffff);
	assert_int_equal(ecam_read(e, 1, 0, 0x04, 2), 0x0406);
	/* Interrupt line is scratch for the OS; the pin is not. */
	ecam_write(e, 1, 0x3c, 2, 0xffff);
	assert_int_equal(ecam_read(e, 1, 0, 0x3c, 2), 0x00ff);
	/* The host bridge is read-only too. */
	port_write(e, 0, 0x00, 4, 0);
	assert_int_equal(port_read(e, 0, 0x00, 4), 0x00081b36);
}

static void test_memory_enable_gates_decoding(void **state)
{
	struct env *e = *state;
	struct fdev *f = add_dev(e);
	uint8_t b[4];

	/* Decoding off: the window is empty there. */
	assert_true(bus_access(&e->mmio, WIN + 0x10, b, 4, false));
	assert_int_equal(get(b, 4), 0xffffffff);
	assert_int_equal(f->io_calls, 0);

	ecam_write(e, 1, 0x04, 2, CMD_MEM);
	assert_int_equal(f->moved, 1);
	assert_int_equal(f->moved_bar, 0);
	assert_int_equal(f->moved_old, 0);
	assert_int_equal(f->moved_new, WIN);
	assert_int_equal(f->pci.bar_mapped[0], WIN);
	/* Writing the same command again moves nothing. */
	ecam_write(e, 1, 0x04, 2, CMD_MEM);
	assert_int_equal(f->moved, 1);

	ecam_write(e, 1, 0x04, 2, 0);
	assert_int_equal(f->moved, 2);
	assert_int_equal(f->moved_old, WIN);
	assert_int_equal(f->moved_new, 0);
	assert_true(bus_access(&e->mmio, WIN + 0x10, b, 4, false));
	assert_int_equal(get(b, 4), 0xffffffff);
	assert_int_equal(f->io_calls, 0);

	/* Reprogrammed while decoding: the device hears the new address. */
	ecam_write(e, 1, 0x04, 2, CMD_MEM);
	assert_int_equal(f->moved, 3);
	ecam_write(e, 1, 0x10, 4, (uint32_t)(WIN + 0x100000));
	assert_int_equal(f->moved, 4);
	assert_int_equal(f->moved_old, WIN);
	assert_int_equal(f->moved_new, WIN + 0x100000);
	assert_true(bus_access(&e->mmio, WIN + 0x100000 + 8, b, 1, false));
	assert_int_equal(f->io_calls, 1);
	assert_int_equal(f->io_off, 8);
	/* Sizing with decoding on must not map the BAR at a wrapped address. */
	ecam_write(e, 1, 0x14, 4, 0xffffffff);
	ecam_write(e, 1, 0x10, 4, 0xffffffff);
	assert_int_equal(f->pci.bar_mapped[0], 0);
	assert_int_equal(f->moved_new, 0);
}

static void test_bar_access_reaches_device(void **state)
{
	struct env *e = *state;
	struct fdev *f = add_dev(e);
	uint8_t b[8];

	ecam_write(e, 1, 0x04, 2, CMD_MEM);
	for (unsigned size = 1; size <= 8; size *= 2) {
		uint64_t off = 0x1230 + size;

		memset(b, 0, sizeof(b));
		assert_true(bus_access(&e->mmio, WIN + off, b, size, false));
		assert_int_equal(f->io_off, off);
		assert_int_equal(f->io_size, size);
		assert_int_equal(f->io_bar, 0);
		assert_false(f->io_write);
		assert_memory_equal(b, &f->mem[off], size);
	}
	memcpy(b, "\xde\xad\xbe\xef\x01\x02\x03\x04", 8);
	assert_true(bus_access(&e->mmio, WIN + BAR_SZ - 8, b, 8, true));
	assert_true(f->io_write);
	assert_int_equal(f->io_off, BAR_SZ - 8);
	assert_memory_equal(&f->mem[BAR_SZ - 8], b, 8);
	/* Just past the BAR: nobody's. */
	f->io_calls = 0;
	assert_true(bus_access(&e->mmio, WIN + BAR_SZ, b, 4, false));
	assert_int_equal(get(b, 4), 0xffffffff);
	assert_int_equal(f->io_calls, 0);
}

static void test_reset_port_not_claimed(void **state)
{
	struct env *e = *state;
	uint8_t b[4] = { 0x06 };

	select_reg(e, 0, 0, 0x04, true);
	assert_false(bus_access(&e->pio, 0xcf9, b, 1, true));
	assert_false(bus_access(&e->pio, 0xcf9, b, 1, false));
	assert_int_equal(b[0], 0xff);
	assert_false(bus_access(&e->pio, 0xcfa, b, 1, false));
	assert_false(bus_access(&e->pio, 0xcfb, b, 1, false));
	assert_false(bus_access(&e->pio, 0xcf7, b, 1, false));
	assert_false(bus_access(&e->pio, 0xd00, b, 1, false));
	/* The 0xcf9 write did not touch the address register. */
	assert_int_equal(e->h.config_address, 0x80000004);
}

static void test_accesses_crossing_the_end_refused(void **state)
{
	struct env *e = *state;
	struct fdev *f;
	uint8_t b[4];

	fdev_init(&e->d[0], 0x1042, BAR_SZ);
	f = &e->d[0];
	/* Make the last dword writable so a wrongly accepted write shows. */
	memset(&f->pci.wmask[0xfc], 0xff, 4);
	assert_int_equal(pci_add(&e->h, &f->pci), 1);

	ecam_write(e, 1, 0xfc, 4, 0x44332211);
	assert_int_equal(ecam_read(e, 1, 0, 0xfc, 4), 0x44332211);
	f->cfg_calls = 0;
	/* Reads running past byte 255 see all ones, writes are dropped. */
	assert_int_equal(ecam_read(e, 1, 0, 0xfe, 4), 0xffffffff);
	assert_int_equal(ecam_read(e, 1, 0, 0xff, 2), 0xffff);
	ecam_write(e, 1, 0xfe, 4, 0xaaaaaaaa);
	ecam_write(e, 1, 0xff, 2, 0xbbbb);
	assert_int_equal(f->cfg_calls, 0);
	assert_int_equal(ecam_read(e, 1, 0, 0xfc, 4), 0x44332211);
	assert_int_equal(ecam_read(e, 1, 0, 0xfe, 2), 0x4433); /* in bounds: fine */
	/* Extended configuration space does not exist here. */
	assert_int_equal(ecam_read(e, 1, 0, 0x100, 4), 0xffffffff);
	assert_int_equal(ecam_read(e, 1, 0, 0xffc, 4), 0xffffffff);
	/* An ECAM access crossing into the next function's page. */
	assert_true(bus_access(&e->mmio, ecam_addr(1, 0, 0xffe), b, 4, false));
	assert_int_equal(get(b, 4), 0xffffffff);
	/* Port accesses crossing the data dword, also mid-space. */
	f->pci.cfg[0x44] = 0x5a;
	select_reg(e, 0, 1 << 3, 0x40, true);
	assert_true(bus_access(&e->pio, 0xcfe, b, 4, false));
	assert_int_equal(get(b, 4), 0xffffffff);
	assert_true(bus_access(&e->pio, 0xcff, b, 2, false));
	assert_int_equal(get(b, 2), 0xffff);
	assert_true(bus_access(&e->pio, 0xcfd, b, 4, false));
	assert_int_equal(get(b, 4), 0xffffffff);
	select_reg(e, 0, 1 << 3, 0xfc, true);
	assert_true(bus_access(&e->pio, 0xcfe, b, 4, false));
	assert_int_equal(get(b, 4), 0xffffffff);
	memset(b, 0x99, 4);
	assert_true(bus_access(&e->pio, 0xcfd, b, 4, true));
	assert_int_equal(ecam_read(e, 1, 0, 0xfc, 4), 0x44332211);
}

static void test_device_hooks_beyond_header(void **state)
{
	struct env *e = *state;
	struct fdev *f = add_dev(e);

	f->pci.cfg[0x40] = 0xab;
	assert_int_equal(ecam_read(e, 1, 0, 0x40, 1), 0xab);
	assert_int_equal(f->cfg_calls, 1);
	assert_int_equal(f->cfg_off, 0x40);
	assert_int_equal(f->cfg_size, 1);
	assert_false(f->cfg_write);
	ecam_write(e, 1, 0x80, 4, 1);
	assert_int_equal(f->cfg_calls, 2);
	assert_int_equal(f->cfg_off, 0x80);
	assert_int_equal(f->cfg_size, 4);
	assert_true(f->cfg_write);
	/* Header accesses are the host's alone. */
	ecam_read(e, 1, 0, 0x3c, 4);
	ecam_write(e, 1, 0x04, 2, 0);
	assert_int_equal(f->cfg_calls, 2);
}

static void test_capability_list_status_bit(void **state)
{
	struct env *e = *state;

	fdev_init(&e->d[0], 0x1042, 0);
	fdev_init(&e->d[1], 0x1043, 0);
	e->d[1].pci.cfg[0x34] = 0x40;
	assert_int_equal(pci_add(&e->h, &e->d[0].pci), 1);
	assert_int_equal(pci_add(&e->h, &e->d[1].pci), 2);
	assert_int_equal(ecam_read(e, 1, 0, 0x06, 2) & 0x10, 0);
	assert_int_equal(ecam_read(e, 2, 0, 0x06, 2) & 0x10, 0x10);
	assert_int_equal(ecam_read(e, 2, 0, 0x34, 1), 0x40);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_host_bridge_through_ports),
		T(test_config_address_register),
		T(test_absent_functions_read_ones),
		T(test_ecam_agrees_with_ports),
		T(test_bar_placement),
		T(test_window_full),
		T(test_slots_full),
		T(test_bar_sizing),
		T(test_read_only_fields),
		T(test_memory_enable_gates_decoding),
		T(test_bar_access_reaches_device),
		T(test_reset_port_not_claimed),
		T(test_accesses_crossing_the_end_refused),
		T(test_device_hooks_beyond_header),
		T(test_capability_list_status_bit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
