/*
 * Guest kernel stress / benchmark program (static, no libc beyond POSIX).
 *
 *   stress all  WORKERS CPU_ITERS FORKS MEM_MB   CPU, fork and memory work
 *   stress cpu  WORKERS ITERS                    CPU-bound hashing only
 *   stress fork WORKERS FORKS                    fork/exit/wait loops only
 *   stress mem  WORKERS MB                       page-fault heavy, MB in total
 *   stress bench ITERS                           time one CPU-bound run (ns):
 *                                                "STRESS-BENCH <wall> ns <result> cpu <cpu> ns"
 *
 * Every result line is deterministic for the same arguments, whatever the
 * machine or the number of CPUs (no timing, no pids), so a test can compare
 * the output of a run in the guest with a run of the same binary on the host.
 * Workers are processes (fork), so they are spread over all CPUs by the
 * scheduler.  The last line is "STRESS-DONE <combined checksum>" on success;
 * any check that fails prints "STRESS-FAIL ..." and exits 1.
 *
 * Build: gcc -O2 -static -o stress guest/tests/stress.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static void fail(const char *what, long a, long b)
{
	printf("STRESS-FAIL %s %ld %ld\n", what, a, b);
	fflush(stdout);
	exit(1);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* CPU work: a dependent chain of integer mixing plus a small table walk. */
static uint64_t cpu_work(uint64_t seed, long iters)
{
	uint64_t table[256], h = seed;
	long i;

	for (i = 0; i < 256; i++)
		table[i] = mix(seed + i);
	for (i = 0; i < iters; i++) {
		h = mix(h ^ table[h & 255]);
		table[(h >> 8) & 255] += h;
	}
	for (i = 0; i < 256; i++)
		h ^= mix(table[i] + i);
	return h;
}

/* Fork work: FORKS children, each exits with a status derived from its
 * index; the parent checks every status.  Returns a checksum of them. */
static uint64_t fork_work(uint64_t seed, long forks)
{
	uint64_t h = seed;
	long i;

	for (i = 0; i < forks; i++) {
		int expect = (int)(mix(seed + i) & 127), st;
		pid_t pid = fork();

		if (pid < 0)
			fail("fork", i, errno);
		if (pid == 0)
			_exit(expect);
		if (waitpid(pid, &st, 0) != pid)
			fail("waitpid", i, errno);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != expect)
			fail("fork-status", WEXITSTATUS(st), expect);
		h = mix(h ^ (uint64_t)WEXITSTATUS(st));
	}
	return h;
}

/* Memory work: map MB, touch every page (one fault each), fill it with a
 * pattern, then verify and checksum it in a second pass. */
static uint64_t mem_work(uint64_t seed, long mb)
{
	size_t len = (size_t)mb << 20, words = len / 8, i;
	uint64_t *p, h = seed;

	if (mb <= 0)
		return h;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap", mb, errno);
	for (i = 0; i < words; i += PAGE / 8)	/* fault in page by page */
		p[i] = mix(seed ^ i);
	for (i = 0; i < words; i++)
		if (i % (PAGE / 8))
			p[i] = p[i - 1] + i;
	for (i = 0; i < words; i++) {
		uint64_t want = (i % (PAGE / 8)) ? p[i - 1] + i : mix(seed ^ i);

		if (p[i] != want)
			fail("mem-verify", (long)i, (long)(p[i] & 0x7fffffff));
		h = mix(h ^ p[i]);
	}
	munmap(p, len);
	return h;
}

struct job {
	long cpu_iters, forks, mem_mb;
};

static uint64_t worker(int idx, const struct job *j)
{
	uint64_t seed = mix(0x1234567ULL + (uint64_t)idx), h = seed;

	if (j->cpu_iters)
		h ^= cpu_work(seed, j->cpu_iters);
	if (j->forks)
		h ^= mix(fork_work(seed + 1, j->forks));
	if (j->mem_mb)
		h ^= mix(mix(mem_work(seed + 2, j->mem_mb)));
	return h;
}

/* Run WORKERS processes in parallel; print each one's checksum in order. */
static int run(int workers, const struct job *j)
{
	int fds[256][2], i;
	pid_t pids[256];
	uint64_t all = 0;

	if (workers < 1 || workers > 256)
		fail("workers", workers, 256);
	for (i = 0; i < workers; i++) {
		if (pipe(fds[i]))
			fail("pipe", i, errno);
		pids[i] = fork();
		if (pids[i] < 0)
			fail("fork-worker", i, errno);
		if (pids[i] == 0) {
			uint64_t h = worker(i, j);

			if (write(fds[i][1], &h, sizeof(h)) != sizeof(h))
				_exit(2);
			_exit(0);
		}
		close(fds[i][1]);
	}
	for (i = 0; i < workers; i++) {
		uint64_t h;
		int st;

		if (read(fds[i][0], &h, sizeof(h)) != sizeof(h))
			fail("worker-result", i, errno);
		if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			fail("worker-exit", i, st);
		close(fds[i][0]);
		printf("STRESS-WORKER %d %016" PRIx64 "\n", i, h);
		all = mix(all ^ h);
	}
	printf("STRESS-DONE %016" PRIx64 "\n", all);
	fflush(stdout);
	return 0;
}

static long arg(int argc, char **argv, int i)
{
	char *end;
	long v;

	if (i >= argc)
		fail("missing-argument", i, argc);
	v = strtol(argv[i], &end, 0);
	if (*end || v < 0)
		fail("bad-argument", i, v);
	return v;
}

int main(int argc, char **argv)
{
	struct job j = { 0, 0, 0 };
	const char *mode = argc > 1 ? argv[1] : "";
	int workers;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "bench")) {
		struct timespec a, b, ca, cb;
		long iters = arg(argc, argv, 2);
		uint64_t h;

		clock_gettime(CLOCK_MONOTONIC, &a);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
		h = cpu_work(42, iters);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
		clock_gettime(CLOCK_MONOTONIC, &b);
		/* wall ns, result, CPU-time ns (excludes time preempted on a
		 * shared host; in a guest it includes the vCPU's steal time) */
		printf("STRESS-BENCH %ld ns %016" PRIx64 " cpu %ld ns\n",
		       (long)((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec)), h,
		       (long)((cb.tv_sec - ca.tv_sec) * 1000000000L + (cb.tv_nsec - ca.tv_nsec)));
		return 0;
	}
	workers = (int)arg(argc, argv, 2);
	if (!strcmp(mode, "all")) {
		j.cpu_iters = arg(argc, argv, 3);
		j.forks = arg(argc, argv, 4);
		/* MB in total, split over the workers */
		j.mem_mb = arg(argc, argv, 5) / workers;
	} else if (!strcmp(mode, "cpu")) {
		j.cpu_iters = arg(argc, argv, 3);
	} else if (!strcmp(mode, "fork")) {
		j.forks = arg(argc, argv, 3);
	} else if (!strcmp(mode, "mem")) {
		j.mem_mb = arg(argc, argv, 3) / workers;
	} else {
		fprintf(stderr, "usage: stress all|cpu|fork|mem WORKERS ... | stress bench ITERS\n");
		return 2;
	}
	return run(workers, &j);
}
