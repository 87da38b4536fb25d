#include "arch/x86/e820.h"

#include "arch/x86/layout.h"
#include "hw/pci.h"

static void add(struct boot_e820_entry *out, unsigned *n, uint64_t addr, uint64_t size, uint32_t type)
{
	out[*n] = (struct boot_e820_entry){ .addr = addr, .size = size, .type = type };
	(*n)++;
}

unsigned e820_build(const struct guest_mem *m, struct boot_e820_entry *out)
{
	unsigned n = 0;

	/* Conventional memory, then the EBDA/BIOS area that holds our ACPI
	 * tables, so the kernel neither allocates nor scans past them. */
	add(out, &n, 0, LAYOUT_EBDA, E820_RAM);
	add(out, &n, LAYOUT_EBDA, LAYOUT_HIGH_MEM - LAYOUT_EBDA, E820_RESERVED);
	if (m->low_size > LAYOUT_HIGH_MEM)
		add(out, &n, LAYOUT_HIGH_MEM, m->low_size - LAYOUT_HIGH_MEM, E820_RAM);
	/* ECAM must be reserved for the kernel to trust MCFG. */
	add(out, &n, LAYOUT_PCI_ECAM, PCI_ECAM_SIZE, E820_RESERVED);
	if (m->size > m->low_size)
		add(out, &n, LAYOUT_4G, m->size - m->low_size, E820_RAM);
	return n;
}
