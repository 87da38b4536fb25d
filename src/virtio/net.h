/* virtio-net over a tap device: mergeable receive buffers, checksum and
 * TSO offloads carried in the virtio-net header both ways. */
#ifndef CELLVM_VIRTIO_NET_H
#define CELLVM_VIRTIO_NET_H

#include <stdint.h>

#include "virtio/device.h"

/* Takes ownership of tap_fd. */
struct virtio_dev *virtio_net_new(const struct guest_mem *mem, struct event_loop *loop, int tap_fd,
				  const uint8_t mac[6]);

#endif
