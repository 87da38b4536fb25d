/* Split virtqueue (src/virtio/queue.c) against random rings and tables:
 * whatever the guest writes, virtq_pop only ever maps buffers inside guest
 * RAM, and the generator reaches both good and broken chains. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vq_fixture.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_random_rings),
		TH(test_random_rings_hole_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
