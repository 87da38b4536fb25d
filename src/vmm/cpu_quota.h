/* A VM's CPU quota (--cpus N,quota=P%): in every period its vCPU threads
 * together may run P% of one host CPU's time; a vCPU that finds the budget
 * spent sleeps until the next period. Time overrun in one period (a vCPU
 * notices only when KVM_RUN returns) is owed to the next, so the average
 * holds. */
#ifndef CELLVM_VMM_CPU_QUOTA_H
#define CELLVM_VMM_CPU_QUOTA_H

#include <pthread.h>
#include <stdint.h>

#define CPU_QUOTA_PERIOD_NS 100000000LL /* 100 ms, like CFS bandwidth's default */
#define CPU_QUOTA_TICK_NS 5000000LL	/* how often vCPUs are kicked out to be charged */

struct cpu_quota {
	unsigned pct; /* 0: no quota */
	pthread_mutex_t lock;
	int64_t period;	 /* the current period's number */
	int64_t used_ns; /* CPU time charged in it (with what earlier ones owe) */
};

void cpu_quota_init(struct cpu_quota *q, unsigned pct);
void cpu_quota_destroy(struct cpu_quota *q);
/* Charges a vCPU thread's CPU time since *last_ns (its own
 * CLOCK_THREAD_CPUTIME_ID, updated here) at monotonic time now_ns. Returns
 * how long the thread must sleep: 0 while the period's budget lasts. */
int64_t cpu_quota_charge(struct cpu_quota *q, int64_t *last_ns, int64_t now_ns);

#endif
