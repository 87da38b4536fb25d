/* virtio-rng (entropy device): the guest's /dev/hwrng, fed by getrandom(). */
#ifndef CELLVM_VIRTIO_RNG_H
#define CELLVM_VIRTIO_RNG_H

#include "virtio/device.h"

struct virtio_dev *virtio_rng_new(const struct guest_mem *mem, struct event_loop *loop);

#endif
