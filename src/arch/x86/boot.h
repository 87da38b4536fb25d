/* Puts kernel, initrd, command line and boot_params into guest memory. */
#ifndef CELLVM_ARCH_X86_BOOT_H
#define CELLVM_ARCH_X86_BOOT_H

#include <stdint.h>

#include "vmm/memory.h"

struct boot_info {
	uint64_t entry;       /* 64-bit entry, guest-physical */
	uint64_t boot_params; /* passed in RSI */
};

/* Returns 0, CV_EINPUT for bad files/arguments, CV_EFAIL for host errors. */
int x86_boot_load(struct guest_mem *m, const char *kernel, const char *initrd, const char *cmdline, uint64_t rsdp,
		  struct boot_info *out);

/* Where an initrd of `size` bytes goes: as high as the kernel allows,
 * above kernel_end. Returns 0 and sets *at, or -1 if it does not fit. */
int x86_initrd_place(const struct guest_mem *m, uint64_t kernel_end, uint32_t initrd_addr_max,
		     uint64_t size, uint64_t *at);

#endif
