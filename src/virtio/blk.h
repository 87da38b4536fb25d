/* virtio-blk: a disk for the guest, served by a block back-end. */
#ifndef CELLVM_VIRTIO_BLK_H
#define CELLVM_VIRTIO_BLK_H

#include "block/block.h"
#include "util/ratelimit.h"
#include "virtio/device.h"

#define VIRTIO_BLK_MAX_QUEUES 16

/* How the guest's requests reach the device: n request queues
 * (1..VIRTIO_BLK_MAX_QUEUES; more than one offers VIRTIO_BLK_F_MQ), each
 * polled for poll_us (0..VQ_POLL_MAX_US, 0: never) after a completion. */
struct virtio_blk_queues {
	unsigned n;
	uint32_t poll_us;
};

/* Takes ownership of `disk` (on success); `id` (up to 20 bytes) answers
 * GET_ID; `limit` (NULL: none) caps operations and bytes per second;
 * `flush` offers the guest VIRTIO_BLK_F_FLUSH (a write-back cache it must
 * flush); `queues` NULL: one queue, never polled. */
struct virtio_dev *virtio_blk_new(const struct guest_mem *mem, struct event_loop *loop, struct block *disk,
				  const char *id, const struct ratelimit_config *limit, bool flush,
				  const struct virtio_blk_queues *queues);

/* Switching the disk under a running device (the VM's disk freeze, a new
 * path_on_host): detach returns the disk, which must be idle (no request
 * in flight); until attach, the guest's requests wait in the ring. attach
 * takes a disk of the same read-only-ness and tells the guest when its
 * size changed. */
struct block *virtio_blk_detach(struct virtio_dev *dev);
/* The disk the device serves now. */
struct block *virtio_blk_disk(struct virtio_dev *dev);
void virtio_blk_attach(struct virtio_dev *dev, struct block *disk);
/* New limits for the running device (ratelimit_update's `which`): 0 or
 * CV_EFAIL. */
int virtio_blk_set_limit(struct virtio_dev *dev, const struct ratelimit_config *c, unsigned which);
/* How often the limiter held requests back. */
uint64_t virtio_blk_throttled(struct virtio_dev *dev);

#endif
