/* cellvm disk bench IMG [--write] [--count N] [--depth N]: 4 KiB random
 * I/O on the host through the same asynchronous block layer a VM's disk
 * uses (format code, io_uring, worker pool), without a guest, so formats
 * can be compared with little noise (and with `qemu-img bench`). */
#include "disk/disk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/err.h"
#include "vmm/event_loop.h"

#define BS 4096
#define MAX_DEPTH 256

struct bench;

struct slot {
	struct bench *b;
	struct iovec iov;
};

struct bench {
	struct block *disk;
	uint64_t count, issued, done, seed;
	bool write;
	int err;
	struct slot slot[MAX_DEPTH];
};

static void issue(struct slot *s);

static void on_done(void *opaque, int64_t result)
{
	struct slot *s = opaque;
	struct bench *b = s->b;

	if (result < 0 && !b->err)
		b->err = (int)result;
	b->done++;
	if (b->issued < b->count && !b->err)
		issue(s);
}

static void issue(struct slot *s)
{
	struct bench *b = s->b;
	uint64_t blocks = b->disk->size / BS, off;
	int rc;

	b->seed ^= b->seed << 13;
	b->seed ^= b->seed >> 7;
	b->seed ^= b->seed << 17;
	off = (b->seed % blocks) * BS;
	b->issued++;
	rc = b->write ? b->disk->ops->writev(b->disk, off, &s->iov, 1, on_done, s)
		      : b->disk->ops->readv(b->disk, off, &s->iov, 1, on_done, s);
	if (rc < 0) {
		b->err = rc;
		b->done++;
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int disk_bench(int argc, char **argv)
{
	const char *pos[1], *count_s = "100000", *depth_s = "1";
	struct disk_opt opts[] = {
		{ "--write", NULL, NULL }, { "--count", &count_s, NULL }, { "--depth", &depth_s, NULL },
		{ NULL, NULL, NULL },
	};
	static struct bench b;
	struct event_loop loop;
	unsigned depth;
	double t0, secs;
	int npos, rc;

	opts[0].flag = &b.write;
	if ((rc = disk_args("bench", argc, argv, opts, pos, 1, 1, &npos)))
		return disk_exit(rc);
	b.count = strtoull(count_s, NULL, 10);
	depth = (unsigned)strtoul(depth_s, NULL, 10);
	if (!b.count || !depth || depth > MAX_DEPTH) {
		cv_err("invalid --count '%s' or --depth '%s' (1..%d)", count_s, depth_s, MAX_DEPTH);
		return DISK_EXIT_USAGE;
	}
	if (event_loop_init(&loop))
		return DISK_EXIT_FAIL;
	if ((rc = block_open(pos[0], BLOCK_FORMAT_AUTO, !b.write, MAX_DEPTH, &loop, &b.disk))) {
		event_loop_destroy(&loop);
		return disk_exit(rc);
	}
	b.seed = 0x9e3779b97f4a7c15ULL;
	for (unsigned i = 0; i < depth; i++) {
		b.slot[i] = (struct slot){ .b = &b, .iov = { .iov_base = aligned_alloc(BS, BS), .iov_len = BS } };
		memset(b.slot[i].iov.iov_base, (int)i, BS);
	}
	t0 = now();
	for (unsigned i = 0; i < depth && b.issued < b.count; i++)
		issue(&b.slot[i]);
	while (b.done < b.count && !b.err) {
		b.disk->ops->submit(b.disk);
		if (event_loop_run_once(&loop, -1))
			break;
	}
	secs = now() - t0;
	b.disk->ops->close(b.disk);
	event_loop_destroy(&loop);
	for (unsigned i = 0; i < depth; i++)
		free(b.slot[i].iov.iov_base);
	if (b.err) {
		cv_err("bench '%s': %s", pos[0], strerror(-b.err));
		return DISK_EXIT_FAIL;
	}
	printf("%s: %s 4K random, depth %u: %.0f IOPS (%llu in %.3f s)\n", pos[0], b.write ? "write" : "read", depth,
	       (double)b.done / secs, (unsigned long long)b.done, secs);
	return DISK_EXIT_OK;
}
