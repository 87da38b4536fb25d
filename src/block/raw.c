#include "block/raw.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/err.h"

struct raw {
	struct block b;
	int fd;
	int efd; /* completion notifications, watched by the event loop */
	struct io_uring ring;
	struct event_loop *loop;
	unsigned pending;  /* queued, not yet submitted */
	unsigned inflight; /* submitted or queued, not completed */
};

struct op {
	block_done cb;
	void *opaque;
};

static struct io_uring_sqe *get_sqe(struct raw *r, block_done cb, void *opaque)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	struct op *op;

	if (!sqe)
		return NULL;
	op = malloc(sizeof(*op));
	if (!op)
		return NULL;
	op->cb = cb;
	op->opaque = opaque;
	io_uring_sqe_set_data(sqe, op);
	r->pending++;
	r->inflight++;
	return sqe;
}

static int raw_readv(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb, void *opaque)
{
	struct raw *r = (struct raw *)b;
	struct io_uring_sqe *sqe = get_sqe(r, cb, opaque);

	if (!sqe)
		return -EAGAIN;
	io_uring_prep_readv(sqe, r->fd, iov, n, off);
	return 0;
}

static int raw_writev(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb, void *opaque)
{
	struct raw *r = (struct raw *)b;
	struct io_uring_sqe *sqe = get_sqe(r, cb, opaque);

	if (!sqe)
		return -EAGAIN;
	io_uring_prep_writev(sqe, r->fd, iov, n, off);
	return 0;
}

static int raw_flush(struct block *b, block_done cb, void *opaque)
{
	struct raw *r = (struct raw *)b;
	struct io_uring_sqe *sqe = get_sqe(r, cb, opaque);

	if (!sqe)
		return -EAGAIN;
	/* Data and the metadata needed to read it back: what a disk cache
	 * flush promises. */
	io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
	return 0;
}

static int fallocate_op(struct raw *r, int mode, uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(r, cb, opaque);

	if (!sqe)
		return -EAGAIN;
	io_uring_prep_fallocate(sqe, r->fd, mode, off, len);
	return 0;
}

static int raw_discard(struct block *b, uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	return fallocate_op((struct raw *)b, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len, cb, opaque);
}

static int raw_write_zeroes(struct block *b, uint64_t off, uint64_t len, bool unmap, block_done cb, void *opaque)
{
	int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;

	return fallocate_op((struct raw *)b, mode, off, len, cb, opaque);
}

static void raw_submit(struct block *b)
{
	struct raw *r = (struct raw *)b;

	if (!r->pending)
		return;
	r->pending = 0;
	io_uring_submit(&r->ring);
}

static void reap(struct raw *r)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&r->ring, &cqe) == 0) {
		struct op *op = io_uring_cqe_get_data(cqe);
		int64_t res = cqe->res;

		io_uring_cqe_seen(&r->ring, cqe);
		r->inflight--;
		op->cb(op->opaque, res);
		free(op);
	}
}

static void on_completion(void *opaque, uint32_t events)
{
	struct raw *r = opaque;
	uint64_t n;

	(void)events;
	if (read(r->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	reap(r);
}

static void raw_close(struct block *b)
{
	struct raw *r = (struct raw *)b;
	struct io_uring_cqe *cqe;

	raw_submit(b);
	/* In-flight requests still point into guest memory: let them finish. */
	while (r->inflight && io_uring_wait_cqe(&r->ring, &cqe) == 0)
		reap(r);
	event_loop_del(r->loop, r->efd);
	io_uring_queue_exit(&r->ring);
	close(r->efd);
	close(r->fd);
	free(r);
}

static const struct block_ops raw_ops = {
	.readv = raw_readv,
	.writev = raw_writev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.submit = raw_submit,
	.close = raw_close,
};

int raw_open(int fd, uint64_t size, bool readonly, unsigned max_inflight, struct event_loop *loop,
	     struct block **out)
{
	struct raw *r = calloc(1, sizeof(*r));
	int rc;

	if (!r) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	r->b = (struct block){ .ops = &raw_ops, .size = size, .readonly = readonly };
	r->fd = fd;
	r->loop = loop;
	r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->efd < 0) {
		cv_err("eventfd: %s", strerror(errno));
		free(r);
		return CV_EFAIL;
	}
	rc = io_uring_queue_init(max_inflight, &r->ring, 0);
	if (rc < 0) {
		cv_err("io_uring_queue_init: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = io_uring_register_eventfd(&r->ring, r->efd)) < 0) {
		cv_err("io_uring_register_eventfd: %s", strerror(-rc));
		io_uring_queue_exit(&r->ring);
		goto fail;
	}
	if (event_loop_add(loop, r->efd, EPOLLIN, on_completion, r)) {
		io_uring_queue_exit(&r->ring);
		goto fail;
	}
	*out = &r->b;
	return 0;
fail:
	close(r->efd);
	free(r);
	return CV_EFAIL;
}
