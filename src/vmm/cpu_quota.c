#include "vmm/cpu_quota.h"

#include <time.h>

void cpu_quota_init(struct cpu_quota *q, unsigned pct)
{
	q->pct = pct;
	q->period = 0;
	q->used_ns = 0;
	pthread_mutex_init(&q->lock, NULL);
}

void cpu_quota_destroy(struct cpu_quota *q)
{
	pthread_mutex_destroy(&q->lock);
}

static int64_t thread_cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int64_t cpu_quota_charge(struct cpu_quota *q, int64_t *last_ns, int64_t now_ns)
{
	int64_t cpu = thread_cpu_ns(), budget = CPU_QUOTA_PERIOD_NS * q->pct / 100;
	int64_t period = now_ns / CPU_QUOTA_PERIOD_NS, wait = 0;

	pthread_mutex_lock(&q->lock);
	if (period > q->period) {
		/* Each period that passed pays back one budget of the debt. */
		int64_t passed = period - q->period;

		q->used_ns = passed > q->used_ns / (budget ? budget : 1) ? 0 : q->used_ns - passed * budget;
		q->period = period;
	}
	q->used_ns += cpu - *last_ns;
	if (q->used_ns >= budget)
		wait = (period + 1) * CPU_QUOTA_PERIOD_NS - now_ns;
	pthread_mutex_unlock(&q->lock);
	*last_ns = cpu;
	return wait;
}
