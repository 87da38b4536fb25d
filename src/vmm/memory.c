#include "vmm/memory.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "util/err.h"

void guest_mem_layout(struct guest_mem *m, uint64_t size, uint64_t hole)
{
	m->host = NULL;
	m->size = size;
	m->hole = hole;
	m->low_size = size < hole ? size : hole;
	m->vm_fd = -1;
	m->ram_fd = -1;
	m->remappable = true;
	m->dirty = NULL;
}

static int add_slot(int vm_fd, unsigned slot, uint64_t gpa, uint64_t len, void *host, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = len,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		cv_err("KVM_SET_USER_MEMORY_REGION (slot %u, %llu bytes): %s", slot,
		       (unsigned long long)len, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

int guest_mem_set_slot_flags(struct guest_mem *m, uint32_t flags)
{
	if (add_slot(m->vm_fd, 0, 0, m->low_size, m->host, flags))
		return CV_EFAIL;
	if (m->size > m->low_size)
		return add_slot(m->vm_fd, 1, LAYOUT_4G, m->size - m->low_size, m->host + m->low_size, flags);
	return 0;
}

int guest_mem_init(struct guest_mem *m, int vm_fd, uint64_t size, uint64_t hole, const struct ram_config *rc)
{
	int err;

	guest_mem_layout(m, size, hole);
	if (!(m->host = ram_map(rc, size, &m->ram_fd, &err)))
		return err;
	m->remappable = rc->backend == RAM_ANON && rc->shared != RAM_SHARED_ON && ram_page_size(rc) == 4096;
	m->vm_fd = vm_fd;
	if (guest_mem_set_slot_flags(m, 0)) {
		guest_mem_free(m);
		return CV_EFAIL;
	}
	return 0;
}

void guest_mem_free(struct guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	if (m->ram_fd >= 0)
		close(m->ram_fd);
	m->host = NULL;
	m->ram_fd = -1;
	free(m->dirty);
	m->dirty = NULL;
}

int guest_mem_discard(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(m, gpa, len);

	if (!p || ((gpa | len) & 4095))
		return -EINVAL;
	return guest_mem_discard_host(m, p, len);
}

int guest_mem_discard_host(const struct guest_mem *m, void *host, uint64_t len)
{
	uint64_t off = (uint64_t)((uint8_t *)host - m->host);
	int rc;

	if (!len || (off | len) & 4095)
		return -EINVAL;
	rc = ram_discard(m->host, m->ram_fd, off, len);
	/* The pages now read as zeros: a Diff snapshot must carry them. */
	if (!rc)
		guest_mem_mark_dirty(m, host, len);
	return rc;
}

uint64_t guest_mem_pages(const struct guest_mem *m)
{
	return m->size / 4096;
}

uint64_t guest_mem_bitmap_words(const struct guest_mem *m)
{
	return (guest_mem_pages(m) + 63) / 64;
}

void guest_mem_mark_dirty(const struct guest_mem *m, const void *host, uint64_t len)
{
	uint64_t first, last;

	if (!m->dirty || !len)
		return;
	first = (uint64_t)((const uint8_t *)host - m->host) / 4096;
	last = ((uint64_t)((const uint8_t *)host - m->host) + len - 1) / 4096;
	for (uint64_t pg = first; pg <= last; pg++)
		__atomic_fetch_or(&m->dirty[pg / 64], 1ULL << (pg % 64), __ATOMIC_RELAXED);
}

int guest_mem_map_file(struct guest_mem *m, uint64_t gpa, uint64_t len, int fd, uint64_t off)
{
	uint8_t *p = guest_mem_ptr(m, gpa, len);
	void *r;

	if (!p || !len || ((gpa | len | off) & 4095) || !m->remappable)
		return -1;
	r = mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, (off_t)off);
	if (r != MAP_FAILED)
		return 0;
	/* A failed MAP_FIXED may have unmapped the range: put RAM back. */
	if (mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) ==
	    MAP_FAILED) {
		cv_err("cannot restore guest RAM at 0x%llx: %s", (unsigned long long)gpa, strerror(errno));
		abort();
	}
	return -1;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t high = m->size - m->low_size;

	if (gpa < m->low_size)
		return len <= m->low_size - gpa ? m->host + gpa : NULL;
	if (gpa >= LAYOUT_4G && gpa - LAYOUT_4G < high)
		return len <= high - (gpa - LAYOUT_4G) ? m->host + m->low_size + (gpa - LAYOUT_4G) : NULL;
	return NULL;
}

uint64_t guest_mem_end(const struct guest_mem *m)
{
	return m->size > m->low_size ? LAYOUT_4G + (m->size - m->low_size) : m->low_size;
}
