#include "virtio/poll.h"

void vq_poll_init(struct vq_poll *p, struct virtq *q, uint32_t window_us)
{
	*p = (struct vq_poll){ .q = q, .window_ns = (uint64_t)window_us * 1000 };
}

bool vq_poll_begin(struct vq_poll *p, uint64_t now_ns)
{
	if (!p->window_ns)
		return false;
	p->deadline_ns = now_ns + p->window_ns;
	if (!p->q->polling) {
		p->q->polling = true;
		virtq_disable_notify(p->q);
	}
	return true;
}

enum vq_poll_step vq_poll_step(struct vq_poll *p, uint64_t now_ns)
{
	struct virtq *q = p->q;

	/* A reset or a restore zeroed the queue's state: nothing to undo. */
	if (!q->polling)
		return VQ_POLL_STOP;
	if (now_ns < p->deadline_ns) {
		if (!virtq_has_avail(q))
			return VQ_POLL_WAIT;
		/* Keeps avail_event behind the driver as the device moves on. */
		virtq_disable_notify(q);
		return VQ_POLL_WORK;
	}
	/* Kicks on first, then the last look: a buffer added in between is
	 * seen here, one added after it kicks. */
	q->polling = false;
	return virtq_enable_notify(q) ? VQ_POLL_WORK : VQ_POLL_STOP;
}

bool vq_poll_active(const struct vq_poll *p)
{
	return p->q->polling;
}
