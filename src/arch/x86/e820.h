/* The BIOS-style memory map handed to the guest kernel. */
#ifndef CELLVM_ARCH_X86_E820_H
#define CELLVM_ARCH_X86_E820_H

#include <asm/bootparam.h>

#include "vmm/memory.h"

#define E820_RAM 1
#define E820_RESERVED 2

/* Fills out[] (at least 8 entries) for the RAM in m; returns the count. */
unsigned e820_build(const struct guest_mem *m, struct boot_e820_entry *out);

#endif
