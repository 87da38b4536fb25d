/* virtio-rng (entropy device): the guest's /dev/hwrng, fed by getrandom(). */
#ifndef CELLVM_VIRTIO_RNG_H
#define CELLVM_VIRTIO_RNG_H

#include "util/ratelimit.h"
#include "virtio/device.h"

/* `limit` (NULL: none) caps the bytes and requests per second the guest
 * gets (Firecracker's entropy rate_limiter). */
struct virtio_dev *virtio_rng_new(const struct guest_mem *mem, struct event_loop *loop,
				  const struct ratelimit_config *limit);
/* How often the limiter held requests back. */
uint64_t virtio_rng_throttled(struct virtio_dev *d);

#endif
