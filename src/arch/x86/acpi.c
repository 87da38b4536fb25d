#include "arch/x86/acpi.h"

#include <string.h>

#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "hw/pci.h"
#include "hw/pm.h"
#include "hw/serial.h"
#include "util/err.h"

struct __attribute__((packed)) acpi_header {
	char sig[4];
	uint32_t length;
	uint8_t revision, checksum;
	char oem_id[6], oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
};

struct __attribute__((packed)) acpi_rsdp {
	char sig[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt;
	uint32_t length;
	uint64_t xsdt;
	uint8_t ext_checksum, reserved[3];
};

struct __attribute__((packed)) acpi_gas {
	uint8_t space, bit_width, bit_offset, access_size;
	uint64_t address;
};

struct __attribute__((packed)) acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl, dsdt;
	uint8_t reserved0, pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt, pm1b_evt, pm1a_cnt, pm1b_cnt, pm2_cnt, pm_tmr, gpe0, gpe1;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_len, gpe1_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl, x_dsdt;
	struct acpi_gas x_pm1a_evt, x_pm1b_evt, x_pm1a_cnt, x_pm1b_cnt, x_pm2_cnt, x_pm_tmr, x_gpe0,
		x_gpe1, sleep_control, sleep_status;
	uint64_t hypervisor_id;
};

struct __attribute__((packed)) acpi_facs {
	char sig[4];
	uint32_t length, hw_signature, waking_vector, global_lock, flags;
	uint64_t x_waking_vector;
	uint8_t version, reserved[3];
	uint32_t ospm_flags;
	uint8_t reserved2[24];
};

struct __attribute__((packed)) madt_lapic {
	uint8_t type, length, processor_id, apic_id;
	uint32_t flags;
};

struct __attribute__((packed)) madt_ioapic {
	uint8_t type, length, id, reserved;
	uint32_t address, gsi_base;
};

struct __attribute__((packed)) madt_override {
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
};

struct __attribute__((packed)) madt_lapic_nmi {
	uint8_t type, length, processor_id;
	uint16_t flags;
	uint8_t lint;
};

#define GAS_SYSTEM_IO 1
#define FADT_WBINVD (1u << 0)
#define FADT_PROC_C1 (1u << 2)
#define FADT_PWR_BUTTON (1u << 4)
#define FADT_SLP_BUTTON (1u << 5)
#define FADT_RESET_REG_SUP (1u << 10)
#define BOOT_ARCH_LEGACY_DEVICES (1u << 0)
#define BOOT_ARCH_8042 (1u << 1)
#define BOOT_ARCH_VGA_NOT_PRESENT (1u << 2)
#define MADT_PCAT_COMPAT 1u
#define RTC_CENTURY_REG 0x32

struct __attribute__((packed)) mcfg_entry {
	uint64_t base;
	uint16_t segment;
	uint8_t start_bus, end_bus;
	uint32_t reserved;
};

/* The DSDT: the S5 sleep type the PM block acts on; PCI bus 0's host
 * bridge with the resources it decodes, which is how an ACPI kernel finds
 * PCI devices; the serial port, so that its driver takes the port and IRQ
 * from here rather than probing for the IRQ (which sleeps 120 ms of guest
 * time); the VM generation ID device and the GPE method that tells the
 * guest it changed. */
static void dsdt_body(struct aml *a)
{
	size_t s5, sb, pci, crs, com1, vgen, addr, gpe, e00;

	aml_name(a, "_S5_");
	s5 = aml_package(a, 4);
	aml_integer(a, PM_S5_TYPE);
	aml_integer(a, PM_S5_TYPE);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a, s5);

	sb = aml_scope(a, "\\_SB_");
	pci = aml_device(a, "PCI0");
	aml_name_eisaid(a, "_HID", "PNP0A08");
	aml_name_eisaid(a, "_CID", "PNP0A03");
	aml_name_int(a, "_ADR", 0);
	aml_name_int(a, "_SEG", 0);
	aml_name_int(a, "_UID", 0);
	aml_name_int(a, "_BBN", 0);
	crs = aml_name_resources(a, "_CRS");
	aml_res_bus_numbers(a, 0, 0);
	aml_res_io_fixed(a, PCI_CONFIG_PORT, 8);
	aml_res_io_range(a, 0x0000, PCI_CONFIG_PORT - 1);
	aml_res_io_range(a, 0x0d00, 0xffff);
	aml_res_mem32(a, (uint32_t)LAYOUT_PCI_WINDOW, (uint32_t)(LAYOUT_PCI_WINDOW + LAYOUT_PCI_WINDOW_SIZE - 1));
	aml_end_resources(a, crs);
	aml_end(a, pci);
	com1 = aml_device(a, "COM1");
	aml_name_eisaid(a, "_HID", "PNP0501");
	aml_name_int(a, "_UID", 1);
	crs = aml_name_resources(a, "_CRS");
	aml_res_io_fixed(a, SERIAL_COM1_PORT, 8);
	aml_res_irq(a, SERIAL_COM1_IRQ);
	aml_end_resources(a, crs);
	aml_end(a, com1);
	vgen = aml_device(a, "VGEN");
	aml_name_str(a, "_HID", "QEMUVGID");
	aml_name_str(a, "_CID", "VM_Gen_Counter");
	aml_name_str(a, "_DDN", "VM_Gen_Counter");
	aml_name(a, "ADDR");
	addr = aml_package(a, 2);
	aml_integer(a, LAYOUT_VMGENID & 0xffffffffu);
	aml_integer(a, LAYOUT_VMGENID >> 32);
	aml_end(a, addr);
	aml_end(a, vgen);
	aml_end(a, sb);

	gpe = aml_scope(a, "\\_GPE");
	e00 = aml_method(a, "_E00", 0);
	aml_notify(a, "\\_SB_.VGEN", 0x80);
	aml_end(a, e00);
	aml_end(a, gpe);
}

uint8_t acpi_checksum(const void *p, uint64_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *b++);
	return sum;
}

struct builder {
	struct guest_mem *m;
	uint64_t next;
};

static void *alloc(struct builder *b, uint64_t len, uint64_t align, uint64_t *gpa)
{
	uint64_t at = (b->next + align - 1) & ~(align - 1);
	void *p;

	if (at + len > LAYOUT_ACPI_END || !(p = guest_mem_ptr(b->m, at, len)))
		return NULL;
	memset(p, 0, len);
	b->next = at + len;
	*gpa = at;
	return p;
}

static void header(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(h->sig, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, "CELLVM", 6);
	memcpy(h->oem_table_id, "CELLVMTB", 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "CLVM", 4);
	h->creator_revision = 1;
}

static void seal(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = (uint8_t)-acpi_checksum(h, h->length);
}

static struct acpi_gas io_gas(uint16_t port, uint8_t bits, uint8_t access)
{
	return (struct acpi_gas){ .space = GAS_SYSTEM_IO, .bit_width = bits, .access_size = access,
				  .address = port };
}

static int build_madt(struct builder *b, unsigned ncpus, uint64_t *gpa)
{
	uint32_t len = sizeof(struct acpi_header) + 8 + ncpus * sizeof(struct madt_lapic) +
		       sizeof(struct madt_ioapic) + sizeof(struct madt_override) + sizeof(struct madt_lapic_nmi);
	uint8_t *t = alloc(b, len, 8, gpa), *p;
	uint32_t lapic = LAYOUT_LAPIC, flags = MADT_PCAT_COMPAT;

	if (!t)
		return CV_EFAIL;
	header((struct acpi_header *)t, "APIC", len, 5);
	memcpy(t + sizeof(struct acpi_header), &lapic, 4);
	memcpy(t + sizeof(struct acpi_header) + 4, &flags, 4);
	p = t + sizeof(struct acpi_header) + 8;
	for (unsigned i = 0; i < ncpus; i++, p += sizeof(struct madt_lapic))
		memcpy(p, &(struct madt_lapic){ .type = 0, .length = 8, .processor_id = (uint8_t)i,
						.apic_id = (uint8_t)i, .flags = 1 }, sizeof(struct madt_lapic));
	memcpy(p, &(struct madt_ioapic){ .type = 1, .length = 12, .id = (uint8_t)ncpus,
					 .address = LAYOUT_IOAPIC }, sizeof(struct madt_ioapic));
	p += sizeof(struct madt_ioapic);
	/* SCI: level-triggered, active high, as KVM's IOAPIC delivers it. */
	memcpy(p, &(struct madt_override){ .type = 2, .length = 10, .source = PM_SCI_IRQ,
					   .gsi = PM_SCI_IRQ, .flags = 0xd }, sizeof(struct madt_override));
	p += sizeof(struct madt_override);
	memcpy(p, &(struct madt_lapic_nmi){ .type = 4, .length = 6, .processor_id = 0xff, .lint = 1 },
	       sizeof(struct madt_lapic_nmi));
	seal((struct acpi_header *)t);
	return 0;
}

static int build_fadt(struct builder *b, uint64_t dsdt, uint64_t facs, uint64_t *gpa)
{
	struct acpi_fadt *f = alloc(b, sizeof(*f), 8, gpa);

	if (!f)
		return CV_EFAIL;
	header(&f->h, "FACP", sizeof(*f), 6);
	/* 64-bit pointers only: the spec wants the 32-bit ones zero then. */
	f->x_firmware_ctrl = facs;
	f->x_dsdt = dsdt;
	f->sci_int = PM_SCI_IRQ;
	f->pm1a_evt = PM_PORT_PM1_EVT;
	f->pm1a_cnt = PM_PORT_PM1_CNT;
	f->pm1_evt_len = PM_PM1_EVT_LEN;
	f->pm1_cnt_len = PM_PM1_CNT_LEN;
	f->x_pm1a_evt = io_gas(PM_PORT_PM1_EVT, PM_PM1_EVT_LEN * 8, 2);
	f->x_pm1a_cnt = io_gas(PM_PORT_PM1_CNT, PM_PM1_CNT_LEN * 8, 2);
	f->gpe0 = PM_PORT_GPE0;
	f->gpe0_len = PM_GPE0_LEN;
	f->x_gpe0 = io_gas(PM_PORT_GPE0, PM_GPE0_LEN * 8, 1);
	/* No C2/C3 states. */
	f->p_lvl2_lat = 101;
	f->p_lvl3_lat = 1001;
	f->century = RTC_CENTURY_REG;
	/* An i8042 (src/hw/i8042.c answers every probe at once, so declaring it
	 * costs no timeouts; it carries Ctrl+Alt+Del) and no VGA. */
	f->iapc_boot_arch = BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042 | BOOT_ARCH_VGA_NOT_PRESENT;
	f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_RESET_REG_SUP;
	f->reset_reg = io_gas(PM_PORT_RESET, 8, 1);
	f->reset_value = PM_RESET_VALUE;
	memcpy(&f->hypervisor_id, "CELLVM\0", 8);
	seal(&f->h);
	return 0;
}

static int build_mcfg(struct builder *b, uint64_t *gpa)
{
	uint32_t len = sizeof(struct acpi_header) + 8 + sizeof(struct mcfg_entry);
	uint8_t *t = alloc(b, len, 8, gpa);
	struct mcfg_entry e = { .base = LAYOUT_PCI_ECAM, .start_bus = 0, .end_bus = 0 };

	if (!t)
		return CV_EFAIL;
	header((struct acpi_header *)t, "MCFG", len, 1);
	memcpy(t + sizeof(struct acpi_header) + 8, &e, sizeof(e));
	seal((struct acpi_header *)t);
	return 0;
}

int acpi_build(struct guest_mem *m, unsigned ncpus, uint64_t *rsdp_gpa)
{
	struct builder b = { .m = m, .next = LAYOUT_ACPI };
	struct acpi_rsdp *rsdp;
	struct acpi_facs *facs;
	struct acpi_header *dsdt, *xsdt;
	uint64_t gpa_rsdp = 0, gpa_facs = 0, gpa_dsdt = 0, gpa_fadt = 0, gpa_madt = 0, gpa_mcfg = 0, gpa_xsdt = 0;
	uint64_t entries[3];
	static struct aml aml; /* 4 KiB: kept off the stack */

	aml.len = 0;
	aml.overflow = false;
	dsdt_body(&aml);
	rsdp = alloc(&b, sizeof(*rsdp), 16, &gpa_rsdp);
	facs = alloc(&b, sizeof(*facs), 64, &gpa_facs);
	dsdt = alloc(&b, sizeof(*dsdt) + aml.len, 8, &gpa_dsdt);
	if (!rsdp || !facs || !dsdt || aml.overflow)
		goto full;
	memcpy(facs->sig, "FACS", 4);
	facs->length = sizeof(*facs);
	facs->version = 2;
	header(dsdt, "DSDT", (uint32_t)(sizeof(*dsdt) + aml.len), 2);
	memcpy(dsdt + 1, aml.buf, aml.len);
	seal(dsdt);
	if (build_fadt(&b, gpa_dsdt, gpa_facs, &gpa_fadt) || build_madt(&b, ncpus, &gpa_madt) ||
	    build_mcfg(&b, &gpa_mcfg))
		goto full;
	entries[0] = gpa_fadt;
	entries[1] = gpa_madt;
	entries[2] = gpa_mcfg;
	xsdt = alloc(&b, sizeof(*xsdt) + sizeof(entries), 8, &gpa_xsdt);
	if (!xsdt)
		goto full;
	header(xsdt, "XSDT", sizeof(*xsdt) + sizeof(entries), 1);
	memcpy(xsdt + 1, entries, sizeof(entries));
	seal(xsdt);

	memcpy(rsdp->sig, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, "CELLVM", 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt = gpa_xsdt;
	rsdp->checksum = (uint8_t)-acpi_checksum(rsdp, 20);
	rsdp->ext_checksum = (uint8_t)-acpi_checksum(rsdp, sizeof(*rsdp));
	*rsdp_gpa = gpa_rsdp;
	return 0;
full:
	cv_err("ACPI tables for %u CPUs do not fit below 1 MiB", ncpus);
	return CV_EFAIL;
}
