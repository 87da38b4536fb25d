/*
 * ticker: the guest's view of a migration's downtime, for bench/migrate.py.
 *
 *   ticker [-t SECONDS] [-d DOT_MS]
 *
 * Loops on clock_gettime(CLOCK_MONOTONIC) and a 1 ms nanosleep and keeps
 * the largest gap between two readings: time the guest did not run (or
 * that its clock jumped over). On SIGUSR1, and once after -t seconds (then
 * it exits; 0: run until killed), it prints one line and starts afresh:
 *
 *   TICKER max_gap_ms=<largest gap> at_s=<when, s since the last report>
 *          ticks=<N> over5=<gaps over 5 ms> over20=<over 20 ms> secs=<S>
 *
 * With -d, it also writes one '.' to stdout every DOT_MS ms (by its clock),
 * so that the host can time the console from the outside.
 *
 * Build: gcc -static -O2 -o ticker ticker.c
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t report;

static void on_usr1(int sig)
{
	(void)sig;
	report = 1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	double secs = 0, dot_ms = 0;
	struct sigaction sa;
	int opt;

	while ((opt = getopt(argc, argv, "t:d:")) != -1) {
		if (opt == 't')
			secs = atof(optarg);
		else if (opt == 'd')
			dot_ms = atof(optarg);
		else {
			fprintf(stderr, "usage: ticker [-t SECONDS] [-d DOT_MS]\n");
			return 2;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	setvbuf(stdout, NULL, _IONBF, 0);

	double start = now_ms(), since = start, prev = start, next_dot = start + dot_ms;
	double max_gap = 0, max_at = 0;
	unsigned long ticks = 0, over5 = 0, over20 = 0;
	const struct timespec ms = { 0, 1000000 };

	for (;;) {
		nanosleep(&ms, NULL);
		double t = now_ms(), gap = t - prev;

		prev = t;
		ticks++;
		if (gap > max_gap) {
			max_gap = gap;
			max_at = t - since;
		}
		over5 += gap > 5;
		over20 += gap > 20;
		if (dot_ms > 0 && t >= next_dot) {
			if (write(1, ".", 1) < 0)
				dot_ms = 0;
			next_dot = t + dot_ms;
		}
		int done = secs > 0 && t - start >= secs * 1e3;
		if (report || done) {
			printf("\nTICKER max_gap_ms=%.2f at_s=%.3f ticks=%lu over5=%lu over20=%lu secs=%.3f\n", max_gap,
			       max_at / 1e3, ticks, over5, over20, (t - since) / 1e3);
			report = 0;
			since = t;
			max_gap = max_at = 0;
			ticks = over5 = over20 = 0;
			if (done)
				return 0;
		}
	}
}
