/* Shared helpers for the cellvm unit tests. Include after the cmocka
 * prerequisites (stdarg, stddef, stdint, setjmp, cmocka). */
#ifndef CELLVM_TESTS_UNIT_HELPERS_H
#define CELLVM_TESTS_UNIT_HELPERS_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "arch/x86/layout.h"
#include "vmm/memory.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* A guest_mem of `size` bytes laid out around the standard MMIO hole and
 * backed by a lazily committed anonymous mapping (no KVM involved). */
static inline void test_mem_map(struct guest_mem *m, uint64_t size)
{
	void *p;

	guest_mem_layout(m, size, LAYOUT_MMIO_HOLE);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(p != MAP_FAILED);
	m->host = p;
}

static inline void test_mem_unmap(struct guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	m->host = NULL;
}

/* True if every byte of [p, p+len) equals c. */
static inline int test_all_bytes(const void *p, size_t len, uint8_t c)
{
	const uint8_t *b = p;

	/* All bytes equal the first one iff the buffer equals itself shifted by one. */
	return !len || (b[0] == c && !memcmp(b, b + 1, len - 1));
}

static inline uint16_t test_get16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t test_get32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t test_get64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

#endif
