/* A network back-end moves Ethernet frames between a virtual NIC and the
 * host side. Each frame is preceded by a virtio-net header (struct
 * virtio_net_hdr_v1, NET_HDR_LEN bytes), which carries offload metadata
 * for back-ends that can use it and is zero otherwise. */
#ifndef CELLVM_NET_BACKEND_H
#define CELLVM_NET_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NET_HDR_LEN 12

struct snap_writer;
struct snap_reader;

struct net_backend;

struct net_backend_ops {
	/* Sends one frame (header + frame). 0; -EAGAIN when the back-end is
	 * full (it calls ready(tx) later); other -errno drop the frame. */
	int (*send)(struct net_backend *b, const struct iovec *iov, unsigned n);
	/* Receives one frame (header + frame) into buf: its length, or 0 if
	 * none is waiting. */
	ssize_t (*recv)(struct net_backend *b, uint8_t *buf, size_t cap);
	/* Offloads the guest accepts on frames it receives (TUN_F_* bits). */
	int (*set_offload)(struct net_backend *b, unsigned flags);
	/* Which readiness the NIC wants to hear about through ready(). */
	void (*want)(struct net_backend *b, bool rx, bool tx);
	void (*close)(struct net_backend *b);
	/* State of the back-end's own that a snapshot keeps (NULL: none):
	 * save into w; load from r into a back-end just opened with the same
	 * configuration. 0, or CV_EINPUT with r marked bad. */
	int (*save)(struct net_backend *b, struct snap_writer *w);
	int (*load)(struct net_backend *b, struct snap_reader *r);
};

struct net_backend {
	const struct net_backend_ops *ops;
	/* Frames may carry partial checksums and GSO in both directions. */
	bool offloads;
	/* Set by the NIC; called from the event loop. */
	void (*ready)(void *nic, bool rx, bool tx);
	void *nic;
};

#endif
