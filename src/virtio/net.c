#include "virtio/net.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/iov.h"
#include "util/ratelimit.h"

#define NET_QUEUE_SIZE 256
#define NET_MAX_SEGS 64
#define RXQ 0
#define TXQ 1
/* A GSO frame from the tap: 64 KiB of payload plus headers. */
#define FRAME_MAX (NET_HDR_LEN + 65536 + 256)
#define RX_BATCH 64

struct virtio_net {
	struct virtio_dev dev;
	struct virtio_net_config config;
	struct net_backend *be;
	struct net_intercept *ic; /* the MMDS on this NIC, or NULL */
	bool tx_blocked;     /* back-end full: resume when it is ready */
	struct ratelimit rx_limit, tx_limit;
	uint8_t *frame;      /* one received frame waiting for guest buffers */
	ssize_t frame_len;   /* 0: none waiting */
	struct iovec out[NET_MAX_SEGS], in[NET_MAX_SEGS];
};

static void update_watch(struct virtio_net *n)
{
	/* Take frames from the back-end only while one can go somewhere and
	 * the rate limit allows; throttled frames wait in the back-end. */
	n->be->ops->want(n->be, !n->frame_len && !n->rx_limit.waiting, n->tx_blocked);
}

/* Host address of byte `off` of a chain's writable buffers, or NULL. */
static uint8_t *in_byte(const struct virtq_req *r, uint64_t off)
{
	for (unsigned i = 0; i < r->nin; i++) {
		if (off < r->in[i].iov_len)
			return (uint8_t *)r->in[i].iov_base + off;
		off -= r->in[i].iov_len;
	}
	return NULL;
}

/* Copies the waiting frame into as many receive chains as it needs; false
 * if the guest has not posted enough buffers yet. */
static bool deliver_frame(struct virtio_net *n)
{
	struct virtq *q = &n->dev.vq[RXQ];
	uint16_t heads[NET_MAX_SEGS], count = 0;
	uint32_t lens[NET_MAX_SEGS];
	uint8_t *nb[2] = { NULL, NULL }; /* num_buffers in the first chain */
	uint64_t done = 0;
	struct virtq_req r;
	int rc;

	while (done < (uint64_t)n->frame_len) {
		if (count == NET_MAX_SEGS || (rc = virtq_pop(q, &r, n->out, n->in, NET_MAX_SEGS)) == VIRTQ_EMPTY) {
			/* Not enough room: give the chains back and wait for more. */
			while (count--)
				virtq_unpop(q);
			return false;
		}
		if (rc == VIRTQ_BROKEN || !r.in_len) {
			virtio_needs_reset(&n->dev, "malformed receive queue");
			return false;
		}
		if (!count) {
			nb[0] = in_byte(&r, offsetof(struct virtio_net_hdr_v1, num_buffers));
			nb[1] = in_byte(&r, offsetof(struct virtio_net_hdr_v1, num_buffers) + 1);
		}
		lens[count] = (uint32_t)iov_from_buf(r.in, r.nin, 0, n->frame + done, (uint64_t)n->frame_len - done);
		heads[count++] = r.head;
		done += lens[count - 1];
	}
	if (nb[0] && nb[1]) {
		*nb[0] = (uint8_t)count;
		*nb[1] = (uint8_t)(count >> 8);
	}
	for (uint16_t i = 0; i < count; i++)
		virtq_push(q, heads[i], lens[i]);
	n->frame_len = 0;
	return true;
}

static void receive(struct virtio_net *n)
{
	struct virtq *q = &n->dev.vq[RXQ];
	bool pushed = false;

	if (!virtio_ready(&n->dev) || !q->ready)
		return;
	for (int i = 0; i < RX_BATCH; i++) {
		if (!n->frame_len) {
			if (!ratelimit_admit(&n->rx_limit))
				break; /* its timer calls receive() again */
			n->frame_len = n->ic ? (ssize_t)n->ic->ops->give(n->ic, n->frame, FRAME_MAX) : 0;
			if (!n->frame_len)
				n->frame_len = n->be->ops->recv(n->be, n->frame, FRAME_MAX);
			if (n->frame_len <= 0) {
				n->frame_len = 0;
				break; /* drained */
			}
			if (n->frame_len < NET_HDR_LEN) {
				n->frame_len = 0;
				continue;
			}
			ratelimit_charge(&n->rx_limit, (uint64_t)n->frame_len - NET_HDR_LEN);
		}
		/* When the frame needs more buffers than are posted, ask for a
		 * kick on the next one (not at last_avail, which the guest is
		 * already past); retry while more arrived before that took. */
		while (!deliver_frame(n) && !(n->dev.status & VIRTIO_CONFIG_S_NEEDS_RESET))
			if (!virtq_notify_on_more(q))
				goto out;
		if (n->dev.status & VIRTIO_CONFIG_S_NEEDS_RESET)
			break;
		pushed = true;
	}
out:
	if (pushed)
		virtio_signal_used(&n->dev, RXQ);
	update_watch(n);
}

static void transmit(struct virtio_net *n)
{
	struct virtq_req r;
	bool pushed = false, taken = false;

	if (!virtio_ready(&n->dev) || !n->dev.vq[TXQ].ready)
		return;
	/* A throttled queue stays as the guest filled it; the limiter's
	 * timer calls transmit() again. */
	while (ratelimit_admit(&n->tx_limit) && virtio_pop(&n->dev, TXQ, &r, n->out, n->in, NET_MAX_SEGS)) {
		/* The chain is header + frame, exactly what a back-end takes. */
		if (r.out_len > NET_HDR_LEN && n->ic && n->ic->ops->take(n->ic, r.out, r.nout)) {
			virtq_push(&n->dev.vq[TXQ], r.head, 0);
			pushed = taken = true;
			continue;
		}
		if (r.out_len > NET_HDR_LEN && n->be->ops->send(n->be, r.out, r.nout) == -EAGAIN) {
			virtq_unpop(&n->dev.vq[TXQ]);
			n->tx_blocked = true;
			break;
		}
		if (r.out_len > NET_HDR_LEN)
			ratelimit_charge(&n->tx_limit, r.out_len - NET_HDR_LEN);
		virtq_push(&n->dev.vq[TXQ], r.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_signal_used(&n->dev, TXQ);
	if (taken)
		receive(n); /* the service's answers */
	update_watch(n);
}

static void on_ready(void *opaque, bool rx, bool tx)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->dev.lock);
	if (tx) {
		n->tx_blocked = false;
		transmit(n);
	}
	if (rx)
		receive(n);
	pthread_mutex_unlock(&n->dev.lock);
}

static void on_rx_resume(void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->dev.lock);
	receive(n);
	update_watch(n); /* also when the device is not ready to receive */
	pthread_mutex_unlock(&n->dev.lock);
}

/* The intercepting service has frames for the guest (its timers). */
static void on_intercept_wake(void *opaque)
{
	on_rx_resume(opaque);
}

static void on_tx_resume(void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->dev.lock);
	transmit(n);
	pthread_mutex_unlock(&n->dev.lock);
}

int virtio_net_set_limits(struct virtio_dev *d, const struct ratelimit_config *rx, unsigned rx_which,
			  const struct ratelimit_config *tx, unsigned tx_which)
{
	struct virtio_net *n = d->priv;
	int rc_rx, rc_tx;

	pthread_mutex_lock(&d->lock);
	if (ratelimit_update(&n->rx_limit, rx, rx_which, &rc_rx) && virtio_ready(d))
		receive(n);
	if (ratelimit_update(&n->tx_limit, tx, tx_which, &rc_tx) && virtio_ready(d))
		transmit(n);
	pthread_mutex_unlock(&d->lock);
	return rc_rx ? rc_rx : rc_tx;
}

void virtio_net_throttled(struct virtio_dev *d, uint64_t *rx, uint64_t *tx)
{
	struct virtio_net *n = d->priv;

	*rx = n->rx_limit.throttled;
	*tx = n->tx_limit.throttled;
}

static void net_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_net *n = d->priv;

	if (q == TXQ)
		transmit(n);
	else
		receive(n);
}

static int net_activate(struct virtio_dev *d)
{
	struct virtio_net *n = d->priv;
	uint64_t f = d->driver_features;
	unsigned off = 0;

	if (f & (1ULL << VIRTIO_NET_F_GUEST_CSUM))
		off |= TUN_F_CSUM;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
		off |= TUN_F_TSO4;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
		off |= TUN_F_TSO6;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_ECN))
		off |= TUN_F_TSO_ECN;
	/* TSO without checksum offload is not a thing the tap accepts. */
	if (!(off & TUN_F_CSUM))
		off = 0;
	if (n->be->offloads && n->be->ops->set_offload(n->be, off))
		return CV_EFAIL;
	receive(n);
	return 0;
}

static void net_reset(struct virtio_dev *d)
{
	struct virtio_net *n = d->priv;

	n->frame_len = 0;
	n->tx_blocked = false;
	ratelimit_reset(&n->rx_limit);
	ratelimit_reset(&n->tx_limit);
	update_watch(n);
}

static void net_destroy(struct virtio_dev *d)
{
	struct virtio_net *n = d->priv;

	n->be->ops->close(n->be);
	if (n->ic)
		n->ic->ops->destroy(n->ic);
	ratelimit_destroy(&n->rx_limit);
	ratelimit_destroy(&n->tx_limit);
	free(n->frame);
	virtio_dev_destroy(d);
	free(n);
}

void virtio_net_announce(struct virtio_dev *d)
{
	struct virtio_net *n = d->priv;
	/* The virtio-net header (zeroes), then an Ethernet frame of 60 bytes:
	 * a broadcast RARP request from the guest's MAC, which switches and
	 * bridges learn the port from. */
	/* Type RARP; hardware Ethernet, protocol IPv4, their sizes; reverse request. */
	static const uint8_t rarp[] = { 0x80, 0x35, 0, 1, 0x08, 0, 6, 4, 0, 3 };
	uint8_t buf[NET_HDR_LEN + 60] = { 0 }, *f = buf + NET_HDR_LEN;
	struct iovec iov = { buf, sizeof(buf) };

	pthread_mutex_lock(&d->lock);
	memset(f, 0xff, 6);
	memcpy(f + 6, n->config.mac, 6);
	memcpy(f + 12, rarp, sizeof(rarp));
	memcpy(f + 22, n->config.mac, 6);
	memcpy(f + 32, n->config.mac, 6);
	if (n->be->ops->send(n->be, &iov, 1) < 0)
		cv_warn("virtio-net: the announcement of %02x:%02x:%02x:%02x:%02x:%02x did not go out", n->config.mac[0],
			n->config.mac[1], n->config.mac[2], n->config.mac[3], n->config.mac[4], n->config.mac[5]);
	pthread_mutex_unlock(&d->lock);
}

void virtio_net_set_intercept(struct virtio_dev *d, struct net_intercept *ic)
{
	struct virtio_net *n = d->priv;

	ic->wake = on_intercept_wake;
	ic->nic = n;
	pthread_mutex_lock(&d->lock);
	n->ic = ic;
	pthread_mutex_unlock(&d->lock);
}

static const struct virtio_ops net_ops = {
	.name = "net",
	.device_id = 1,
	.num_queues = 2,
	.queue_max = NET_QUEUE_SIZE,
	.notify = net_notify,
	.activate = net_activate,
	.reset = net_reset,
	.destroy = net_destroy,
};

struct virtio_dev *virtio_net_new(const struct guest_mem *mem, struct event_loop *loop, struct net_backend *be,
				  const uint8_t mac[6], const struct ratelimit_config *rx,
				  const struct ratelimit_config *tx)
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	uint64_t features = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
			    (1ULL << VIRTIO_NET_F_MRG_RXBUF);

	/* Offloads only where the back-end can carry them. */
	if (be->offloads)
		features |= (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_HOST_TSO4) |
			    (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN) |
			    (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
			    (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN);
	if (!n || !(n->frame = malloc(FRAME_MAX))) {
		free(n);
		be->ops->close(be);
		cv_err("out of memory");
		return NULL;
	}
	n->be = be;
	memcpy(n->config.mac, mac, 6);
	n->config.status = VIRTIO_NET_S_LINK_UP;
	if (ratelimit_init(&n->rx_limit, rx, loop, on_rx_resume, n) ||
	    ratelimit_init(&n->tx_limit, tx, loop, on_tx_resume, n) ||
	    virtio_dev_init(&n->dev, &net_ops, n, features, (uint8_t *)&n->config, sizeof(n->config), mem, loop)) {
		ratelimit_destroy(&n->rx_limit);
		ratelimit_destroy(&n->tx_limit);
		free(n->frame);
		free(n);
		be->ops->close(be);
		return NULL;
	}
	be->nic = n;
	be->ready = on_ready;
	return &n->dev;
}
