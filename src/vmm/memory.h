/* Guest RAM: one host mapping, split around the MMIO hole into KVM slots.
 * Every access to guest memory by device code goes through guest_mem_ptr(),
 * which refuses ranges that are not entirely RAM. */
#ifndef CELLVM_VMM_MEMORY_H
#define CELLVM_VMM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/ram.h"

struct guest_mem {
	uint8_t *host;     /* mapping of all guest RAM, low part first */
	uint64_t size;     /* total RAM bytes */
	uint64_t low_size; /* bytes mapped at GPA 0 .. low_size */
	uint64_t hole;     /* start of the MMIO hole (RAM above it moves to 4 GiB) */
	int vm_fd;
	int ram_fd;        /* a shared memfd or file backing it, else -1 */
	bool remappable;   /* private 4 KiB pages: files may be mapped into it */
	/* Pages the VMM wrote (one bit per 4 KiB of RAM, in RAM order) while
	 * dirty pages are tracked, else NULL: KVM logs only the guest's own
	 * writes (src/vmm/dirty_log.h). */
	uint64_t *dirty;
};

/* Splits size bytes of RAM around a hole at `hole` (no mapping made). */
void guest_mem_layout(struct guest_mem *m, uint64_t size, uint64_t hole);

/* Maps the RAM as rc says (anonymous memory is reserved lazily) and
 * registers it with the VM. Returns 0 or CV_EFAIL / CV_EINPUT (what the
 * user asked cannot be: ram.h) with the error reported. */
int guest_mem_init(struct guest_mem *m, int vm_fd, uint64_t size, uint64_t hole, const struct ram_config *rc);
void guest_mem_free(struct guest_mem *m);

/* Backs [gpa, gpa+len) with a private, copy-on-write mapping of fd at
 * offset off: the file's pages are shared until the guest writes them, so
 * nothing is copied up front. gpa, len and off must be page-aligned and the
 * range RAM; returns -1 (RAM unchanged) when it cannot, as for RAM that is
 * shared or in huge pages. */
int guest_mem_map_file(struct guest_mem *m, uint64_t gpa, uint64_t len, int fd, uint64_t off);

/* Gives [gpa, gpa+len) (page-aligned, all RAM) back to the host: the
 * host's memory use drops; the guest reads what it held as lost. 0, or
 * -EINVAL for a range that is not, or -errno. */
int guest_mem_discard(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/* The same for [host, host+len), a range inside RAM (from guest_mem_ptr). */
int guest_mem_discard_host(const struct guest_mem *m, void *host, uint64_t len);

/* Host pointer for [gpa, gpa+len) if that range is all RAM, else NULL. */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Records that the VMM writes [host, host+len), a range inside RAM
 * (from guest_mem_ptr). Thread-safe; nothing while tracking is off. */
void guest_mem_mark_dirty(const struct guest_mem *m, const void *host, uint64_t len);

/* Number of 4 KiB pages of RAM and of 64-bit words of a bitmap of them. */
uint64_t guest_mem_pages(const struct guest_mem *m);
uint64_t guest_mem_bitmap_words(const struct guest_mem *m);

/* Turns KVM's dirty logging of the RAM slots on (flags
 * KVM_MEM_LOG_DIRTY_PAGES) or off. 0 or CV_EFAIL, reported. */
int guest_mem_set_slot_flags(struct guest_mem *m, uint32_t flags);

/* Highest guest-physical address + 1 of RAM. */
uint64_t guest_mem_end(const struct guest_mem *m);

#endif
