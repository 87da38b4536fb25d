/* virtio-net on a network back-end: mergeable receive buffers; checksum
 * and TSO offloads carried in the virtio-net header both ways when the
 * back-end supports them. */
#ifndef CELLVM_VIRTIO_NET_H
#define CELLVM_VIRTIO_NET_H

#include <stdint.h>

#include "virtio/device.h"

#include "net/backend.h"
#include "net/intercept.h"
#include "util/ratelimit.h"

/* Takes ownership of the back-end. rx and tx (NULL: unlimited) limit what
 * the guest receives and sends. */
struct virtio_dev *virtio_net_new(const struct guest_mem *mem, struct event_loop *loop, struct net_backend *be,
				  const uint8_t mac[6], const struct ratelimit_config *rx,
				  const struct ratelimit_config *tx);

/* Puts a service on the NIC (see net/intercept.h); the NIC owns it. */
void virtio_net_set_intercept(struct virtio_dev *d, struct net_intercept *ic);

/* Tells the network the guest's MAC is here now (a restored or migrated
 * VM on a new port): one broadcast RARP from it, as QEMU sends. */
void virtio_net_announce(struct virtio_dev *d);

/* New limits for the running NIC's receive and transmit directions
 * (ratelimit_update's `which`; 0 leaves a direction as it is): 0 or
 * CV_EFAIL. */
int virtio_net_set_limits(struct virtio_dev *d, const struct ratelimit_config *rx, unsigned rx_which,
			  const struct ratelimit_config *tx, unsigned tx_which);
/* How often each direction's limiter held frames back. */
void virtio_net_throttled(struct virtio_dev *d, uint64_t *rx, uint64_t *tx);

#endif
