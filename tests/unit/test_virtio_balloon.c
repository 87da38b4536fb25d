/* virtio-balloon (src/virtio/balloon.c) against what a guest sends: PFNs
 * in RAM (their pages go back to the host and read as zeros), PFNs beyond
 * RAM or wrapping, ragged buffers, free page reports that are unaligned or
 * outside RAM, malformed chains, statistics with unknown tags; and its
 * snapshot section refusing values out of range. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>

#include "helpers.h"
#include "util/err.h"
#include "virtio/balloon.h"

#define RAM (8 * MiB)
#define QSIZE 16
#define NQ 4
#define Q_GPA(q) (0x1000ULL + (uint64_t)(q) * 0x3000)
#define DATA_GPA 0x20000ULL
#define PAGES_GPA (4 * MiB)

struct env {
	struct guest_mem m;
	struct event_loop loop;
	struct virtio_dev *dev;
	uint16_t avail_idx[NQ], next_desc[NQ];
	unsigned signals;
};

static void t_signal_queue(struct virtio_dev *d, unsigned q)
{
	(void)q;
	((struct env *)d->transport_priv)->signals++;
}

static void t_signal_config(struct virtio_dev *d)
{
	(void)d;
}

static const struct virtio_transport fake_transport = { t_signal_queue, t_signal_config };

static void *gpa(struct env *e, uint64_t a, uint64_t len)
{
	void *p = guest_mem_ptr(&e->m, a, len);

	assert_non_null(p);
	return p;
}

static int setup(void **state)
{
	struct balloon_config c = { .on = true, .amount_mib = 2, .stats_s = 1, .reporting = true };
	struct env *e = calloc(1, sizeof(*e));
	struct virtio_dev *d;

	assert_non_null(e);
	test_mem_map(&e->m, RAM);
	e->m.ram_fd = -1;
	assert_int_equal(event_loop_init(&e->loop), 0);
	d = e->dev = virtio_balloon_new(&e->m, &e->loop, &c);
	assert_non_null(d);
	assert_int_equal(d->ops->num_queues, NQ);
	d->transport = &fake_transport;
	d->transport_priv = e;
	pthread_mutex_lock(&d->lock);
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	d->driver_features = d->device_features & ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned q = 0; q < NQ; q++) {
		d->vq[q] = (struct virtq){ .size = QSIZE, .ready = true, .desc_gpa = Q_GPA(q),
					   .avail_gpa = Q_GPA(q) + 0x1000, .used_gpa = Q_GPA(q) + 0x2000 };
	}
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
				     VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(virtio_ready(d));
	pthread_mutex_unlock(&d->lock);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	e->dev->ops->destroy(e->dev);
	event_loop_destroy(&e->loop);
	test_mem_unmap(&e->m);
	free(e);
	return 0;
}

/* One buffer (readable, or writable) of len bytes at addr on queue q. */
static void offer(struct env *e, unsigned q, uint64_t addr, uint32_t len, bool write)
{
	uint16_t i = e->next_desc[q]++ % QSIZE;
	struct vring_desc d = { .addr = addr, .len = len, .flags = write ? VRING_DESC_F_WRITE : 0 };
	struct vring_avail *a = gpa(e, Q_GPA(q) + 0x1000, 4 + 2 * QSIZE);

	memcpy(gpa(e, Q_GPA(q) + 16ULL * i, 16), &d, 16);
	a->ring[e->avail_idx[q] % QSIZE] = i;
	__atomic_store_n(&a->idx, ++e->avail_idx[q], __ATOMIC_RELEASE);
}

static void kick(struct env *e, unsigned q)
{
	pthread_mutex_lock(&e->dev->lock);
	virtio_kick(e->dev, q);
	pthread_mutex_unlock(&e->dev->lock);
}

static uint16_t used_idx(struct env *e, unsigned q)
{
	return ((struct vring_used *)gpa(e, Q_GPA(q) + 0x2000, 4))->idx;
}

static void offer_pfns(struct env *e, const uint32_t *pfns, unsigned n, uint32_t len)
{
	memcpy(gpa(e, DATA_GPA, 4ULL * n), pfns, 4ULL * n);
	offer(e, 0, DATA_GPA, len, false);
	kick(e, 0);
}

static struct balloon_info info(struct env *e)
{
	struct balloon_info i;

	virtio_balloon_info(e->dev, &i);
	return i;
}

static void test_inflate_discards_pages_in_ram_only(void **state)
{
	struct env *e = *state;
	uint32_t p = (uint32_t)(PAGES_GPA >> 12);
	/* Two runs in RAM, then what is not RAM: past its end, the MMIO
	 * hole, the last PFN (whose address wraps nothing: 44 bits). */
	const uint32_t pfns[] = { p, p + 1, p + 2, p + 7, (uint32_t)(RAM >> 12), 0xc0000, 0xffffffff, p + 8 };

	memset(gpa(e, PAGES_GPA, 9 * 4096), 0xaa, 9 * 4096);
	offer_pfns(e, pfns, 8, sizeof(pfns));
	assert_int_equal(used_idx(e, 0), 1);
	assert_true(virtio_ready(e->dev));
	assert_int_equal(info(e).discarded_pages, 5);
	assert_int_equal(*(uint8_t *)gpa(e, PAGES_GPA, 1), 0);
	assert_int_equal(*(uint8_t *)gpa(e, PAGES_GPA + 8 * 4096 + 4095, 1), 0);
	assert_int_equal(*(uint8_t *)gpa(e, PAGES_GPA + 3 * 4096, 1), 0xaa);
}

static void test_ragged_and_empty_buffers(void **state)
{
	struct env *e = *state;
	const uint32_t pfn = (uint32_t)(PAGES_GPA >> 12);

	offer_pfns(e, &pfn, 1, 3); /* less than one PFN */
	offer_pfns(e, &pfn, 1, 0);
	offer_pfns(e, &pfn, 1, 5); /* one and a bit */
	assert_int_equal(used_idx(e, 0), 3);
	assert_int_equal(info(e).discarded_pages, 1);
	assert_true(virtio_ready(e->dev));
}

static void test_buffer_outside_ram_breaks_the_queue_not_the_host(void **state)
{
	struct env *e = *state;

	offer(e, 0, RAM - 2, 8, false);
	kick(e, 0);
	assert_false(virtio_ready(e->dev));
	assert_int_equal(info(e).discarded_pages, 0);
}

static void test_deflate_needs_nothing(void **state)
{
	struct env *e = *state;

	offer(e, 1, DATA_GPA, 64, false);
	kick(e, 1);
	assert_int_equal(used_idx(e, 1), 1);
	assert_int_equal(info(e).discarded_pages, 0);
}

static void test_reports_aligned_inside_ram(void **state)
{
	struct env *e = *state;

	memset(gpa(e, PAGES_GPA, 4 * 4096), 0xaa, 4 * 4096);
	offer(e, 3, PAGES_GPA + 100, 3 * 4096, true); /* two whole pages inside */
	kick(e, 3);
	offer(e, 3, PAGES_GPA + 3 * 4096, 100, true); /* no whole page */
	kick(e, 3);
	assert_int_equal(used_idx(e, 3), 2);
	assert_int_equal(info(e).discarded_pages, 2);
	assert_int_equal(*(uint8_t *)gpa(e, PAGES_GPA, 1), 0xaa);
	assert_int_equal(*(uint8_t *)gpa(e, PAGES_GPA + 4096, 1), 0);
	assert_int_equal(*(uint8_t *)gpa(e, PAGES_GPA + 3 * 4096, 1), 0xaa);
}

static void put_stat(uint8_t *p, uint16_t tag, uint64_t val)
{
	memcpy(p, &tag, 2);
	memcpy(p + 2, &val, 8);
}

static void test_stats_kept_and_buffer_left_in_the_ring(void **state)
{
	struct env *e = *state;
	uint8_t *s = gpa(e, DATA_GPA, 40);
	struct balloon_info i;

	put_stat(s, 4, 123 * MiB);  /* free */
	put_stat(s + 10, 5, 456 * MiB); /* total */
	put_stat(s + 20, 999, 7);   /* unknown: ignored */
	put_stat(s + 30, 16, 7);    /* just past the known tags */
	offer(e, 2, DATA_GPA, 40, false);
	kick(e, 2);
	i = info(e);
	assert_int_equal(i.stats_mask, (1u << 4) | (1u << 5));
	assert_int_equal(i.stats[4], 123 * MiB);
	assert_int_equal(i.stats[5], 456 * MiB);
	/* Held for the next poll, but nothing is in flight for a snapshot. */
	assert_int_equal(used_idx(e, 2), 0);
	assert_true(virtio_dev_idle(e->dev));
	assert_int_equal(i.target_pages, 512);
}

static void test_target_and_driver_writes(void **state)
{
	struct env *e = *state;
	uint32_t v = 0xffffffff, actual = 100;

	virtio_balloon_set_target(e->dev, 1024);
	pthread_mutex_lock(&e->dev->lock);
	virtio_config_access(e->dev, 0, (uint8_t *)&v, 4, true); /* the target is not the guest's */
	virtio_config_access(e->dev, 4, (uint8_t *)&actual, 4, true);
	virtio_config_access(e->dev, 0, (uint8_t *)&v, 4, false);
	pthread_mutex_unlock(&e->dev->lock);
	assert_int_equal(v, 1024);
	assert_int_equal(info(e).actual_pages, 100);
}

static void test_section_round_trip_and_hostile(void **state)
{
	struct env *e = *state;
	struct snap_writer w;
	struct snap_reader r;

	virtio_balloon_set_target(e->dev, 77);
	snap_writer_init(&w);
	assert_int_equal(virtio_balloon_save(e->dev, &w), 0);
	virtio_balloon_set_target(e->dev, 0);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_balloon_load(e->dev, &r), 0);
	assert_int_equal(info(e).target_pages, 77);
	/* A target beyond RAM, then a truncated section. */
	memset(w.buf, 0xff, 4);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_balloon_load(e->dev, &r), CV_EINPUT);
	snap_reader_init(&r, w.buf + 4, w.len - 8);
	assert_int_equal(virtio_balloon_load(e->dev, &r), CV_EINPUT);
	assert_int_equal(info(e).target_pages, 77);
	snap_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inflate_discards_pages_in_ram_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ragged_and_empty_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffer_outside_ram_breaks_the_queue_not_the_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deflate_needs_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reports_aligned_inside_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_kept_and_buffer_left_in_the_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_and_driver_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_section_round_trip_and_hostile, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
