#include "virtio/rng.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "util/err.h"

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_SEGS 16
/* Bounds the work one request can make us do. */
#define RNG_MAX_BYTES (64 * 1024)

struct virtio_rng {
	struct virtio_dev dev;
	struct ratelimit limit;
};

static uint32_t fill(struct virtq_req *r)
{
	uint64_t done = 0;

	for (unsigned i = 0; i < r->nin && done < RNG_MAX_BYTES; i++) {
		size_t want = r->in[i].iov_len, got = 0;

		if (want > RNG_MAX_BYTES - done)
			want = RNG_MAX_BYTES - done;
		while (got < want) {
			ssize_t n = getrandom((uint8_t *)r->in[i].iov_base + got, want - got, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return (uint32_t)(done + got);
			got += (size_t)n;
		}
		done += got;
	}
	return (uint32_t)done;
}

static void rng_notify(struct virtio_dev *d, unsigned qi)
{
	struct virtio_rng *rng = d->priv;
	struct iovec out[RNG_MAX_SEGS], in[RNG_MAX_SEGS];
	struct virtq_req r;

	/* Over the limit, requests wait in the ring for the timer. */
	while (ratelimit_admit(&rng->limit) && virtio_pop(d, qi, &r, out, in, RNG_MAX_SEGS)) {
		uint32_t n = fill(&r);

		virtq_push(&d->vq[qi], r.head, n);
		ratelimit_charge(&rng->limit, n);
	}
	virtio_signal_used(d, qi);
}

static void on_limit_resume(void *opaque)
{
	struct virtio_rng *rng = opaque;

	pthread_mutex_lock(&rng->dev.lock);
	virtio_kick(&rng->dev, 0);
	pthread_mutex_unlock(&rng->dev.lock);
}

static void rng_reset(struct virtio_dev *d)
{
	ratelimit_reset(&((struct virtio_rng *)d->priv)->limit);
}

static void rng_destroy(struct virtio_dev *d)
{
	struct virtio_rng *rng = d->priv;

	ratelimit_destroy(&rng->limit);
	virtio_dev_destroy(d);
	free(rng);
}

uint64_t virtio_rng_throttled(struct virtio_dev *d)
{
	return ((struct virtio_rng *)d->priv)->limit.throttled;
}

static const struct virtio_ops rng_ops = {
	.name = "rng",
	.device_id = 4,
	.num_queues = 1,
	.queue_max = RNG_QUEUE_SIZE,
	.notify = rng_notify,
	.reset = rng_reset,
	.destroy = rng_destroy,
};

struct virtio_dev *virtio_rng_new(const struct guest_mem *mem, struct event_loop *loop,
				  const struct ratelimit_config *limit)
{
	struct virtio_rng *r = calloc(1, sizeof(*r));

	if (!r) {
		cv_err("out of memory");
		return NULL;
	}
	if (ratelimit_init(&r->limit, limit, loop, on_limit_resume, r) ||
	    virtio_dev_init(&r->dev, &rng_ops, r, 0, NULL, 0, mem, loop)) {
		ratelimit_destroy(&r->limit);
		free(r);
		return NULL;
	}
	return &r->dev;
}
