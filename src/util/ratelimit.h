/* Rate limits for device queues: token buckets for bytes and operations
 * per second, each with a burst. NIC directions and disks use the same
 * limiter; a device asks before taking a request from its queue and, when
 * a bucket is empty, leaves the request where it is and resumes from a
 * timer on the event loop (no polling, nothing dropped). */
#ifndef CELLVM_UTIL_RATELIMIT_H
#define CELLVM_UTIL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/event_loop.h"

/* One bucket. rate 0 means unlimited. tokens may go negative: a request
 * is admitted while the bucket is not empty (tokens > 0) and then pays its
 * whole cost, so requests larger than the burst still pass, and the debt
 * delays the next one. Over any interval T the bucket admits at most
 * burst + rate * T plus one request. */
struct tbucket {
	uint64_t rate;  /* tokens per second */
	int64_t burst;  /* capacity */
	int64_t tokens;
	uint64_t last_ns; /* time up to which refills are accounted */
	/* Firecracker's one_time_burst: credit spent before the tokens and
	 * never refilled. */
	uint64_t once;
};

void tbucket_init(struct tbucket *b, uint64_t rate, uint64_t burst, uint64_t now_ns);
/* Adds the tokens earned since the last refill (up to the burst). */
void tbucket_refill(struct tbucket *b, uint64_t now_ns);
/* After a refill: may a request go now? */
bool tbucket_ready(const struct tbucket *b);
void tbucket_take(struct tbucket *b, uint64_t cost);
/* After a refill at now_ns: nanoseconds until tbucket_ready() turns true
 * (0 if it is). */
uint64_t tbucket_wait_ns(const struct tbucket *b, uint64_t now_ns);

/* What a user asks for; 0 rates are unlimited, 0 bursts take the default
 * (a tenth of a second's worth, at least RATELIMIT_MIN_BYTE_BURST bytes or
 * one operation). The *_once credits are spent first and not refilled. */
struct ratelimit_config {
	uint64_t bps, bps_burst;
	uint64_t ops, ops_burst;
	uint64_t bps_once, ops_once;
};

/* Which buckets ratelimit_update replaces. */
#define RATELIMIT_BYTES 1u
#define RATELIMIT_OPS 2u

#define RATELIMIT_MIN_BYTE_BURST (64ULL << 10)

bool ratelimit_config_enabled(const struct ratelimit_config *c);

/* A limiter for one queue: both buckets, and the timer that resumes the
 * device once they allow it. */
struct ratelimit {
	struct tbucket bytes, ops;
	bool enabled;
	bool waiting; /* the timer is armed: the device holds back */
	bool timer_ok;
	uint64_t throttled; /* times a request was held back (metrics) */
	struct event_loop *loop;
	struct event_timer timer;
	void (*resume)(void *opaque);
	void *opaque;
};

/* resume(opaque) is called from the event loop when a refused device may
 * try again. A disabled config makes a limiter that always admits and
 * needs no timer. */
int ratelimit_init(struct ratelimit *r, const struct ratelimit_config *c, struct event_loop *loop,
		   void (*resume)(void *opaque), void *opaque);
void ratelimit_destroy(struct ratelimit *r);
/* May the device take one more request? If not, the timer is armed and
 * resume() follows; until then the device should not ask its back-end or
 * queue for more. */
bool ratelimit_admit(struct ratelimit *r);
/* Charges one operation of `bytes` that was admitted. */
void ratelimit_charge(struct ratelimit *r, uint64_t bytes);
/* Drops a pending resume (device reset). */
void ratelimit_reset(struct ratelimit *r);
/* A running device's new limits (Firecracker's PATCH): the buckets named
 * in `which` start over from c, full; the others keep their state. *rc is
 * 0, or CV_EFAIL (reported) when no timer could be made. Returns whether
 * the device was held back: it should then try its queue again itself. */
bool ratelimit_update(struct ratelimit *r, const struct ratelimit_config *c, unsigned which, int *rc);

#endif
