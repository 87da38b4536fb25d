/* virtio-blk: a disk for the guest, served by a block back-end. */
#ifndef CELLVM_VIRTIO_BLK_H
#define CELLVM_VIRTIO_BLK_H

#include "block/block.h"
#include "util/ratelimit.h"
#include "virtio/device.h"

/* Takes ownership of `disk`; `id` (up to 20 bytes) answers GET_ID; `limit`
 * (NULL: none) caps operations and bytes per second. */
struct virtio_dev *virtio_blk_new(const struct guest_mem *mem, struct event_loop *loop, struct block *disk,
				  const char *id, const struct ratelimit_config *limit);

#endif
