/* Initial vCPU state: the boot CPU enters the kernel in 64-bit mode. */
#ifndef CELLVM_ARCH_X86_REGS_H
#define CELLVM_ARCH_X86_REGS_H

#include <stdint.h>

#include "vmm/memory.h"

/* Writes the GDT and identity page tables the boot CPU starts with. */
int x86_boot_tables(struct guest_mem *m);

/* Long mode, paging on, RIP = entry, RSI = boot_params (boot CPU only). */
int x86_regs_boot_cpu(int vcpu_fd, uint64_t entry, uint64_t boot_params);

/* FPU defaults and LAPIC LINT0/LINT1 wiring, for every vCPU. */
int x86_regs_common(int vcpu_fd);

#endif
