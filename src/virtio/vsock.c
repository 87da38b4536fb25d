#include "virtio/vsock.h"

#include <stdlib.h>
#include <sys/epoll.h>

#include "util/err.h"
#include "util/iov.h"
#include "virtio/vsock_uds.h"

#define VSOCK_QUEUE_SIZE 256
#define VSOCK_MAX_SEGS 64
#define RXQ 0
#define TXQ 1
#define EVQ 2
#define EVENT_TRANSPORT_RESET 0

struct virtio_vsock {
	struct virtio_dev dev;
	uint8_t config[8]; /* guest_cid, le64 */
	uint64_t cid;
	struct vsock_uds *uds;
	bool reset_pending; /* a transport reset event for the guest */
};

static bool queue_usable(struct virtio_vsock *v, unsigned q)
{
	return virtio_ready(&v->dev) && v->dev.vq[q].ready;
}

/* Gives the guest what the host side has for it, while it has buffers. */
static void fill_rx(struct virtio_vsock *v)
{
	struct iovec out[VSOCK_MAX_SEGS], in[VSOCK_MAX_SEGS], payload[VSOCK_MAX_SEGS];
	struct virtq *q = &v->dev.vq[RXQ];
	bool pushed = false;
	struct virtq_req r;

	while (queue_usable(v, RXQ) && vsock_uds_has_rx(v->uds) && virtio_pop(&v->dev, RXQ, &r, out, in, VSOCK_MAX_SEGS)) {
		uint8_t raw[VSOCK_HDR_SIZE];
		struct vsock_hdr h;
		uint64_t cap = r.in_len < VSOCK_HDR_SIZE ? 0 : r.in_len - VSOCK_HDR_SIZE;
		unsigned np = iov_slice(r.in, r.nin, VSOCK_HDR_SIZE, cap, payload, VSOCK_MAX_SEGS);

		if (r.in_len < VSOCK_HDR_SIZE) {
			virtio_needs_reset(&v->dev, "receive buffer smaller than a packet header");
			return;
		}
		if (!vsock_uds_to_guest(v->uds, &h, payload, np, cap < VSOCK_MAX_PAYLOAD ? (uint32_t)cap : VSOCK_MAX_PAYLOAD)) {
			virtq_unpop(q);
			break;
		}
		vsock_hdr_encode(&h, raw);
		iov_from_buf(r.in, r.nin, 0, raw, VSOCK_HDR_SIZE);
		virtq_push(q, r.head, VSOCK_HDR_SIZE + h.len);
		pushed = true;
	}
	if (pushed)
		virtio_signal_used(&v->dev, RXQ);
}

static void transmit(struct virtio_vsock *v)
{
	struct iovec out[VSOCK_MAX_SEGS], in[VSOCK_MAX_SEGS], payload[VSOCK_MAX_SEGS];
	struct virtq_req r;

	while (virtio_pop(&v->dev, TXQ, &r, out, in, VSOCK_MAX_SEGS)) {
		uint8_t raw[VSOCK_HDR_SIZE];
		struct vsock_hdr h;

		/* A packet shorter than its header is nobody's: drop it. */
		if (iov_to_buf(r.out, r.nout, 0, raw, VSOCK_HDR_SIZE) == VSOCK_HDR_SIZE) {
			vsock_hdr_decode(raw, &h);
			switch (vsock_hdr_check(&h, v->cid, r.out_len - VSOCK_HDR_SIZE)) {
			case VSOCK_HDR_OK:
				vsock_uds_from_guest(v->uds, &h, payload,
						     iov_slice(r.out, r.nout, VSOCK_HDR_SIZE, h.len, payload, VSOCK_MAX_SEGS));
				break;
			case VSOCK_HDR_RESET:
				vsock_uds_refuse(v->uds, &h);
				break;
			case VSOCK_HDR_DROP:
				break;
			}
		}
		virtq_push(&v->dev.vq[TXQ], r.head, 0);
	}
	virtio_signal_used(&v->dev, TXQ);
}

static void send_event(struct virtio_vsock *v)
{
	static const uint8_t reset[4] = { EVENT_TRANSPORT_RESET };
	struct iovec out[4], in[4];
	struct virtq_req r;

	if (!v->reset_pending || !queue_usable(v, EVQ) || !virtio_pop(&v->dev, EVQ, &r, out, in, 4))
		return;
	virtq_push(&v->dev.vq[EVQ], r.head, (uint32_t)iov_from_buf(r.in, r.nin, 0, reset, sizeof(reset)));
	v->reset_pending = false;
	virtio_signal_used(&v->dev, EVQ);
}

static void vsock_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_vsock *v = d->priv;

	if (q == TXQ)
		transmit(v);
	else if (q == EVQ)
		send_event(v);
	fill_rx(v);
}

static void on_host(void *opaque, uint32_t events)
{
	struct virtio_vsock *v = opaque;

	(void)events;
	pthread_mutex_lock(&v->dev.lock);
	vsock_uds_poll(v->uds);
	fill_rx(v);
	pthread_mutex_unlock(&v->dev.lock);
}

static int vsock_activate(struct virtio_dev *d)
{
	struct virtio_vsock *v = d->priv;

	send_event(v);
	fill_rx(v);
	return 0;
}

/* The driver reset the device: its sockets are gone, so are ours. */
static void vsock_reset(struct virtio_dev *d)
{
	vsock_uds_reset(((struct virtio_vsock *)d->priv)->uds);
}

static void vsock_destroy(struct virtio_dev *d)
{
	struct virtio_vsock *v = d->priv;

	event_loop_del(d->loop, vsock_uds_fd(v->uds));
	vsock_uds_close(v->uds);
	virtio_dev_destroy(d);
	free(v);
}

static const struct virtio_ops vsock_ops = {
	.name = "vsock",
	.device_id = 19,
	.num_queues = 3,
	.queue_max = VSOCK_QUEUE_SIZE,
	.notify = vsock_notify,
	.activate = vsock_activate,
	.reset = vsock_reset,
	.destroy = vsock_destroy,
};

int virtio_vsock_save(void *opaque, struct snap_writer *w)
{
	struct virtio_vsock *v = ((struct virtio_dev *)opaque)->priv;

	snap_put_u64(w, v->cid);
	return 0;
}

int virtio_vsock_load(void *opaque, struct snap_reader *r)
{
	struct virtio_vsock *v = ((struct virtio_dev *)opaque)->priv;
	uint64_t cid = snap_get_u64(r);

	if (snap_reader_ok(r) && cid != v->cid)
		snap_reader_fail(r, "the vsock device has another guest CID");
	if (!snap_reader_ok(r))
		return CV_EINPUT;
	pthread_mutex_lock(&v->dev.lock);
	vsock_uds_reset(v->uds);
	v->reset_pending = true;
	send_event(v);
	pthread_mutex_unlock(&v->dev.lock);
	return 0;
}

struct virtio_dev *virtio_vsock_new(const struct guest_mem *mem, struct event_loop *loop, uint64_t guest_cid,
				    const char *uds_path)
{
	struct virtio_vsock *v = calloc(1, sizeof(*v));

	if (!v) {
		cv_err("out of memory");
		return NULL;
	}
	v->cid = guest_cid;
	for (unsigned i = 0; i < 8; i++)
		v->config[i] = (uint8_t)(guest_cid >> (8 * i));
	if (vsock_uds_open(uds_path, guest_cid, &v->uds)) {
		free(v);
		return NULL;
	}
	if (virtio_dev_init(&v->dev, &vsock_ops, v, 0, v->config, sizeof(v->config), mem, loop)) {
		cv_err("vsock: cannot initialise the device");
		vsock_uds_close(v->uds);
		free(v);
		return NULL;
	}
	if (event_loop_add(loop, vsock_uds_fd(v->uds), EPOLLIN, on_host, v)) {
		virtio_dev_destroy(&v->dev);
		vsock_uds_close(v->uds);
		free(v);
		return NULL;
	}
	return &v->dev;
}
