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
	struct iovec out[RNG_MAX_SEGS], in[RNG_MAX_SEGS];
	struct virtq_req r;

	while (virtio_pop(d, qi, &r, out, in, RNG_MAX_SEGS))
		virtq_push(&d->vq[qi], r.head, fill(&r));
	virtio_signal_used(d, qi);
}

static void rng_destroy(struct virtio_dev *d)
{
	virtio_dev_destroy(d);
	free(d->priv);
}

static const struct virtio_ops rng_ops = {
	.name = "rng",
	.device_id = 4,
	.num_queues = 1,
	.queue_max = RNG_QUEUE_SIZE,
	.notify = rng_notify,
	.destroy = rng_destroy,
};

struct virtio_dev *virtio_rng_new(const struct guest_mem *mem, struct event_loop *loop)
{
	struct virtio_rng *r = calloc(1, sizeof(*r));

	if (!r || virtio_dev_init(&r->dev, &rng_ops, r, 0, NULL, 0, mem, loop)) {
		free(r);
		cv_err("out of memory");
		return NULL;
	}
	return &r->dev;
}
