/* ACPI tables (RSDP, XSDT, FADT, FACS, DSDT, MADT) for a firmware-less VM:
 * they tell the guest how many CPUs there are, where the IOAPIC is, and how
 * to power off and reset. */
#ifndef CELLVM_ARCH_X86_ACPI_H
#define CELLVM_ARCH_X86_ACPI_H

#include <stdint.h>

#include "vmm/memory.h"

/* Writes the tables into the reserved area below 1 MiB; returns 0 and the
 * RSDP's address, or CV_EFAIL if they do not fit. */
int acpi_build(struct guest_mem *m, unsigned ncpus, uint64_t *rsdp);

/* Sum of `len` bytes; 0 for a table with a correct checksum. */
uint8_t acpi_checksum(const void *p, uint64_t len);

#endif
