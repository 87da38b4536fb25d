/* bzImage through the 64-bit boot protocol (Documentation/arch/x86/boot.rst):
 * the protected-mode part goes to 1 MiB and is entered 0x200 past it. */
#include <string.h>

#include "arch/x86/kernel.h"
#include "arch/x86/layout.h"
#include "util/err.h"

#define HDR_OFFSET 0x1f1

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

int bzimage_load(struct guest_mem *m, const uint8_t *data, size_t len, const char *path,
		 struct kernel_image *out)
{
	struct setup_header h;
	size_t hdr_len, setup_size, pm_size;
	uint64_t end, pref_end;
	void *dst;

	memset(out, 0, sizeof(*out));
	if (len < HDR_OFFSET + sizeof(h))
		goto not_bzimage;
	memcpy(&h, data + HDR_OFFSET, sizeof(h));
	if (h.boot_flag != 0xaa55 || memcmp(&h.header, "HdrS", 4))
		goto not_bzimage;
	if (h.version < 0x020c || !(h.xloadflags & XLF_KERNEL_64)) {
		cv_err("kernel '%s' has no 64-bit entry point (boot protocol %u.%02u)", path,
		       h.version >> 8, h.version & 0xff);
		return CV_EINPUT;
	}
	/* The header's own length: it ends at 0x202 plus the jump's offset. */
	hdr_len = 0x202 + data[0x201] - HDR_OFFSET;
	if (hdr_len > sizeof(h))
		hdr_len = sizeof(h);
	memset((uint8_t *)&h + hdr_len, 0, sizeof(h) - hdr_len);

	setup_size = ((size_t)(h.setup_sects ? h.setup_sects : 4) + 1) * 512;
	if (setup_size >= len) {
		cv_err("kernel '%s' is truncated: setup code (%zu bytes) fills the whole file", path, setup_size);
		return CV_EINPUT;
	}
	pm_size = len - setup_size;
	/* A relocatable kernel decompresses at pref_address; it needs init_size
	 * bytes from there, and from its load address while it runs in place. */
	pref_end = h.pref_address + h.init_size;
	if (pref_end < h.pref_address)
		pref_end = UINT64_MAX; /* a header that wraps can never fit */
	end = max_u64(LAYOUT_HIGH_MEM + max_u64(pm_size, h.init_size), pref_end);
	dst = end <= m->low_size ? guest_mem_ptr(m, LAYOUT_HIGH_MEM, end - LAYOUT_HIGH_MEM) : NULL;
	if (!dst) {
		cv_err("kernel '%s' needs at least %llu MiB of guest RAM", path,
		       (unsigned long long)((end >> 20) + ((end & 0xfffff) != 0)));
		return CV_EINPUT;
	}
	memcpy(dst, data + setup_size, pm_size);

	h.type_of_loader = 0xff;
	h.loadflags |= CAN_USE_HEAP;
	h.heap_end_ptr = 0xfe00;
	h.code32_start = LAYOUT_HIGH_MEM;
	if (h.version < 0x0203)
		h.initrd_addr_max = 0x37ffffff;
	out->hdr = h;
	out->entry = LAYOUT_HIGH_MEM + 0x200;
	out->end = end;
	return 0;

not_bzimage:
	cv_err("kernel '%s' is neither a bzImage nor an x86-64 ELF vmlinux", path);
	return CV_EINPUT;
}
