/* Split virtqueue, device side (src/virtio/queue.c): ring placement checks,
 * chain walking (direct and indirect), the used ring, notification
 * suppression and the iovec copy helpers. The guest is a heap buffer, so
 * ASan reports any access the queue code makes outside guest RAM. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <linux/virtio_ring.h>
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

static struct env *env_new(uint64_t hole)
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

static int setup(void **state)
{
	*state = env_new(LAYOUT_MMIO_HOLE);
	return 0;
}

static int setup_hole(void **state)
{
	*state = env_new(SMALL_HOLE);
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	free(e->m.host);
	free(e);
	return 0;
}

/* Host address of a GPA that must be RAM. */
static void *gpa_ptr(struct env *e, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(&e->m, gpa, len);

	assert_non_null(p);
	return p;
}

static bool try_start(struct env *e, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	e->q.size = size;
	e->q.desc_gpa = desc;
	e->q.avail_gpa = avail;
	e->q.used_gpa = used;
	return virtq_start(&e->q, &e->m);
}

static void start(struct env *e, uint16_t size, bool event_idx)
{
	e->q.event_idx = event_idx;
	assert_true(try_start(e, size, DESC_GPA, AVAIL_GPA, USED_GPA));
}

static struct vring_avail *avail(struct env *e)
{
	return gpa_ptr(e, e->q.avail_gpa, 6 + 2ULL * e->q.size);
}

static struct vring_used *used(struct env *e)
{
	return gpa_ptr(e, e->q.used_gpa, 6 + 8ULL * e->q.size);
}

static void set_desc_in(struct env *e, uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
			uint16_t next)
{
	struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

	memcpy(gpa_ptr(e, table + 16ULL * i, 16), &d, sizeof(d));
}

static void set_desc(struct env *e, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	set_desc_in(e, e->q.desc_gpa, i, addr, len, flags, next);
}

/* Entries [first, first+nout+nin) of `table` as one chain: nout readable then
 * nin writable buffers of `len` bytes each, at distinct data addresses. */
static void set_chain_in(struct env *e, uint64_t table, unsigned first, unsigned nout, unsigned nin, uint32_t len)
{
	unsigned n = nout + nin;

	for (unsigned k = 0; k < n; k++)
		set_desc_in(e, table, first + k, DATA_GPA + 0x100ULL * k, len,
			    (k + 1 < n ? VRING_DESC_F_NEXT : 0) | (k >= nout ? VRING_DESC_F_WRITE : 0),
			    (uint16_t)(first + k + 1));
}

static void set_chain(struct env *e, unsigned nout, unsigned nin, uint32_t len)
{
	set_chain_in(e, e->q.desc_gpa, 0, nout, nin, len);
}

/* Puts head in the avail ring and publishes it. */
static void offer(struct env *e, uint16_t head)
{
	struct vring_avail *a = avail(e);

	a->ring[a->idx & (e->q.size - 1)] = head;
	a->idx++;
}

static void set_avail_idx(struct env *e, uint16_t idx)
{
	avail(e)->idx = idx;
}

static int pop(struct env *e, unsigned max)
{
	return virtq_pop(&e->q, &e->req, e->out, e->in, max);
}

/* Makes `head` the one pending chain (also after a BROKEN pop, which leaves
 * last_avail where it was) and checks what popping it with `max` gives. */
static void expect_pop_max(struct env *e, uint16_t head, unsigned max, int want)
{
	struct vring_avail *a = avail(e);

	a->ring[e->q.last_avail & (e->q.size - 1)] = head;
	a->idx = (uint16_t)(e->q.last_avail + 1);
	assert_int_equal(pop(e, max), want);
}

static void expect_pop(struct env *e, uint16_t head, int want)
{
	expect_pop_max(e, head, VIRTQ_MAX_CHAIN, want);
}

static void assert_req(struct env *e, unsigned nout, unsigned nin, uint64_t out_len, uint64_t in_len)
{
	assert_int_equal(e->req.nout, nout);
	assert_int_equal(e->req.nin, nin);
	assert_int_equal(e->req.out_len, out_len);
	assert_int_equal(e->req.in_len, in_len);
}

static void assert_iov(const struct iovec *v, const void *base, size_t len)
{
	assert_ptr_equal(v->iov_base, base);
	assert_int_equal(v->iov_len, len);
}

/* used_event lives after the avail ring, avail_event after the used ring. */
static void set_used_event(struct env *e, uint16_t v)
{
	memcpy(gpa_ptr(e, e->q.avail_gpa + 4 + 2ULL * e->q.size, 2), &v, 2);
}

static uint16_t get_avail_event(struct env *e)
{
	return test_get16(gpa_ptr(e, e->q.used_gpa + 4 + 8ULL * e->q.size, 2));
}

/* ---- virtq_start ------------------------------------------------------- */

static void test_start_accepts_minimal_alignment(void **state)
{
	struct env *e = *state;

	/* desc 16, avail 2, used 4 (virtio 1.2, 2.7). */
	assert_true(try_start(e, QSIZE, DESC_GPA + 16, AVAIL_GPA + 2, USED_GPA + 4));
	assert_ptr_equal(e->q.desc, e->m.host + DESC_GPA + 16);
	assert_ptr_equal(e->q.avail, e->m.host + AVAIL_GPA + 2);
	assert_ptr_equal(e->q.used, e->m.host + USED_GPA + 4);
	assert_int_equal(e->q.last_avail, 0);
	assert_int_equal(e->q.used_idx, 0);
}

static void test_start_accepts_size_1_and_32768(void **state)
{
	struct env *e = *state;

	assert_true(try_start(e, 1, DESC_GPA, AVAIL_GPA, USED_GPA));
	assert_true(try_start(e, 32768, DESC_GPA, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_size_0(void **state)
{
	struct env *e = *state;

	assert_false(try_start(e, 0, DESC_GPA, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, (uint16_t)65536, DESC_GPA, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_non_power_of_two(void **state)
{
	struct env *e = *state;
	static const uint16_t sizes[] = { 3, 6, 17, 100, 255, 1000, 32767 };

	for (size_t i = 0; i < N_ELEMS(sizes); i++)
		assert_false(try_start(e, sizes[i], DESC_GPA, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_size_over_32768(void **state)
{
	struct env *e = *state;

	assert_false(try_start(e, 32769, DESC_GPA, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, 49152, DESC_GPA, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, 65535, DESC_GPA, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_misaligned_desc(void **state)
{
	struct env *e = *state;

	for (unsigned off = 1; off < 16; off++)
		assert_false(try_start(e, QSIZE, DESC_GPA + off, AVAIL_GPA, USED_GPA));
}

static void test_start_rejects_misaligned_avail(void **state)
{
	struct env *e = *state;

	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA + 1, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA + 3, USED_GPA));
}

static void test_start_rejects_misaligned_used(void **state)
{
	struct env *e = *state;

	for (unsigned off = 1; off < 4; off++)
		assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA + off));
}

static void test_start_rings_at_end_of_ram(void **state)
{
	struct env *e = *state;
	const uint64_t end = RAM_SIZE;

	/* Each ring ending exactly at the end of RAM fits ... */
	assert_true(try_start(e, QSIZE, end - 16 * QSIZE, AVAIL_GPA, USED_GPA));
	assert_true(try_start(e, QSIZE, DESC_GPA, end - (6 + 2 * QSIZE), USED_GPA));
	assert_true(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, end - (6 + 8 * QSIZE) - 2)); /* 4-aligned */
	/* ... one entry more does not (used_event / avail_event included). */
	assert_false(try_start(e, QSIZE, end - 16 * QSIZE + 16, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, end - (6 + 2 * QSIZE) + 2, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, end - (6 + 8 * QSIZE) + 2));
}

static void test_start_rejects_rings_outside_ram(void **state)
{
	struct env *e = *state;
	static const uint64_t bad[] = {
		RAM_SIZE,                 /* just past the end */
		RAM_SIZE + 0x10000,
		LAYOUT_MMIO_HOLE,
		LAYOUT_4G,                /* no high RAM in this layout */
		UINT64_MAX & ~15ULL,      /* gpa + len wraps */
		UINT64_MAX - 0xff,        /* 16-aligned, wraps with any length */
	};

	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		assert_false(try_start(e, QSIZE, bad[i], AVAIL_GPA, USED_GPA));
		assert_false(try_start(e, QSIZE, DESC_GPA, bad[i], USED_GPA));
		assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, bad[i]));
	}
	/* A 32768-entry table that starts in RAM but runs past its end. */
	assert_false(try_start(e, 32768, RAM_SIZE - 0x10000, AVAIL_GPA, USED_GPA));
}

/* Layout with RAM split around a hole at 8 MiB. */
static void test_start_rings_around_hole(void **state)
{
	struct env *e = *state;
	const uint64_t lo = SMALL_HOLE, hi_end = LAYOUT_4G + (RAM_SIZE - SMALL_HOLE);

	assert_int_equal(e->m.low_size, SMALL_HOLE);
	/* Straddling low RAM and the hole. */
	assert_false(try_start(e, QSIZE, lo - 128, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, lo - 16, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, lo - 64));
	/* Inside the hole, and straddling the end of high RAM. */
	assert_false(try_start(e, QSIZE, lo, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, QSIZE, LAYOUT_4G - 128, AVAIL_GPA, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, hi_end - 16, USED_GPA));
	assert_false(try_start(e, QSIZE, DESC_GPA, AVAIL_GPA, hi_end));
	/* Entirely in high RAM is fine, and maps after the low part. */
	assert_true(try_start(e, QSIZE, LAYOUT_4G, LAYOUT_4G + 0x1000, hi_end - (6 + 8 * QSIZE) - 2));
	assert_ptr_equal(e->q.desc, e->m.host + SMALL_HOLE);
	assert_ptr_equal(e->q.avail, e->m.host + SMALL_HOLE + 0x1000);
}

/* ---- virtq_pop: direct chains ------------------------------------------ */

static void test_pop_empty(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	assert_int_equal(pop(e, 4), VIRTQ_EMPTY);
	set_chain(e, 1, 0, 8);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_int_equal(pop(e, 4), VIRTQ_EMPTY);
	assert_int_equal(e->q.last_avail, 1);
}

static void test_pop_out_in_chain(void **state)
{
	struct env *e = *state;
	uint8_t *h = e->m.host;

	start(e, QSIZE, false);
	set_desc(e, 5, DATA_GPA, 100, VRING_DESC_F_NEXT, 9);
	set_desc(e, 9, DATA_GPA + 0x1000, 50, VRING_DESC_F_NEXT, 2);
	set_desc(e, 2, DATA_GPA + 0x2000, 300, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
	set_desc(e, 3, DATA_GPA + 0x3001, 7, VRING_DESC_F_WRITE, 0xffff); /* next ignored without NEXT */
	expect_pop(e, 5, VIRTQ_GOT);
	assert_int_equal(e->req.head, 5);
	assert_req(e, 2, 2, 150, 307);
	assert_ptr_equal(e->req.out, e->out);
	assert_ptr_equal(e->req.in, e->in);
	assert_iov(&e->out[0], h + DATA_GPA, 100);
	assert_iov(&e->out[1], h + DATA_GPA + 0x1000, 50);
	assert_iov(&e->in[0], h + DATA_GPA + 0x2000, 300);
	assert_iov(&e->in[1], h + DATA_GPA + 0x3001, 7);
	assert_int_equal(e->q.last_avail, 1);
}

static void test_pop_high_ram_buffer(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, LAYOUT_4G + 0x1234, 0x100, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 0, 1, 0, 0x100);
	assert_iov(&e->in[0], e->m.host + SMALL_HOLE + 0x1234, 0x100);
}

static void test_pop_buffer_straddling_hole(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, SMALL_HOLE - 0x10, 0x20, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_self_loop(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 3, DATA_GPA, 8, VRING_DESC_F_NEXT, 3);
	expect_pop(e, 3, VIRTQ_BROKEN);
}

static void test_pop_two_entry_loop(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, DATA_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(e, 1, DATA_GPA, 8, VRING_DESC_F_NEXT, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_whole_ring_chain_and_loop(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, QSIZE, 0, 1); /* all QSIZE descriptors: allowed */
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, QSIZE, 0, QSIZE, 0);
	set_desc(e, QSIZE - 1, DATA_GPA, 1, VRING_DESC_F_NEXT, 0); /* close the ring */
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_next_out_of_range(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, DATA_GPA, 8, VRING_DESC_F_NEXT, QSIZE);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 1, DATA_GPA, 8, VRING_DESC_F_NEXT, 0xffff);
	expect_pop(e, 1, VIRTQ_BROKEN);
}

static void test_pop_head_out_of_range(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 1, 0, 8);
	expect_pop(e, QSIZE, VIRTQ_BROKEN);
	assert_int_equal(e->q.last_avail, 0);
}

static void test_pop_avail_idx_too_far_ahead(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 1, 0, 8); /* every avail slot holds head 0 */
	set_avail_idx(e, QSIZE + 1);
	assert_int_equal(pop(e, 4), VIRTQ_BROKEN);
	set_avail_idx(e, 0xffff); /* "behind" us, i.e. 65535 ahead */
	assert_int_equal(pop(e, 4), VIRTQ_BROKEN);
	set_avail_idx(e, QSIZE); /* a full ring is fine */
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
}

static void test_pop_buffer_outside_ram(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, RAM_SIZE, 1, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 0, LAYOUT_4G, 1, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_buffer_addr_len_overflow(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, UINT64_MAX - 10, 100, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 0, UINT64_MAX - 0xfffffffeULL, UINT32_MAX, VRING_DESC_F_WRITE, 0); /* ends at exactly 2^64 */
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_buffer_crossing_end_of_ram(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, RAM_SIZE - 16, 17, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 0, 0x1000, UINT32_MAX, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc(e, 0, RAM_SIZE - 16, 16, 0, 0); /* the last 16 bytes: fine */
	expect_pop(e, 0, VIRTQ_GOT);
	assert_iov(&e->out[0], e->m.host + RAM_SIZE - 16, 16);
}

/* A zero-length buffer needs no RAM: accepted, mapped to (NULL, 0). */
static void test_pop_zero_length_garbage_addr(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, 0xdeadbeef00000000ULL, 0, VRING_DESC_F_NEXT, 1);
	set_desc(e, 1, UINT64_MAX, 0, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 1, 1, 0, 0);
	assert_iov(&e->out[0], NULL, 0);
	assert_iov(&e->in[0], NULL, 0);
}

static void test_pop_readable_after_writable(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 0, DATA_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(e, 1, DATA_GPA, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	set_desc(e, 2, DATA_GPA, 8, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_pop_more_than_max(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 5, 0, 8);
	expect_pop_max(e, 0, 5, VIRTQ_GOT);
	expect_pop_max(e, 0, 4, VIRTQ_BROKEN);
	set_chain(e, 1, 5, 8);
	expect_pop_max(e, 0, 5, VIRTQ_GOT);
	expect_pop_max(e, 0, 4, VIRTQ_BROKEN);
}

static void test_pop_exactly_max(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 4, 4, 8); /* max bounds each direction */
	expect_pop_max(e, 0, 4, VIRTQ_GOT);
	assert_req(e, 4, 4, 32, 32);
	for (unsigned k = 0; k < 4; k++) {
		assert_iov(&e->out[k], e->m.host + DATA_GPA + 0x100 * k, 8);
		assert_iov(&e->in[k], e->m.host + DATA_GPA + 0x100 * (k + 4), 8);
	}
}

static void test_pop_direct_chain_budget(void **state)
{
	struct env *e = *state;

	start(e, 2048, false);
	set_chain(e, VIRTQ_MAX_CHAIN, 0, 1);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, VIRTQ_MAX_CHAIN, 0, VIRTQ_MAX_CHAIN, 0);
	/* Split so that neither direction exceeds max: only the budget is hit. */
	set_chain(e, HALF_UP, HALF_DOWN, 1);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

/* ---- virtq_pop: indirect tables ---------------------------------------- */

/* Descriptor 0 refers to an indirect table at `table` of `len` bytes. */
static void set_indirect(struct env *e, uint64_t table, uint32_t len, uint16_t extra_flags)
{
	set_desc(e, 0, table, len, VRING_DESC_F_INDIRECT | extra_flags, 1);
}

static void test_indirect_valid(void **state)
{
	struct env *e = *state;
	uint8_t *h = e->m.host;

	start(e, QSIZE, false);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 10, VRING_DESC_F_NEXT, 2);
	set_desc_in(e, TABLE_GPA, 2, DATA_GPA + 0x100, 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc_in(e, TABLE_GPA, 1, DATA_GPA + 0x200, 30, VRING_DESC_F_WRITE, 0);
	set_indirect(e, TABLE_GPA, 3 * 16, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_int_equal(e->req.head, 0);
	assert_req(e, 1, 2, 10, 50);
	assert_iov(&e->out[0], h + DATA_GPA, 10);
	assert_iov(&e->in[0], h + DATA_GPA + 0x100, 20);
	assert_iov(&e->in[1], h + DATA_GPA + 0x200, 30);
}

/* The device ignores WRITE on the descriptor naming the table (2.7.5.3.2). */
static void test_indirect_write_flag_ignored(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 2, 0, 4);
	set_indirect(e, TABLE_GPA, 2 * 16, VRING_DESC_F_WRITE);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 2, 0, 8, 0);
}

/* No alignment is required of an indirect table. */
static void test_indirect_unaligned_table(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA + 3, 0, 1, 1, 4);
	set_indirect(e, TABLE_GPA + 3, 2 * 16, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 1, 1, 4, 4);
}

static void test_indirect_after_direct(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 1, 1, 4);
	set_desc(e, 1, DATA_GPA + 0x1000, 16, VRING_DESC_F_NEXT, 0);
	set_indirect(e, TABLE_GPA, 2 * 16, 0);
	expect_pop(e, 1, VIRTQ_GOT);
	assert_req(e, 2, 1, 20, 4);
	assert_iov(&e->out[0], e->m.host + DATA_GPA + 0x1000, 16);
}

static void test_indirect_with_next(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 1, 0, 4);
	set_desc(e, 1, DATA_GPA, 4, 0, 0);
	set_indirect(e, TABLE_GPA, 16, VRING_DESC_F_NEXT);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_len_zero(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_indirect(e, TABLE_GPA, 0, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_len_not_multiple_of_16(void **state)
{
	struct env *e = *state;
	static const uint32_t lens[] = { 1, 15, 17, 24, 47 };

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 1, 0, 4); /* a valid first entry */
	for (size_t i = 0; i < N_ELEMS(lens); i++) {
		set_indirect(e, TABLE_GPA, lens[i], 0);
		expect_pop(e, 0, VIRTQ_BROKEN);
	}
}

static void test_indirect_nested(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA + 0x100, 0, 1, 0, 4);
	set_desc_in(e, TABLE_GPA, 0, TABLE_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	set_indirect(e, TABLE_GPA, 16, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_loop(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 1);
	set_desc_in(e, TABLE_GPA, 1, DATA_GPA, 4, VRING_DESC_F_NEXT, 2);
	set_desc_in(e, TABLE_GPA, 2, DATA_GPA, 4, VRING_DESC_F_NEXT, 1);
	set_indirect(e, TABLE_GPA, 3 * 16, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 0); /* self loop */
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_next_outside_table(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 3, 0, 4);
	set_desc_in(e, TABLE_GPA, 3, DATA_GPA, 4, 0, 0);                 /* entry 3 exists in memory ... */
	set_indirect(e, TABLE_GPA, 3 * 16, 0);                           /* ... but not in the table */
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 3);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 0xffff);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_desc_in(e, TABLE_GPA, 0, DATA_GPA, 4, VRING_DESC_F_NEXT, 2); /* the last entry: fine */
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, 2, 0, 8, 0);
}

static void test_indirect_table_outside_ram(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_indirect(e, RAM_SIZE, 16, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_indirect(e, RAM_SIZE - 16, 32, 0); /* partly */
	expect_pop(e, 0, VIRTQ_BROKEN);
	set_indirect(e, UINT64_MAX - 15, 32, 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
}

static void test_indirect_table_too_long(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, VIRTQ_MAX_CHAIN, 0, 1);
	set_indirect(e, TABLE_GPA, 16 * VIRTQ_MAX_CHAIN, 0);
	expect_pop(e, 0, VIRTQ_GOT);
	assert_req(e, VIRTQ_MAX_CHAIN, 0, VIRTQ_MAX_CHAIN, 0);
	set_chain_in(e, TABLE_GPA, 0, HALF_UP, HALF_DOWN, 1);
	set_indirect(e, TABLE_GPA, 16 * (VIRTQ_MAX_CHAIN + 1), 0);
	expect_pop(e, 0, VIRTQ_BROKEN);
	/* Direct descriptors count against the same budget. */
	set_chain_in(e, TABLE_GPA, 0, HALF_DOWN, HALF_DOWN, 1);
	set_desc(e, 1, DATA_GPA, 1, VRING_DESC_F_NEXT, 0);
	set_indirect(e, TABLE_GPA, 16 * VIRTQ_MAX_CHAIN, 0);
	expect_pop(e, 1, VIRTQ_BROKEN);
}

static void test_indirect_more_than_max(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain_in(e, TABLE_GPA, 0, 0, 3, 4);
	set_indirect(e, TABLE_GPA, 3 * 16, 0);
	expect_pop_max(e, 0, 3, VIRTQ_GOT);
	expect_pop_max(e, 0, 2, VIRTQ_BROKEN);
}

/* ---- used ring ---------------------------------------------------------- */

static void assert_used_elem(struct env *e, uint16_t slot, uint32_t id, uint32_t len)
{
	struct vring_used_elem *u = &used(e)->ring[slot & (e->q.size - 1)];

	assert_int_equal(u->id, id);
	assert_int_equal(u->len, len);
}

static void test_push_fills_used_ring(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 7, DATA_GPA, 64, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 7, VIRTQ_GOT);
	assert_int_equal(used(e)->idx, 0);
	virtq_push(&e->q, e->req.head, 1234);
	assert_int_equal(used(e)->idx, 1);
	assert_int_equal(e->q.used_idx, 1);
	assert_used_elem(e, 0, 7, 1234);
}

static void test_push_wraparound(void **state)
{
	struct env *e = *state;
	const uint16_t base = 0xfff0;

	start(e, QSIZE, false);
	set_avail_idx(e, base);
	used(e)->idx = base;
	e->q.last_avail = e->q.used_idx = base;
	for (unsigned k = 0; k < 40; k++) {
		uint16_t head = (uint16_t)(k * 7 % QSIZE);

		set_desc(e, head, DATA_GPA + k, k, VRING_DESC_F_WRITE, 0);
		expect_pop(e, head, VIRTQ_GOT);
		assert_int_equal(e->req.head, head);
		assert_iov(&e->in[0], e->m.host + DATA_GPA + k, k);
		virtq_push(&e->q, head, k + 100);
		assert_int_equal(used(e)->idx, (uint16_t)(base + k + 1));
		assert_used_elem(e, (uint16_t)(base + k), head, k + 100);
	}
	assert_int_equal(e->q.last_avail, (uint16_t)(base + 40));
	assert_int_equal(pop(e, 4), VIRTQ_EMPTY);
	/* A full ring across the wrap is accepted, one more is not. */
	set_avail_idx(e, (uint16_t)(e->q.last_avail + QSIZE));
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	set_avail_idx(e, (uint16_t)(e->q.last_avail + QSIZE + 1));
	assert_int_equal(pop(e, 4), VIRTQ_BROKEN);
}

static void test_unpop_pops_same_chain(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 4, DATA_GPA, 10, VRING_DESC_F_NEXT, 6);
	set_desc(e, 6, DATA_GPA + 0x100, 20, VRING_DESC_F_WRITE, 0);
	set_desc(e, 1, DATA_GPA, 1, 0, 0);
	offer(e, 4);
	offer(e, 1);
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_int_equal(e->req.head, 4);
	virtq_unpop(&e->q);
	assert_int_equal(e->q.last_avail, 0);
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_int_equal(e->req.head, 4);
	assert_req(e, 1, 1, 10, 20);
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_int_equal(e->req.head, 1);
	assert_int_equal(pop(e, 4), VIRTQ_EMPTY);
}

/* ---- notifications ------------------------------------------------------ */

/* Pushes n one-byte completions of head 0. */
static void push_n(struct env *e, unsigned n)
{
	while (n--)
		virtq_push(&e->q, 0, 1);
}

static void test_signal_no_event_idx(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_used_event(e, 0x7777); /* ignored without EVENT_IDX */
	push_n(e, 1);
	assert_true(virtq_should_signal(&e->q));
	avail(e)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	push_n(e, 1);
	assert_false(virtq_should_signal(&e->q));
	avail(e)->flags = 0;
	push_n(e, 1);
	assert_true(virtq_should_signal(&e->q));
}

static void test_signal_event_idx_first_call(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	set_used_event(e, 100); /* far away, yet the first signal is always sent */
	push_n(e, 1);
	assert_true(virtq_should_signal(&e->q));
	push_n(e, 1);
	assert_false(virtq_should_signal(&e->q));
}

static void test_signal_event_idx_used_event(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	assert_true(virtq_should_signal(&e->q)); /* used_idx 0: arms the state */
	set_used_event(e, 5);
	push_n(e, 3); /* 0 -> 3: entry 5 not yet used */
	assert_false(virtq_should_signal(&e->q));
	push_n(e, 2); /* 3 -> 5: still not */
	assert_false(virtq_should_signal(&e->q));
	push_n(e, 1); /* 5 -> 6: crossed */
	assert_true(virtq_should_signal(&e->q));
	push_n(e, 4); /* 6 -> 10: already signalled for 5 */
	assert_false(virtq_should_signal(&e->q));
	assert_false(virtq_should_signal(&e->q)); /* nothing new */
	set_used_event(e, 10);
	push_n(e, 1); /* 10 -> 11 */
	assert_true(virtq_should_signal(&e->q));
}

static void test_signal_event_idx_ignores_no_interrupt(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	avail(e)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	assert_true(virtq_should_signal(&e->q));
	set_used_event(e, 0);
	push_n(e, 1);
	assert_true(virtq_should_signal(&e->q));
}

static void test_signal_event_idx_wraparound(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	e->q.used_idx = 0xfffd;
	assert_true(virtq_should_signal(&e->q));
	set_used_event(e, 0xffff);
	push_n(e, 1); /* 0xfffd -> 0xfffe */
	assert_false(virtq_should_signal(&e->q));
	push_n(e, 3); /* 0xfffe -> 0x0001 crosses 0xffff */
	assert_true(virtq_should_signal(&e->q));
	set_used_event(e, 0xfff0); /* behind us */
	push_n(e, 2);
	assert_false(virtq_should_signal(&e->q));
}

static void test_enable_notify_event_idx(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	set_chain(e, 1, 0, 8);
	memset(gpa_ptr(e, USED_GPA + 4 + 8 * QSIZE, 2), 0xee, 2);
	assert_false(virtq_enable_notify(&e->q));
	assert_int_equal(get_avail_event(e), 0);
	offer(e, 0);
	offer(e, 0);
	assert_true(virtq_enable_notify(&e->q)); /* arrived meanwhile */
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_true(virtq_enable_notify(&e->q));
	assert_int_equal(get_avail_event(e), 1);
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_false(virtq_enable_notify(&e->q));
	assert_int_equal(get_avail_event(e), 2);
	assert_int_equal(used(e)->flags, 0);
}

static void test_enable_notify_no_event_idx(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 1, 0, 8);
	used(e)->flags = VRING_USED_F_NO_NOTIFY;
	assert_false(virtq_enable_notify(&e->q));
	assert_int_equal(used(e)->flags, 0);
	offer(e, 0);
	assert_true(virtq_enable_notify(&e->q));
}

/* ---- iov_to_buf / iov_from_buf ----------------------------------------- */

/* Segments of 3, 0, 5 and 4 bytes over "abcdefghijkl". */
struct iov_fixture {
	char a[3], c[5], d[4];
	struct iovec v[4];
};

static void iov_fixture_init(struct iov_fixture *f)
{
	memcpy(f->a, "abc", 3);
	memcpy(f->c, "defgh", 5);
	memcpy(f->d, "ijkl", 4);
	f->v[0] = (struct iovec){ f->a, 3 };
	f->v[1] = (struct iovec){ NULL, 0 };
	f->v[2] = (struct iovec){ f->c, 5 };
	f->v[3] = (struct iovec){ f->d, 4 };
}

static void test_iov_to_buf(void **state)
{
	struct iov_fixture f;
	char buf[16];

	(void)state;
	iov_fixture_init(&f);
	memset(buf, '.', sizeof(buf));
	assert_int_equal(iov_to_buf(f.v, 4, 2, buf, 8), 8); /* across three segments */
	assert_memory_equal(buf, "cdefghij.", 9);
	memset(buf, '.', sizeof(buf));
	assert_int_equal(iov_to_buf(f.v, 4, 3, buf, 5), 5); /* exactly segment c */
	assert_memory_equal(buf, "defgh.", 6);
	memset(buf, '.', sizeof(buf));
	assert_int_equal(iov_to_buf(f.v, 4, 9, buf, sizeof(buf)), 3); /* partial: runs out */
	assert_memory_equal(buf, "jkl.", 4);
	assert_int_equal(iov_to_buf(f.v, 4, 0, buf, sizeof(buf)), 12);
	assert_memory_equal(buf, "abcdefghijkl", 12);
	assert_int_equal(iov_to_buf(f.v, 2, 0, buf, sizeof(buf)), 3); /* only n segments */
}

static void test_iov_from_buf(void **state)
{
	struct iov_fixture f;

	(void)state;
	iov_fixture_init(&f);
	assert_int_equal(iov_from_buf(f.v, 4, 1, "XYZUVW", 6), 6);
	assert_memory_equal(f.a, "aXY", 3);
	assert_memory_equal(f.c, "ZUVWh", 5);
	assert_memory_equal(f.d, "ijkl", 4);
	assert_int_equal(iov_from_buf(f.v, 4, 10, "1234", 4), 2); /* partial */
	assert_memory_equal(f.d, "ij12", 4);
	assert_int_equal(iov_from_buf(f.v, 4, 0, "", 0), 0);
}

static void test_iov_skip_beyond_total(void **state)
{
	struct iov_fixture f;
	char buf[4];

	(void)state;
	iov_fixture_init(&f);
	memset(buf, '.', sizeof(buf));
	assert_int_equal(iov_to_buf(f.v, 4, 12, buf, sizeof(buf)), 0);
	assert_int_equal(iov_to_buf(f.v, 4, UINT64_MAX, buf, sizeof(buf)), 0);
	assert_int_equal(iov_from_buf(f.v, 4, 13, "zz", 2), 0);
	assert_memory_equal(buf, "....", 4);
	assert_memory_equal(f.d, "ijkl", 4);
	assert_int_equal(iov_to_buf(NULL, 0, 0, buf, sizeof(buf)), 0);
}

/* ---- randomized robustness ---------------------------------------------- */

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void fill_random(uint64_t *rng, void *p, size_t len)
{
	uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)xorshift64(rng);
}

/* A guest address near something interesting, or anywhere at all. */
static uint64_t random_addr(uint64_t *rng, const struct env *e)
{
	uint64_t r = xorshift64(rng), off = (r >> 8) % 0x2000;

	switch (r % 10) {
	case 0: case 1: case 2: case 3: return DATA_GPA + off;
	case 4: case 5: return TABLE_GPA + (off & ~15ULL) + (r & 0x100 ? (r >> 32) % 16 : 0);
	case 6: return e->m.low_size - off;
	case 7: return LAYOUT_4G + off;
	case 8: return guest_mem_end(&e->m) - off;
	default: return xorshift64(rng);
	}
}

/* Random bytes, usually massaged into something a walk gets deep into. */
static void random_desc(uint64_t *rng, struct vring_desc *d, const struct env *e, unsigned entries)
{
	uint64_t r = xorshift64(rng);

	fill_random(rng, d, sizeof(*d));
	if (r % 8 == 0)
		return;
	d->addr = random_addr(rng, e);
	d->len = (r >> 8) % 3 == 0 ? (uint32_t)(r >> 16) % 0x2000 : (r >> 8) % 3 == 1 ? 16 * ((r >> 16) % 80) : d->len;
	d->flags &= VRING_DESC_F_NEXT | VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT;
	d->next = (uint16_t)((r >> 40) % (entries + 2));
}

static void random_rings(uint64_t *rng, struct env *e)
{
	struct vring_avail *a = avail(e);
	uint16_t n = e->q.size;
	uint64_t r = xorshift64(rng);

	for (unsigned i = 0; i < n; i++)
		random_desc(rng, &e->q.desc[i], e, n);
	for (unsigned i = 0; i < 64; i++)
		random_desc(rng, gpa_ptr(e, TABLE_GPA + 16 * i, 16), e, 64);
	fill_random(rng, a, 6 + 2ULL * n);
	if (r % 4)
		a->idx = (uint16_t)(e->q.last_avail + (r >> 8) % (n + 2u));
	for (unsigned i = 0; i < n && r % 3; i++)
		a->ring[i] = (uint16_t)(a->ring[i] % (n + 1u));
}

/* Every mapped segment is inside guest RAM and does not cross from low RAM
 * into high RAM. Empty segments map to nothing and are not checked. */
static void assert_iovs_in_guest(const struct env *e, const struct iovec *v, unsigned n, uint64_t total)
{
	uintptr_t host = (uintptr_t)e->m.host, end = host + e->m.size, low_end = host + e->m.low_size;
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		uintptr_t b = (uintptr_t)v[i].iov_base, len = v[i].iov_len;

		sum += len;
		if (!len)
			continue;
		assert_true(b >= host && b <= end && len <= end - b);
		assert_true(b >= low_end || len <= low_end - b);
	}
	assert_int_equal(sum, total);
}

static void run_random(struct env *e)
{
	static const unsigned maxes[] = { 1, 3, 16, VIRTQ_MAX_CHAIN };
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	unsigned got = 0, broken = 0;

	for (unsigned iter = 0; iter < 2000; iter++) {
		unsigned max = maxes[xorshift64(&rng) % N_ELEMS(maxes)];
		int rc = VIRTQ_GOT;

		uint16_t size = (uint16_t)(1u << (xorshift64(&rng) % 9));
		bool event_idx = xorshift64(&rng) & 1;

		virtq_reset(&e->q);
		start(e, size, event_idx);
		random_rings(&rng, e);
		for (unsigned pops = 0; pops < 100 && rc == VIRTQ_GOT; pops++) {
			rc = pop(e, max);
			assert_true(rc == VIRTQ_GOT || rc == VIRTQ_EMPTY || rc == VIRTQ_BROKEN);
			if (rc != VIRTQ_GOT)
				break;
			got++;
			assert_true(e->req.head < e->q.size);
			assert_true(e->req.nout <= max && e->req.nin <= max);
			assert_iovs_in_guest(e, e->out, e->req.nout, e->req.out_len);
			assert_iovs_in_guest(e, e->in, e->req.nin, e->req.in_len);
			virtq_push(&e->q, e->req.head, (uint32_t)e->req.in_len);
			virtq_should_signal(&e->q);
		}
		broken += rc == VIRTQ_BROKEN;
	}
	/* The generator must reach both outcomes, or it tests little. */
	assert_true(got > 100);
	assert_true(broken > 100);
}

static void test_random_rings(void **state)
{
	run_random(*state);
}

static void test_random_rings_hole_layout(void **state)
{
	run_random(*state);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TH(f) cmocka_unit_test_setup_teardown(f, setup_hole, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_start_accepts_minimal_alignment),
		T(test_start_accepts_size_1_and_32768),
		T(test_start_rejects_size_0),
		T(test_start_rejects_non_power_of_two),
		T(test_start_rejects_size_over_32768),
		T(test_start_rejects_misaligned_desc),
		T(test_start_rejects_misaligned_avail),
		T(test_start_rejects_misaligned_used),
		T(test_start_rings_at_end_of_ram),
		T(test_start_rejects_rings_outside_ram),
		TH(test_start_rings_around_hole),
		T(test_pop_empty),
		T(test_pop_out_in_chain),
		TH(test_pop_high_ram_buffer),
		TH(test_pop_buffer_straddling_hole),
		T(test_pop_self_loop),
		T(test_pop_two_entry_loop),
		T(test_pop_whole_ring_chain_and_loop),
		T(test_pop_next_out_of_range),
		T(test_pop_head_out_of_range),
		T(test_pop_avail_idx_too_far_ahead),
		T(test_pop_buffer_outside_ram),
		T(test_pop_buffer_addr_len_overflow),
		T(test_pop_buffer_crossing_end_of_ram),
		T(test_pop_zero_length_garbage_addr),
		T(test_pop_readable_after_writable),
		T(test_pop_more_than_max),
		T(test_pop_exactly_max),
		T(test_pop_direct_chain_budget),
		T(test_indirect_valid),
		T(test_indirect_write_flag_ignored),
		T(test_indirect_unaligned_table),
		T(test_indirect_after_direct),
		T(test_indirect_with_next),
		T(test_indirect_len_zero),
		T(test_indirect_len_not_multiple_of_16),
		T(test_indirect_nested),
		T(test_indirect_loop),
		T(test_indirect_next_outside_table),
		T(test_indirect_table_outside_ram),
		T(test_indirect_table_too_long),
		T(test_indirect_more_than_max),
		T(test_push_fills_used_ring),
		T(test_push_wraparound),
		T(test_unpop_pops_same_chain),
		T(test_signal_no_event_idx),
		T(test_signal_event_idx_first_call),
		T(test_signal_event_idx_used_event),
		T(test_signal_event_idx_ignores_no_interrupt),
		T(test_signal_event_idx_wraparound),
		T(test_enable_notify_event_idx),
		T(test_enable_notify_no_event_idx),
		T(test_iov_to_buf),
		T(test_iov_from_buf),
		T(test_iov_skip_beyond_total),
		T(test_random_rings),
		TH(test_random_rings_hole_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
