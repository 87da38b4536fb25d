/*
 * dirty: a guest workload that writes memory at a set rate, for
 * bench/migrate.py.
 *
 *   dirty MIB RATE_MIB_PER_S
 *
 * Maps MIB MiB (populated up front: a first touch of each page would be
 * a page fault, slow in a PVM guest), prints "DIRTY-READY" and, forever,
 * writes one word in each of its 4 KiB
 * pages in turn, RATE MiB of pages a second by its clock, in 1 ms slices
 * (so the guest's other programs still run): every page of the buffer is
 * rewritten each MIB/RATE seconds. RATE 0: as fast as it can.
 *
 * Build: gcc -static -O2 -o dirty dirty.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: dirty MIB RATE_MIB_PER_S\n");
		return 2;
	}
	size_t pages = (size_t)atol(argv[1]) * (1 << 20) / PAGE;
	double rate = atof(argv[2]) * (1 << 20) / PAGE / 1000; /* pages per ms */
	volatile uint8_t *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	const struct timespec ms = { 0, 1000000 };
	struct timespec t0, t;
	uint64_t gen = 0;
	double owed = 0;

	if (buf == MAP_FAILED || !pages) {
		fprintf(stderr, "dirty: cannot allocate %s MiB\n", argv[1]);
		return 1;
	}
	printf("DIRTY-READY\n");
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0;;) {
		/* The pages due since the last slice, by the clock (at most one
		 * pass: no burst after the guest stood still). */
		clock_gettime(CLOCK_MONOTONIC, &t);
		owed += rate > 0 ? ((t.tv_sec - t0.tv_sec) * 1e3 + (t.tv_nsec - t0.tv_nsec) / 1e6) * rate : (double)pages;
		t0 = t;
		if (owed > pages)
			owed = pages;
		for (; owed >= 1; owed--) {
			*(volatile uint64_t *)(buf + i * PAGE) = ++gen;
			if (++i == pages)
				i = 0;
		}
		if (rate > 0)
			nanosleep(&ms, NULL);
	}
}
