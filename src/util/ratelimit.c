#include "util/ratelimit.h"

#include <time.h>

#include "util/err.h"

#define NS_PER_S 1000000000ULL

void tbucket_init(struct tbucket *b, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
	if (burst > INT64_MAX / 2)
		burst = INT64_MAX / 2; /* room for a debt of the same size */
	*b = (struct tbucket){ .rate = rate, .burst = (int64_t)burst, .tokens = (int64_t)burst, .last_ns = now_ns };
}

void tbucket_refill(struct tbucket *b, uint64_t now_ns)
{
	unsigned __int128 need, earned;
	uint64_t elapsed;

	if (!b->rate || now_ns <= b->last_ns)
		return;
	if (b->tokens >= b->burst) {
		b->last_ns = now_ns;
		return;
	}
	elapsed = now_ns - b->last_ns;
	need = (unsigned __int128)(b->burst - b->tokens);
	earned = (unsigned __int128)elapsed * b->rate / NS_PER_S;
	if (earned >= need) {
		b->tokens = b->burst;
		b->last_ns = now_ns;
		return;
	}
	b->tokens += (int64_t)earned;
	/* Advance only by the time those whole tokens took, so the fraction
	 * of a token earned so far is not lost at high refill frequencies. */
	b->last_ns += (uint64_t)(earned * NS_PER_S / b->rate);
}

bool tbucket_ready(const struct tbucket *b)
{
	return !b->rate || b->tokens > 0 || b->once;
}

void tbucket_take(struct tbucket *b, uint64_t cost)
{
	int64_t floor = -b->burst - (int64_t)(INT64_MAX / 4);

	if (!b->rate)
		return;
	/* The one-time burst pays first, as in Firecracker. */
	if (b->once >= cost) {
		b->once -= cost;
		return;
	}
	cost -= b->once;
	b->once = 0;
	/* Clamp absurd costs so the arithmetic cannot overflow; a cost that
	 * large is a wait of years either way. */
	if (cost > (uint64_t)(INT64_MAX / 4))
		cost = (uint64_t)(INT64_MAX / 4);
	b->tokens -= (int64_t)cost;
	if (b->tokens < floor)
		b->tokens = floor;
}

uint64_t tbucket_wait_ns(const struct tbucket *b, uint64_t now_ns)
{
	unsigned __int128 missing, at;

	if (tbucket_ready(b))
		return 0;
	/* Ready means at least one token: 1 - tokens to earn, counted from
	 * last_ns, which lags now by the fraction of a token already earned. */
	missing = (unsigned __int128)(1 - b->tokens);
	at = b->last_ns + (missing * NS_PER_S + b->rate - 1) / b->rate;
	if (at <= now_ns)
		return 1; /* rounding: the next refill makes it ready */
	return at - now_ns > UINT64_MAX ? UINT64_MAX : (uint64_t)(at - now_ns);
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * NS_PER_S + (uint64_t)t.tv_nsec;
}

bool ratelimit_config_enabled(const struct ratelimit_config *c)
{
	return c && (c->bps || c->ops);
}

static uint64_t default_burst(uint64_t rate, uint64_t burst, uint64_t floor)
{
	if (burst)
		return burst;
	burst = rate / 10;
	return burst < floor ? floor : burst;
}

static void on_timer(void *opaque)
{
	struct ratelimit *r = opaque;

	r->waiting = false;
	r->resume(r->opaque);
}

/* Sets the buckets `which` names from c, full; the timer is made the first
 * time a bucket has a rate. */
static int set_buckets(struct ratelimit *r, const struct ratelimit_config *c, unsigned which)
{
	static const struct ratelimit_config none;
	uint64_t now = now_ns();

	if (!c)
		c = &none;
	if (which & RATELIMIT_BYTES) {
		tbucket_init(&r->bytes, c->bps, default_burst(c->bps, c->bps_burst, RATELIMIT_MIN_BYTE_BURST), now);
		r->bytes.once = c->bps ? c->bps_once : 0;
	}
	if (which & RATELIMIT_OPS) {
		tbucket_init(&r->ops, c->ops, default_burst(c->ops, c->ops_burst, 1), now);
		r->ops.once = c->ops ? c->ops_once : 0;
	}
	r->enabled = r->bytes.rate || r->ops.rate;
	if (!r->enabled || r->timer_ok)
		return 0;
	if (event_timer_init(&r->timer, r->loop, on_timer, r))
		return CV_EFAIL;
	r->timer_ok = true;
	return 0;
}

int ratelimit_init(struct ratelimit *r, const struct ratelimit_config *c, struct event_loop *loop,
		   void (*resume)(void *opaque), void *opaque)
{
	*r = (struct ratelimit){ .resume = resume, .opaque = opaque, .loop = loop };
	r->timer.fd = -1;
	return set_buckets(r, c, RATELIMIT_BYTES | RATELIMIT_OPS);
}

void ratelimit_destroy(struct ratelimit *r)
{
	if (r->timer_ok)
		event_timer_destroy(&r->timer);
	r->enabled = r->waiting = r->timer_ok = false;
}

bool ratelimit_update(struct ratelimit *r, const struct ratelimit_config *c, unsigned which, int *rc)
{
	bool was = r->waiting;

	ratelimit_reset(r);
	*rc = set_buckets(r, c, which);
	return was;
}

bool ratelimit_admit(struct ratelimit *r)
{
	uint64_t now, wb, wo;

	if (!r->enabled)
		return true;
	if (r->waiting)
		return false;
	now = now_ns();
	tbucket_refill(&r->bytes, now);
	tbucket_refill(&r->ops, now);
	if (tbucket_ready(&r->bytes) && tbucket_ready(&r->ops))
		return true;
	r->throttled++;
	wb = tbucket_wait_ns(&r->bytes, now);
	wo = tbucket_wait_ns(&r->ops, now);
	r->waiting = true;
	event_timer_arm(&r->timer, wb > wo ? wb : wo);
	return false;
}

void ratelimit_charge(struct ratelimit *r, uint64_t bytes)
{
	if (!r->enabled)
		return;
	tbucket_take(&r->bytes, bytes);
	tbucket_take(&r->ops, 1);
}

void ratelimit_reset(struct ratelimit *r)
{
	if (r->waiting)
		event_timer_cancel(&r->timer);
	r->waiting = false;
}
