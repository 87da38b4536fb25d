/* Adaptive polling of a virtqueue, for the latency of one request at a
 * time: after a request completes the device watches the avail ring
 * itself for a while, the driver's kicks suppressed, rather than wait for
 * the next kick. Before it goes back to waiting it turns kicks on again
 * and looks once more, so a buffer added meanwhile is never left without
 * a kick. The caller holds the device lock and brings the clock. */
#ifndef CELLVM_VIRTIO_POLL_H
#define CELLVM_VIRTIO_POLL_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/queue.h"

#define VQ_POLL_MAX_US 1000000

struct vq_poll {
	struct virtq *q;
	uint64_t window_ns; /* 0: never polls */
	uint64_t deadline_ns;
};

enum vq_poll_step {
	VQ_POLL_WORK, /* buffers are available: drain the queue */
	VQ_POLL_WAIT, /* nothing yet: look again on the next round */
	VQ_POLL_STOP, /* polling is over, kicks are on and nothing is pending */
};

void vq_poll_init(struct vq_poll *p, struct virtq *q, uint32_t window_us);
/* A request completed at now_ns: (re)starts the window, kicks off. False
 * when this queue does not poll. The queue must be live. */
bool vq_poll_begin(struct vq_poll *p, uint64_t now_ns);
/* One look at the ring. WORK once the window is over means kicks are on
 * again (the drain that follows is an ordinary one). */
enum vq_poll_step vq_poll_step(struct vq_poll *p, uint64_t now_ns);
/* Whether the queue is being polled (not once it was reset or restored). */
bool vq_poll_active(const struct vq_poll *p);

#endif
