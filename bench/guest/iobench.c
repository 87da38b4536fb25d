/*
 * iobench: a small, static I/O and TCP benchmark for bench/io.py.
 *
 * The same binary runs inside the guest (from the initramfs) and natively on
 * the host, so both sides measure the same way. Every mode does a fixed amount
 * of work (-n) and stops early at a time limit (-t), then prints one line:
 *
 *   IOBENCH mode=<m> bytes=<B> ops=<N> secs=<S> MBps=<x> iops=<y> [lat_...]
 *
 * Disk modes (O_DIRECT unless -B; Linux native AIO, so -q sets the queue
 * depth with a single thread):
 *   iobench seqread  PATH [-b 1M] [-n 1G] [-t 15] [-q 1] [-B]
 *   iobench seqwrite PATH [-b 1M] [-n 512M] [-t 15] [-q 1] [-B]   (ends with fdatasync, timed)
 *   iobench randread PATH [-b 4K] [-n 20000 ops] [-t 10] [-q 1] [-B]
 * TCP modes (one connection; the receiver acknowledges EOF with one byte so
 * the sender's time covers delivery):
 *   iobench tcp-recv PORT [-t 60]             accept one connection, read to EOF
 *   iobench tcp-send HOST PORT [-n 1G] [-t 10] [-b 256K]
 *   iobench tcp-echo PORT [-t 60]             accept one connection, echo to EOF
 *   iobench tcp-rr HOST PORT [-n 10000] [-t 10]   1-byte request/response
 * Connecting retries for up to 20 s (the peer may still be starting).
 * Calibration:
 *   iobench nullsys [-n 200000] [-t 5]        getppid() in a loop: the cost of one system call
 *
 * Build: gcc -static -O2 -o iobench iobench.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_QD 256

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "iobench: %s: %s\n", what, strerror(errno));
	printf("IOBENCH error=\"%s: %s\"\n", what, strerror(errno));
	exit(1);
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': v <<= 10; break;
	case 'm': case 'M': v <<= 20; break;
	case 'g': case 'G': v <<= 30; break;
	default: break;
	}
	return v;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

struct opts {
	uint64_t bs, amount;
	double limit;
	unsigned qd;
	int buffered;
};

static void report(const char *mode, const struct opts *o, uint64_t bytes, uint64_t ops, double secs,
		   const char *extra)
{
	printf("IOBENCH mode=%s bs=%llu qd=%u direct=%d bytes=%llu ops=%llu secs=%.3f MBps=%.1f iops=%.0f%s%s\n",
	       mode, (unsigned long long)o->bs, o->qd, !o->buffered, (unsigned long long)bytes,
	       (unsigned long long)ops, secs, secs > 0 ? (double)bytes / secs / 1e6 : 0.0,
	       secs > 0 ? (double)ops / secs : 0.0, extra ? " " : "", extra ? extra : "");
	fflush(stdout);
}

/* ---- disk ---- */

static long io_setup_(unsigned n, aio_context_t *ctx) { return syscall(SYS_io_setup, n, ctx); }
static long io_submit_(aio_context_t ctx, long n, struct iocb **v) { return syscall(SYS_io_submit, ctx, n, v); }
static long io_getevents_(aio_context_t ctx, long min, long max, struct io_event *ev)
{
	return syscall(SYS_io_getevents, ctx, min, max, ev, NULL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void disk(const char *mode, const char *path, struct opts *o)
{
	int write = !strcmp(mode, "seqwrite"), rnd = !strcmp(mode, "randread");
	int fd = open(path, (write ? O_RDWR : O_RDONLY) | (o->buffered ? 0 : O_DIRECT));
	uint64_t size, nblocks, next = 0, done_ops = 0, done_bytes = 0, submitted = 0, max_ops;
	struct iocb cbs[MAX_QD], *cbp[MAX_QD];
	struct io_event ev[MAX_QD];
	double t0, tend, *lat = NULL, *start_t;
	aio_context_t ctx = 0;
	unsigned inflight = 0;
	char *buf;
	struct stat st;
	int stop = 0;

	if (fd < 0)
		die(path);
	if (fstat(fd, &st))
		die("fstat");
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size))
			die("BLKGETSIZE64");
	} else {
		size = (uint64_t)st.st_size;
	}
	if (o->qd < 1 || o->qd > MAX_QD || !o->bs || o->bs % 512 || size < o->bs) {
		errno = EINVAL;
		die("bad -q/-b or device too small");
	}
	nblocks = size / o->bs;
	/* Sequential amounts are bytes (capped to the device), random ones ops. */
	max_ops = rnd ? o->amount : (o->amount / o->bs < nblocks ? o->amount / o->bs : nblocks);
	if (posix_memalign((void **)&buf, 4096, o->bs * o->qd))
		die("posix_memalign");
	for (uint64_t i = 0; i < o->bs * o->qd / 8; i++)
		((uint64_t *)buf)[i] = rng();
	if (rnd)
		lat = calloc(max_ops ? max_ops : 1, sizeof(double));
	start_t = calloc(o->qd, sizeof(double));
	if ((rnd && !lat) || !start_t)
		die("calloc");
	memset(cbs, 0, sizeof(cbs));
	if (io_setup_(o->qd, &ctx))
		die("io_setup");

	t0 = now();
	for (;;) {
		/* Fill every free slot, then submit them with one system call. */
		long batch = 0;
		double ts = now();

		for (unsigned slot = 0; !stop && slot < o->qd && inflight + batch < o->qd && submitted < max_ops;
		     slot++) {
			if (cbs[slot].aio_data)
				continue; /* busy: aio_data is the slot index + 1 */
			memset(&cbs[slot], 0, sizeof(cbs[slot]));
			cbs[slot].aio_fildes = (uint32_t)fd;
			cbs[slot].aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
			cbs[slot].aio_buf = (uint64_t)(uintptr_t)(buf + slot * o->bs);
			cbs[slot].aio_nbytes = o->bs;
			cbs[slot].aio_offset = (int64_t)((rnd ? rng() % nblocks : next++ % nblocks) * o->bs);
			cbs[slot].aio_data = slot + 1;
			cbp[batch++] = &cbs[slot];
			start_t[slot] = ts;
			submitted++;
		}
		if (batch) {
			if (io_submit_(ctx, batch, cbp) != batch)
				die("io_submit");
			inflight += (unsigned)batch;
		}
		if (!inflight)
			break;
		long n = io_getevents_(ctx, 1, MAX_QD, ev);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("io_getevents");
		}
		double t = now();

		for (long i = 0; i < n; i++) {
			struct iocb *cb = (struct iocb *)(uintptr_t)ev[i].obj;
			unsigned slot = (unsigned)(cb->aio_data - 1);

			if (ev[i].res != (int64_t)o->bs) {
				errno = ev[i].res < 0 ? (int)-ev[i].res : EIO;
				die("short or failed I/O");
			}
			if (lat && done_ops < max_ops)
				lat[done_ops] = t - start_t[slot];
			cb->aio_data = 0;
			inflight--;
			done_ops++;
			done_bytes += o->bs;
		}
		if (t - t0 > o->limit)
			stop = 1;
	}
	if (write && fdatasync(fd))
		die("fdatasync");
	tend = now();

	char extra[160] = "";
	if (lat && done_ops) {
		double sum = 0;

		for (uint64_t i = 0; i < done_ops; i++)
			sum += lat[i];
		qsort(lat, done_ops, sizeof(double), cmp_double);
		snprintf(extra, sizeof(extra), "lat_avg_us=%.1f lat_p50_us=%.1f lat_p99_us=%.1f",
			 sum / (double)done_ops * 1e6, lat[done_ops / 2] * 1e6, lat[done_ops * 99 / 100] * 1e6);
	}
	report(mode, o, done_bytes, done_ops, tend - t0, extra[0] ? extra : NULL);
	close(fd);
}

/* ---- TCP ---- */

static int listen_one(int port, double limit)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0), c;
	struct timeval tv = { .tv_sec = (time_t)limit };

	if (s < 0)
		die("socket");
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 1))
		die("bind/listen");
	printf("IOBENCH listening=%d\n", port);
	fflush(stdout);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* bounds accept() */
	c = accept(s, NULL, NULL);
	if (c < 0)
		die("accept");
	close(s);
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return c;
}

static int connect_retry(const char *host, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	double deadline = now() + 20;
	int one = 1;

	if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		errno = EINVAL;
		die(host);
	}
	for (;;) {
		int s = socket(AF_INET, SOCK_STREAM, 0);

		if (s < 0)
			die("socket");
		if (!connect(s, (struct sockaddr *)&a, sizeof(a))) {
			setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			return s;
		}
		close(s);
		if (now() > deadline)
			die("connect");
		usleep(100000);
	}
}

static void tcp_recv(int port, struct opts *o)
{
	int c = listen_one(port, o->limit);
	char *buf = malloc(1 << 20);
	uint64_t bytes = 0, ops = 0;
	double t0 = 0;
	ssize_t n;

	if (!buf)
		die("malloc");
	while ((n = read(c, buf, 1 << 20)) > 0) {
		if (!bytes)
			t0 = now();
		bytes += (uint64_t)n;
		ops++;
	}
	if (n < 0)
		die("read");
	double secs = now() - t0;
	if (write(c, "k", 1) != 1)
		die("ack");
	close(c);
	o->bs = 0;
	report("tcp-recv", o, bytes, ops, secs, NULL);
}

static void tcp_send(const char *host, int port, struct opts *o)
{
	int s = connect_retry(host, port);
	char *buf = malloc(o->bs), ack;
	uint64_t bytes = 0, ops = 0;
	double t0 = now();

	if (!buf)
		die("malloc");
	for (uint64_t i = 0; i < o->bs / 8; i++)
		((uint64_t *)buf)[i] = rng();
	while (bytes < o->amount && now() - t0 < o->limit) {
		uint64_t want = o->amount - bytes < o->bs ? o->amount - bytes : o->bs;
		ssize_t n = write(s, buf, want);

		if (n <= 0)
			die("write");
		bytes += (uint64_t)n;
		ops++;
	}
	shutdown(s, SHUT_WR);
	if (read(s, &ack, 1) != 1)
		die("waiting for the receiver's ack");
	double secs = now() - t0;
	close(s);
	report("tcp-send", o, bytes, ops, secs, NULL);
}

static void tcp_echo(int port, struct opts *o)
{
	int c = listen_one(port, o->limit);
	char buf[4096];
	ssize_t n;

	while ((n = read(c, buf, sizeof(buf))) > 0)
		if (write(c, buf, (size_t)n) != n)
			die("write");
	close(c);
}

static void tcp_rr(const char *host, int port, struct opts *o)
{
	int s = connect_retry(host, port);
	double *lat = calloc(o->amount ? o->amount : 1, sizeof(double)), t0 = now(), sum = 0;
	uint64_t ops = 0;
	char c = 'x';

	if (!lat)
		die("calloc");
	while (ops < o->amount && now() - t0 < o->limit) {
		double t = now();

		if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1)
			die("request/response");
		lat[ops++] = now() - t;
	}
	double secs = now() - t0;
	close(s);
	for (uint64_t i = 0; i < ops; i++)
		sum += lat[i];
	qsort(lat, ops, sizeof(double), cmp_double);
	char extra[160];
	snprintf(extra, sizeof(extra), "lat_avg_us=%.1f lat_p50_us=%.1f lat_p99_us=%.1f",
		 ops ? sum / (double)ops * 1e6 : 0, ops ? lat[ops / 2] * 1e6 : 0, ops ? lat[ops * 99 / 100] * 1e6 : 0);
	o->bs = 1;
	report("tcp-rr", o, ops, ops, secs, extra);
}

static void nullsys(struct opts *o)
{
	uint64_t ops = 0;
	double t0 = now(), secs;
	char extra[64];

	while (ops < o->amount) {
		for (int i = 0; i < 1000; i++)
			syscall(SYS_getppid);
		ops += 1000;
		if (now() - t0 > o->limit)
			break;
	}
	secs = now() - t0;
	snprintf(extra, sizeof(extra), "lat_avg_us=%.3f", ops ? secs / (double)ops * 1e6 : 0);
	o->bs = 0;
	report("nullsys", o, 0, ops, secs, extra);
}

static void usage(void)
{
	fprintf(stderr, "usage: iobench seqread|seqwrite|randread PATH [-b BS] [-n AMOUNT] [-t SECS] [-q QD] [-B]\n"
			"       iobench nullsys [-n CALLS] [-t SECS]\n"
			"       iobench tcp-recv|tcp-echo PORT [-t SECS]\n"
			"       iobench tcp-send|tcp-rr HOST PORT [-b BS] [-n AMOUNT] [-t SECS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = { .bs = 0, .amount = 0, .limit = 15, .qd = 1 };
	const char *pos[2] = { 0 };
	int npos = 0;

	if (argc < 2)
		usage();
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "-B"))
			o.buffered = 1;
		else if (argv[i][0] == '-' && argv[i][1] && !argv[i][2] && i + 1 < argc) {
			const char *v = argv[++i];

			switch (argv[i - 1][1]) {
			case 'b': o.bs = parse_size(v); break;
			case 'n': o.amount = parse_size(v); break;
			case 't': o.limit = atof(v); break;
			case 'q': o.qd = (unsigned)atoi(v); break;
			default: usage();
			}
		} else if (npos < 2) {
			pos[npos++] = argv[i];
		} else {
			usage();
		}
	}
	const char *m = argv[1];

	if (!strcmp(m, "seqread") || !strcmp(m, "seqwrite") || !strcmp(m, "randread")) {
		int rnd = !strcmp(m, "randread");

		if (npos != 1)
			usage();
		if (!o.bs)
			o.bs = rnd ? 4096 : 1 << 20;
		if (!o.amount)
			o.amount = rnd ? 20000 : (!strcmp(m, "seqread") ? 1ULL << 30 : 512ULL << 20);
		disk(m, pos[0], &o);
	} else if (!strcmp(m, "nullsys")) {
		if (!o.amount)
			o.amount = 200000;
		nullsys(&o);
	} else if (!strcmp(m, "tcp-recv") || !strcmp(m, "tcp-echo")) {
		if (npos != 1)
			usage();
		if (!strcmp(m, "tcp-recv"))
			tcp_recv(atoi(pos[0]), &o);
		else
			tcp_echo(atoi(pos[0]), &o);
	} else if (!strcmp(m, "tcp-send") || !strcmp(m, "tcp-rr")) {
		if (npos != 2)
			usage();
		if (!strcmp(m, "tcp-send")) {
			if (!o.bs)
				o.bs = 256 << 10;
			if (!o.amount)
				o.amount = 1ULL << 30;
			tcp_send(pos[0], atoi(pos[1]), &o);
		} else {
			if (!o.amount)
				o.amount = 10000;
			tcp_rr(pos[0], atoi(pos[1]), &o);
		}
	} else {
		usage();
	}
	return 0;
}
