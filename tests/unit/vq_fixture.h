/* Shared fixture for the split-virtqueue tests (src/virtio/queue.c,
 * test_virtqueue_*.c): a fake guest whose RAM is a heap buffer, so ASan
 * reports any access the queue code makes outside guest RAM, and helpers
 * that write descriptors and rings the way a driver would. Include after
 * the cmocka prerequisites (stdarg, stddef, stdint, setjmp, cmocka). */
#ifndef CELLVM_TESTS_UNIT_VQ_FIXTURE_H
#define CELLVM_TESTS_UNIT_VQ_FIXTURE_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdlib.h>

#include "helpers.h"
#include "virtio/queue.h"

#define RAM_SIZE (16 * MiB)
#define SMALL_HOLE (8 * MiB) /* low_size < size: the upper 8 MiB live at 4 GiB */

/* Guest-physical placement, roomy enough for a 32768-entry queue. */
#define DESC_GPA 0x100000ULL  /* 16 * 32768 bytes */
#define AVAIL_GPA 0x180000ULL /* 6 + 2 * 32768 bytes */
#define USED_GPA 0x1a0000ULL  /* 6 + 8 * 32768 bytes */
#define DATA_GPA 0x200000ULL  /* buffers */
#define TABLE_GPA 0x300000ULL /* indirect tables */
#define QSIZE 16

/* VIRTQ_MAX_CHAIN + 1 split into readable and writable halves. */
#define HALF_UP (VIRTQ_MAX_CHAIN / 2 + 1)
#define HALF_DOWN (VIRTQ_MAX_CHAIN / 2)

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

struct env {
	struct guest_mem m;
	struct virtq q;
	struct virtq_req req;
	struct iovec out[VIRTQ_MAX_CHAIN], in[VIRTQ_MAX_CHAIN];
};

/* ---- fake guest ---------------------------------------------------------- */

static inline struct env *env_new(uint64_t hole)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	guest_mem_layout(&e->m, RAM_SIZE, hole);
	/* Heap, not mmap: ASan puts redzones around it. */
	e->m.host = aligned_alloc(4096, RAM_SIZE);
	assert_non_null(e->m.host);
	memset(e->m.host, 0, RAM_SIZE);
	return e;
}

static inline int setup(void **state)
{
	*state = env_new(LAYOUT_MMIO_HOLE);
	return 0;
}

static inline int setup_hole(void **state)
{
	*state = env_new(SMALL_HOLE);
	return 0;
}

static inline int teardown(void **state)
{
	struct env *e = *state;

	free(e->m.host);
	free(e);
	return 0;
}

/* Host address of a GPA that must be RAM. */
static inline void *gpa_ptr(struct env *e, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(&e->m, gpa, len);

	assert_non_null(p);
	return p;
}

static inline bool try_start(struct env *e, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	e->q.size = size;
	e->q.desc_gpa = desc;
	e->q.avail_gpa = avail;
	e->q.used_gpa = used;
	return virtq_start(&e->q, &e->m);
}

static inline void start(struct env *e, uint16_t size, bool event_idx)
{
	e->q.event_idx = event_idx;
	assert_true(try_start(e, size, DESC_GPA, AVAIL_GPA, USED_GPA));
}

static inline struct vring_avail *avail(struct env *e)
{
	return gpa_ptr(e, e->q.avail_gpa, 6 + 2ULL * e->q.size);
}

static inline struct vring_used *used(struct env *e)
{
	return gpa_ptr(e, e->q.used_gpa, 6 + 8ULL * e->q.size);
}

static inline void set_desc_in(struct env *e, uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
				       uint16_t next)
{
	struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

	memcpy(gpa_ptr(e, table + 16ULL * i, 16), &d, sizeof(d));
}

static inline void set_desc(struct env *e, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	set_desc_in(e, e->q.desc_gpa, i, addr, len, flags, next);
}

/* Entries [first, first+nout+nin) of `table` as one chain: nout readable then
 * nin writable buffers of `len` bytes each, at distinct data addresses. */
static inline void set_chain_in(struct env *e, uint64_t table, unsigned first, unsigned nout, unsigned nin, uint32_t len)
{
	unsigned n = nout + nin;

	for (unsigned k = 0; k < n; k++)
		set_desc_in(e, table, first + k, DATA_GPA + 0x100ULL * k, len,
			    (k + 1 < n ? VRING_DESC_F_NEXT : 0) | (k >= nout ? VRING_DESC_F_WRITE : 0),
			    (uint16_t)(first + k + 1));
}

static inline void set_chain(struct env *e, unsigned nout, unsigned nin, uint32_t len)
{
	set_chain_in(e, e->q.desc_gpa, 0, nout, nin, len);
}

/* Puts head in the avail ring and publishes it. */
static inline void offer(struct env *e, uint16_t head)
{
	struct vring_avail *a = avail(e);

	a->ring[a->idx & (e->q.size - 1)] = head;
	a->idx++;
}

static inline void set_avail_idx(struct env *e, uint16_t idx)
{
	avail(e)->idx = idx;
}

static inline int pop(struct env *e, unsigned max)
{
	return virtq_pop(&e->q, &e->req, e->out, e->in, max);
}

/* Makes `head` the one pending chain (also after a BROKEN pop, which leaves
 * last_avail where it was) and checks what popping it with `max` gives. */
static inline void expect_pop_max(struct env *e, uint16_t head, unsigned max, int want)
{
	struct vring_avail *a = avail(e);

	a->ring[e->q.last_avail & (e->q.size - 1)] = head;
	a->idx = (uint16_t)(e->q.last_avail + 1);
	assert_int_equal(pop(e, max), want);
}

static inline void expect_pop(struct env *e, uint16_t head, int want)
{
	expect_pop_max(e, head, VIRTQ_MAX_CHAIN, want);
}

static inline void assert_req(struct env *e, unsigned nout, unsigned nin, uint64_t out_len, uint64_t in_len)
{
	assert_int_equal(e->req.nout, nout);
	assert_int_equal(e->req.nin, nin);
	assert_int_equal(e->req.out_len, out_len);
	assert_int_equal(e->req.in_len, in_len);
}

static inline void assert_iov(const struct iovec *v, const void *base, size_t len)
{
	assert_ptr_equal(v->iov_base, base);
	assert_int_equal(v->iov_len, len);
}

/* used_event lives after the avail ring, avail_event after the used ring. */
static inline void set_used_event(struct env *e, uint16_t v)
{
	memcpy(gpa_ptr(e, e->q.avail_gpa + 4 + 2ULL * e->q.size, 2), &v, 2);
}

static inline uint16_t get_avail_event(struct env *e)
{
	return test_get16(gpa_ptr(e, e->q.used_gpa + 4 + 8ULL * e->q.size, 2));
}

/* Descriptor 0 refers to an indirect table at `table` of `len` bytes. */
static inline void set_indirect(struct env *e, uint64_t table, uint32_t len, uint16_t extra_flags)
{
	set_desc(e, 0, table, len, VRING_DESC_F_INDIRECT | extra_flags, 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TH(f) cmocka_unit_test_setup_teardown(f, setup_hole, teardown)

#endif
