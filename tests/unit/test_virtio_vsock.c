/* The virtio-vsock device (src/virtio/vsock.c) through its queues, as a
 * hostile or careless driver uses them: chains shorter than a header,
 * lengths beyond the chain, receive buffers too small for a header, and
 * the transport reset event a restored snapshot sends. The host side is
 * real (a Unix listener in a temporary directory). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "util/err.h"
#include "virtio/vsock.h"
#include "virtio/vsock_pkt.h"

#define RAM (1 * MiB)
#define QSIZE 16
#define RXQ 0
#define TXQ 1
#define EVQ 2
#define CID 5
#define DATA_GPA 0x40000ULL

struct env {
	struct guest_mem m;
	struct event_loop loop;
	struct virtio_dev *dev;
	char dir[64];
	uint16_t next_desc[3], avail_idx[3];
	uint64_t next_data;
};

static void t_signal_queue(struct virtio_dev *d, unsigned q)
{
	(void)d;
	(void)q;
}

static void t_signal_config(struct virtio_dev *d)
{
	(void)d;
}

static const struct virtio_transport fake_transport = { .signal_queue = t_signal_queue,
							 .signal_config = t_signal_config };

static void *gpa(struct env *e, uint64_t addr, uint64_t len)
{
	void *p = guest_mem_ptr(&e->m, addr, len);

	assert_non_null(p);
	return p;
}

/* Queue q's rings: 4 KiB apart, from 0x1000. */
static uint64_t desc_gpa(unsigned q) { return 0x1000ULL + q * 0x3000; }
static uint64_t avail_gpa(unsigned q) { return desc_gpa(q) + 0x1000; }
static uint64_t used_gpa(unsigned q) { return desc_gpa(q) + 0x2000; }

static uint16_t used_idx(struct env *e, unsigned q)
{
	return ((struct vring_used *)gpa(e, used_gpa(q), 6 + 8 * QSIZE))->idx;
}

static struct vring_used_elem used_elem(struct env *e, unsigned q, unsigned i)
{
	return ((struct vring_used *)gpa(e, used_gpa(q), 6 + 8 * QSIZE))->ring[i % QSIZE];
}

static uint64_t alloc(struct env *e, uint64_t len)
{
	uint64_t at = e->next_data;

	e->next_data = (e->next_data + len + 15) & ~15ULL;
	assert_true(e->next_data < RAM);
	memset(gpa(e, at, len), 0, len);
	return at;
}

/* Posts a one-descriptor chain on queue q and kicks it. */
static void post(struct env *e, unsigned q, uint64_t addr, uint32_t len, bool writable)
{
	uint16_t i = e->next_desc[q]++ % QSIZE;
	struct vring_desc d = { .addr = addr, .len = len, .flags = writable ? VRING_DESC_F_WRITE : 0 };
	struct vring_avail *a = gpa(e, avail_gpa(q), 6 + 2 * QSIZE);

	memcpy(gpa(e, desc_gpa(q) + 16ULL * i, 16), &d, 16);
	a->ring[e->avail_idx[q] % QSIZE] = i;
	a->idx = ++e->avail_idx[q];
	pthread_mutex_lock(&e->dev->lock);
	virtio_kick(e->dev, q);
	pthread_mutex_unlock(&e->dev->lock);
}

static uint64_t send_hdr(struct env *e, struct vsock_hdr h, uint32_t chain_len)
{
	uint64_t at = alloc(e, chain_len < VSOCK_HDR_SIZE ? VSOCK_HDR_SIZE : chain_len);
	uint8_t raw[VSOCK_HDR_SIZE];

	vsock_hdr_encode(&h, raw);
	memcpy(gpa(e, at, VSOCK_HDR_SIZE), raw, VSOCK_HDR_SIZE);
	post(e, TXQ, at, chain_len, false);
	return at;
}

static struct vsock_hdr pkt(uint16_t op, uint32_t src, uint32_t dst, uint32_t len)
{
	return (struct vsock_hdr){ .src_cid = CID, .dst_cid = VSOCK_HOST_CID, .src_port = src, .dst_port = dst,
				   .len = len, .type = VSOCK_TYPE_STREAM, .op = op, .buf_alloc = 65536 };
}

static void bring_up(struct env *e)
{
	struct virtio_dev *d = e->dev;

	pthread_mutex_lock(&d->lock);
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	d->driver_features = 1ULL << VIRTIO_F_VERSION_1;
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned q = 0; q < 3; q++)
		d->vq[q] = (struct virtq){ .size = QSIZE, .desc_gpa = desc_gpa(q), .avail_gpa = avail_gpa(q),
					   .used_gpa = used_gpa(q), .ready = true };
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
				     VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(virtio_ready(d));
	pthread_mutex_unlock(&d->lock);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char path[96];

	guest_mem_layout(&e->m, RAM, LAYOUT_MMIO_HOLE);
	e->m.host = aligned_alloc(4096, RAM);
	memset(e->m.host, 0, RAM);
	e->next_data = DATA_GPA;
	snprintf(e->dir, sizeof(e->dir), "/tmp/cv-vvsock-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(path, sizeof(path), "%s/v", e->dir);
	assert_int_equal(event_loop_init(&e->loop), 0);
	e->dev = virtio_vsock_new(&e->m, &e->loop, CID, path);
	assert_non_null(e->dev);
	assert_int_equal(e->dev->config[0], CID); /* guest_cid, le64 */
	e->dev->transport = &fake_transport;
	e->dev->transport_priv = e;
	bring_up(e);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	e->dev->ops->destroy(e->dev);
	event_loop_destroy(&e->loop);
	assert_int_equal(rmdir(e->dir), 0); /* the socket file is gone */
	free(e->m.host);
	free(e);
	return 0;
}

static void test_short_and_oversized_packets(void **state)
{
	struct env *e = *state;
	uint64_t rx = alloc(e, 4096);
	struct vsock_hdr h;

	/* Shorter than a header: taken and dropped, nothing answered. */
	send_hdr(e, pkt(VSOCK_OP_REQUEST, 1, 2, 0), 10);
	assert_int_equal(used_idx(e, TXQ), 1);
	post(e, RXQ, rx, 4096, true);
	assert_int_equal(used_idx(e, RXQ), 0);
	/* A length beyond the chain: reset, not read past the chain. */
	send_hdr(e, pkt(VSOCK_OP_RW, 1, 2, 1000), VSOCK_HDR_SIZE + 10);
	assert_int_equal(used_idx(e, TXQ), 2);
	assert_int_equal(used_idx(e, RXQ), 1);
	assert_int_equal(used_elem(e, RXQ, 0).len, VSOCK_HDR_SIZE);
	vsock_hdr_decode(gpa(e, rx, VSOCK_HDR_SIZE), &h);
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(h.dst_cid, CID);
	assert_int_equal(h.src_port, 2);
	assert_int_equal(h.dst_port, 1);
	/* Spoofed source CID: dropped silently. */
	{
		struct vsock_hdr s = pkt(VSOCK_OP_REQUEST, 1, 2, 0);

		s.src_cid = CID + 1;
		send_hdr(e, s, VSOCK_HDR_SIZE);
	}
	post(e, RXQ, alloc(e, 4096), 4096, true);
	assert_int_equal(used_idx(e, RXQ), 1);
	assert_true(virtio_ready(e->dev));
}

static void test_connect_to_nothing_is_reset(void **state)
{
	struct env *e = *state;
	uint64_t rx = alloc(e, 4096);
	struct vsock_hdr h;

	post(e, RXQ, rx, 4096, true);
	send_hdr(e, pkt(VSOCK_OP_REQUEST, 1234, 80, 0), VSOCK_HDR_SIZE);
	assert_int_equal(used_idx(e, RXQ), 1);
	vsock_hdr_decode(gpa(e, rx, VSOCK_HDR_SIZE), &h);
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(h.dst_port, 1234);
}

static void test_tiny_receive_buffer_needs_reset(void **state)
{
	struct env *e = *state;

	send_hdr(e, pkt(VSOCK_OP_REQUEST, 1234, 80, 0), VSOCK_HDR_SIZE);
	post(e, RXQ, alloc(e, 16), 16, true);
	assert_true(e->dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(used_idx(e, RXQ), 0);
}

static void test_restore_sends_transport_reset(void **state)
{
	struct env *e = *state;
	uint64_t ev = alloc(e, 8);
	struct snap_writer w;
	struct snap_reader r;

	memset(gpa(e, ev, 8), 0xee, 8);
	post(e, EVQ, ev, 8, true);
	assert_int_equal(used_idx(e, EVQ), 0); /* nothing to say yet */
	snap_writer_init(&w);
	assert_int_equal(virtio_vsock_save(e->dev, &w), 0);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_vsock_load(e->dev, &r), 0);
	assert_int_equal(used_idx(e, EVQ), 1);
	assert_int_equal(used_elem(e, EVQ, 0).len, 4);
	assert_int_equal(*(uint32_t *)gpa(e, ev, 4), 0); /* VIRTIO_VSOCK_EVENT_TRANSPORT_RESET */
	/* Another CID's state is refused. */
	snap_writer_free(&w);
	snap_writer_init(&w);
	snap_put_u64(&w, CID + 1);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_vsock_load(e->dev, &r), CV_EINPUT);
	snap_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_short_and_oversized_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_to_nothing_is_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tiny_receive_buffer_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_sends_transport_reset, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
