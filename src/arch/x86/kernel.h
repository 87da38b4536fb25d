/* Kernel image formats cellvm boots without firmware. Each loader works on
 * the file's bytes already in memory, validates every offset and size
 * against the file and against guest RAM, and copies the image in place. */
#ifndef CELLVM_ARCH_X86_KERNEL_H
#define CELLVM_ARCH_X86_KERNEL_H

#include <asm/bootparam.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/memory.h"

struct kernel_image {
	uint64_t entry; /* guest-physical 64-bit entry point */
	uint64_t end;   /* first guest-physical byte the kernel will not use */
	struct setup_header hdr; /* for boot_params; synthesized for ELF */
};

/* Both return 0, or CV_EINPUT after reporting an error naming `path`.
 * `fd` (or -1) is the file behind data: page-aligned ELF segments are then
 * mapped into guest RAM instead of copied. */
int bzimage_load(struct guest_mem *m, const uint8_t *data, size_t len, const char *path,
		 struct kernel_image *out);
int elf_load(struct guest_mem *m, const uint8_t *data, size_t len, int fd, const char *path,
	     struct kernel_image *out);

/* Detects the format by content and loads it. */
int kernel_load(struct guest_mem *m, const uint8_t *data, size_t len, int fd, const char *path,
		struct kernel_image *out);

#endif
