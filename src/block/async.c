/* The asynchronous disk the devices use (struct block), over any image.
 *
 * A read or write whose bytes the image can place without waiting
 * (image map(): plain data in a host file, or zeroes) goes straight to
 * io_uring at the host offsets: raw images always, qcow2 images for
 * allocated clusters whose L2 table is cached. Everything else (cluster
 * allocation, copy-on-write, compressed clusters, metadata misses, qcow2
 * flush/discard/write-zeroes) runs the image's synchronous call on a
 * small worker pool. Both complete through one eventfd on the VM's event
 * loop, so callbacks always run there, never inside the submitting call. */
#include "block/async.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "block/dirty.h"
#include "block/iov.h"
#include "util/err.h"

#define WORKERS 4
#define MAX_EXTENTS 16

enum op { OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD, OP_ZEROES, OP_ZEROES_UNMAP };

struct async;

struct req {
	struct async *a;
	enum op op;
	uint64_t off, len;
	const struct iovec *iov;
	unsigned n;
	block_done cb;
	void *opaque;
	int err;        /* first error of any part */
	unsigned parts; /* io_uring parts not yet completed */
	struct req *next;
};

/* One io_uring request of a struct req. */
struct part {
	struct req *req;
	struct image *owner; /* image_io_end() when done */
	int fd;
	uint64_t off;        /* host offset */
	uint64_t len;
	const struct iovec *iov;
	unsigned n;
	struct iovec own[];  /* iov points here when the request was split */
};

struct async {
	struct block b;
	struct image *img;
	struct event_loop *loop;
	int efd; /* io_uring and worker completions */
	struct io_uring ring;
	unsigned ring_size;
	unsigned pending;        /* SQEs queued, not yet submitted */
	unsigned uring_inflight; /* SQEs not yet reaped */
	unsigned pool_inflight;  /* requests handed to the pool, not yet completed (loop thread only) */
	pthread_t threads[WORKERS];
	unsigned nthreads;
	pthread_mutex_t lock; /* guards todo, done, stop */
	pthread_cond_t work;
	struct req *todo, **todo_tail;
	struct req *done;
	bool stop;
	struct block_dirty *track; /* loop thread only */
};

static int run_sync(struct async *a, struct req *r)
{
	struct image *img = a->img;
	int rc = 0;

	switch (r->op) {
	case OP_READ:
		rc = img->ops->preadv(img, r->off, r->iov, r->n);
		break;
	case OP_WRITE:
		rc = img->ops->pwritev(img, r->off, r->iov, r->n);
		break;
	case OP_FLUSH:
		rc = img->ops->flush(img);
		break;
	case OP_DISCARD:
		rc = img->ops->discard(img, r->off, r->len);
		break;
	case OP_ZEROES:
	case OP_ZEROES_UNMAP:
		rc = img->ops->write_zeroes(img, r->off, r->len, r->op == OP_ZEROES_UNMAP);
		break;
	}
	return rc;
}

static void signal_loop(struct async *a)
{
	uint64_t one = 1;

	if (write(a->efd, &one, sizeof(one)) < 0) {
		/* The counter is only full if nobody reads it: nothing to do. */
	}
}

static void finish_in_pool(struct async *a, struct req *r)
{
	pthread_mutex_lock(&a->lock);
	r->next = a->done;
	a->done = r;
	pthread_mutex_unlock(&a->lock);
	signal_loop(a);
}

static int (*thread_start)(void);

void async_set_thread_start(int (*fn)(void))
{
	thread_start = fn;
}

static void *worker(void *opaque)
{
	struct async *a = opaque;
	bool ok;

	pthread_setname_np(pthread_self(), "disk-worker");
	/* A worker that cannot take its syscall filter must not touch a disk. */
	ok = !thread_start || thread_start() == 0;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct req *r = a->todo;

		if (!r) {
			if (a->stop)
				break;
			pthread_cond_wait(&a->work, &a->lock);
			continue;
		}
		a->todo = r->next;
		if (!a->todo)
			a->todo_tail = &a->todo;
		pthread_mutex_unlock(&a->lock);
		r->err = ok ? run_sync(a, r) : -EPERM;
		finish_in_pool(a, r);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* Queues r for a worker (freeing it if there is none to run it). */
static int to_pool(struct async *a, struct req *r)
{
	if (a->nthreads < WORKERS) {
		/* Started on first use: raw disks never need them. */
		if (pthread_create(&a->threads[a->nthreads], NULL, worker, a) == 0) {
			a->nthreads++;
		} else if (!a->nthreads) {
			free(r);
			return -EAGAIN;
		}
	}
	r->next = NULL;
	pthread_mutex_lock(&a->lock);
	*a->todo_tail = r;
	a->todo_tail = &r->next;
	pthread_cond_signal(&a->work);
	pthread_mutex_unlock(&a->lock);
	a->pool_inflight++;
	return 0;
}

static struct req *new_req(struct async *a, enum op op, uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	struct req *r = calloc(1, sizeof(*r));

	if (r)
		*r = (struct req){ .a = a, .op = op, .off = off, .len = len, .cb = cb, .opaque = opaque };
	return r;
}

static void complete(struct req *r)
{
	/* Failed writes too: what they left in the image is not known. */
	if (r->a->track && r->op != OP_READ && r->op != OP_FLUSH)
		block_dirty_mark(r->a->track, r->off, r->len);
	r->cb(r->opaque, r->err < 0 ? r->err : (int64_t)r->len);
	free(r);
}

static struct io_uring_sqe *sqe_for(struct async *a, void *data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);

	io_uring_sqe_set_data(sqe, data);
	a->pending++;
	a->uring_inflight++;
	return sqe;
}

/* Submits the mapped extents of r; false if they could not all be. */
static bool submit_extents(struct async *a, struct req *r, bool write, struct extent *x, unsigned nx)
{
	unsigned data = 0;
	uint64_t skip = 0;

	for (unsigned i = 0; i < nx; i++)
		data += x[i].kind == EXTENT_DATA;
	if (a->uring_inflight + data > a->ring_size || io_uring_sq_space_left(&a->ring) < data)
		return false;
	r->parts = data;
	for (unsigned i = 0; i < nx; skip += x[i].len, i++) {
		struct part *p;

		if (x[i].kind == EXTENT_ZERO) {
			iov_fill(r->iov, r->n, skip, 0, x[i].len);
			continue;
		}
		p = malloc(sizeof(*p) + (nx == 1 ? 0 : r->n * sizeof(struct iovec)));
		if (!p) {
			/* Cannot happen in practice; fail this piece. */
			r->err = -ENOMEM;
			image_io_end(x[i].owner);
			r->parts--;
			continue;
		}
		*p = (struct part){ .req = r, .owner = x[i].owner, .fd = x[i].fd, .off = x[i].off, .len = x[i].len,
				    .iov = r->iov, .n = r->n };
		if (nx > 1) {
			p->n = iov_slice(r->iov, r->n, skip, x[i].len, p->own, r->n);
			p->iov = p->own;
		}
		if (write)
			io_uring_prep_writev(sqe_for(a, p), p->fd, p->iov, p->n, p->off);
		else
			io_uring_prep_readv(sqe_for(a, p), p->fd, p->iov, p->n, p->off);
	}
	if (!r->parts) {
		/* Zeroes only: still complete from the loop, not inside this call. */
		a->pool_inflight++;
		finish_in_pool(a, r);
	}
	return true;
}

static int rw(struct block *b, enum op op, uint64_t off, const struct iovec *iov, unsigned n, block_done cb,
	      void *opaque)
{
	struct async *a = (struct async *)b;
	struct extent x[MAX_EXTENTS];
	unsigned nx = 0;
	uint64_t pos = 0;
	struct req *r = new_req(a, op, off, iov_total(iov, n), cb, opaque);
	bool write = op == OP_WRITE;

	if (!r)
		return -EAGAIN;
	r->iov = iov;
	r->n = n;
	while (pos < r->len && nx < MAX_EXTENTS && a->img->ops->map(a->img, off + pos, r->len - pos, write, &x[nx])) {
		pos += x[nx].len;
		nx++;
	}
	if (pos == r->len && submit_extents(a, r, write, x, nx))
		return 0;
	for (unsigned i = 0; i < nx; i++)
		if (x[i].kind == EXTENT_DATA)
			image_io_end(x[i].owner);
	return to_pool(a, r);
}

static int async_readv(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb,
		       void *opaque)
{
	return rw(b, OP_READ, off, iov, n, cb, opaque);
}

static int async_writev(struct block *b, uint64_t off, const struct iovec *iov, unsigned n, block_done cb,
			void *opaque)
{
	return rw(b, OP_WRITE, off, iov, n, cb, opaque);
}

/* Flush, discard, write-zeroes: on a flat image io_uring does them on the
 * file itself; otherwise the format's metadata is involved. */
static int other(struct block *b, enum op op, uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	struct async *a = (struct async *)b;
	struct req *r = new_req(a, op, off, len, cb, opaque);
	struct io_uring_sqe *sqe;
	int mode = FALLOC_FL_KEEP_SIZE;

	if (!r)
		return -EAGAIN;
	if (!a->img->ops->flat || a->uring_inflight >= a->ring_size || !io_uring_sq_space_left(&a->ring))
		return to_pool(a, r);
	{
		struct part *p = malloc(sizeof(*p));

		if (!p) {
			free(r);
			return -EAGAIN;
		}
		*p = (struct part){ .req = r, .fd = a->img->fd };
		r->parts = 1;
		r->len = 0;
		sqe = sqe_for(a, p);
	}
	if (op == OP_FLUSH) {
		/* Data and the metadata needed to read it back: what a disk
		 * cache flush promises. */
		io_uring_prep_fsync(sqe, a->img->fd, IORING_FSYNC_DATASYNC);
		return 0;
	}
	mode |= op == OP_ZEROES ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE;
	io_uring_prep_fallocate(sqe, a->img->fd, mode, off, len);
	return 0;
}

static int async_flush(struct block *b, block_done cb, void *opaque)
{
	return other(b, OP_FLUSH, 0, 0, cb, opaque);
}

static int async_discard(struct block *b, uint64_t off, uint64_t len, block_done cb, void *opaque)
{
	return other(b, OP_DISCARD, off, len, cb, opaque);
}

static int async_write_zeroes(struct block *b, uint64_t off, uint64_t len, bool unmap, block_done cb, void *opaque)
{
	return other(b, unmap ? OP_ZEROES_UNMAP : OP_ZEROES, off, len, cb, opaque);
}

static void async_submit(struct block *b)
{
	struct async *a = (struct async *)b;

	if (!a->pending)
		return;
	a->pending = 0;
	io_uring_submit(&a->ring);
}

/* A part's result: short reads end at the end of the file (zeroes after
 * it); anything else short is finished synchronously (rare). */
static int part_result(struct part *p, int res, bool read)
{
	struct iovec rest[IOV_PARTS];
	unsigned k;

	if (res < 0)
		return res;
	if ((uint64_t)res >= p->len || p->req->op == OP_FLUSH || p->req->op >= OP_DISCARD)
		return 0;
	k = iov_slice(p->iov, p->n, (uint64_t)res, p->len - (uint64_t)res, rest, IOV_PARTS);
	if (read)
		return res == 0 ? (iov_fill(p->iov, p->n, 0, 0, p->len), 0)
				: iov_pread_full(p->fd, rest, k, p->off + (uint64_t)res);
	return iov_pwrite_full(p->fd, rest, k, p->off + (uint64_t)res);
}

static void reap(struct async *a)
{
	struct io_uring_cqe *cqe;
	struct req *done;

	while (io_uring_peek_cqe(&a->ring, &cqe) == 0) {
		struct part *p = io_uring_cqe_get_data(cqe);
		struct req *r = p->req;
		int rc = part_result(p, cqe->res, r->op == OP_READ);

		io_uring_cqe_seen(&a->ring, cqe);
		a->uring_inflight--;
		image_io_end(p->owner);
		if (rc && !r->err)
			r->err = rc;
		free(p);
		if (--r->parts == 0)
			complete(r);
	}
	pthread_mutex_lock(&a->lock);
	done = a->done;
	a->done = NULL;
	pthread_mutex_unlock(&a->lock);
	while (done) {
		struct req *r = done;

		done = r->next;
		a->pool_inflight--;
		complete(r);
	}
}

static void on_event(void *opaque, uint32_t events)
{
	struct async *a = opaque;
	uint64_t n;

	(void)events;
	if (read(a->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	reap(a);
}

static int async_close(struct block *b)
{
	struct async *a = (struct async *)b;
	int rc;
	struct pollfd pfd = { .fd = a->efd, .events = POLLIN };

	async_submit(b);
	/* In-flight requests still point into guest memory: let them finish. */
	while (a->uring_inflight || a->pool_inflight) {
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			break;
		on_event(a, 0);
	}
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->work);
	pthread_mutex_unlock(&a->lock);
	for (unsigned i = 0; i < a->nthreads; i++)
		pthread_join(a->threads[i], NULL);
	event_loop_del(a->loop, a->efd);
	io_uring_queue_exit(&a->ring);
	close(a->efd);
	rc = image_close(a->img);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->work);
	free(a);
	return rc;
}

static void async_track(struct block *b, struct block_dirty *d)
{
	((struct async *)b)->track = d;
}

static int async_copy_read(struct block *b, uint64_t off, void *buf, size_t len)
{
	struct image *img = ((struct async *)b)->img;
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return img->ops->preadv(img, off, &iov, 1);
}

static int async_copy_status(struct block *b, uint64_t off, uint64_t len, bool *data, uint64_t *n)
{
	struct extent e;
	int rc = image_chain_status(((struct async *)b)->img, off, len, &e);

	if (rc)
		return rc;
	*data = e.kind == EXTENT_DATA;
	*n = e.len;
	return 0;
}

static const struct block_ops async_ops = {
	.readv = async_readv,
	.writev = async_writev,
	.flush = async_flush,
	.discard = async_discard,
	.write_zeroes = async_write_zeroes,
	.submit = async_submit,
	.track = async_track,
	.copy_read = async_copy_read,
	.copy_status = async_copy_status,
	.close = async_close,
};

int async_open(struct image *img, unsigned max_inflight, struct event_loop *loop, struct block **out)
{
	struct async *a = calloc(1, sizeof(*a));
	int rc;

	if (!a) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	a->b = (struct block){ .ops = &async_ops, .size = img->size, .readonly = img->readonly };
	a->img = img;
	a->loop = loop;
	a->ring_size = max_inflight * 2;
	a->todo_tail = &a->todo;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->work, NULL);
	a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->efd < 0) {
		cv_err("eventfd: %s", strerror(errno));
		goto fail;
	}
	if ((rc = io_uring_queue_init(a->ring_size, &a->ring, 0)) < 0) {
		cv_err("io_uring_queue_init: %s", strerror(-rc));
		goto fail_efd;
	}
	if ((rc = io_uring_register_eventfd(&a->ring, a->efd)) < 0) {
		cv_err("io_uring_register_eventfd: %s", strerror(-rc));
		goto fail_ring;
	}
	if (event_loop_add(loop, a->efd, EPOLLIN, on_event, a))
		goto fail_ring;
	*out = &a->b;
	return 0;
fail_ring:
	io_uring_queue_exit(&a->ring);
fail_efd:
	close(a->efd);
fail:
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->work);
	free(a);
	return CV_EFAIL;
}
