/* NBD images over libnbd's synchronous API. libnbd handles are
 * thread-safe (one command at a time per handle), so the async layer's
 * workers share one. A lost connection cannot be revived: the handle is
 * replaced by a new one, under the write side of `lock`, by the first
 * worker that sees it dead; `gen` tells the others that it already was. */
#include "block/nbd.h"

#include <errno.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "block/iov.h"
#include "util/err.h"

/* The NBD protocol's default maximum payload, when the server names none. */
#define DEFAULT_MAX_IO (32u << 20)
/* Trim, zero and block status lengths are 32-bit on the wire. */
#define MAX_RANGE (1u << 30)
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 2000

struct nbd_image {
	struct image img;
	pthread_rwlock_t lock;  /* read: a command on h; write: replacing h */
	struct nbd_handle *h;   /* NULL while the server is unreachable */
	uint64_t gen;           /* connections made so far */
	struct timespec lost;   /* when the current outage began */
	bool gave_up;           /* this outage outlasted NBD_RECONNECT_SECONDS (reported) */
	uint64_t max_io;        /* largest read or write the server takes */
	struct nbd_export_info info;
};

enum cmd_op { CMD_READ, CMD_WRITE, CMD_FLUSH, CMD_TRIM, CMD_ZERO, CMD_STATUS };

struct cmd {
	enum cmd_op op;
	void *buf;
	uint64_t off, len;
	uint32_t flags;
	struct extent *e; /* CMD_STATUS */
};

static struct nbd_image *nbd_of(struct image *img)
{
	return (struct nbd_image *)img;
}

/* A new connection to uri, or NULL with libnbd's reason in why. */
static struct nbd_handle *connect_uri(const char *uri, char *why, size_t cap)
{
	struct nbd_handle *h = nbd_create();

	if (h && nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0 && nbd_connect_uri(h, uri) == 0)
		return h;
	/* The message is thread-local and outlives nothing: copy it first. */
	snprintf(why, cap, "%s", nbd_get_error() ? nbd_get_error() : strerror(nbd_get_errno()));
	nbd_close(h);
	return NULL;
}

static uint64_t block_size(struct nbd_handle *h, int which)
{
	int64_t v = nbd_get_block_size(h, which);

	return v > 0 ? (uint64_t)v : 0;
}

/* At the first connection only: a server restarted behind the same URI
 * serves the same export (its size is checked), and workers read these
 * without the lock. */
static void read_info(struct nbd_image *n)
{
	struct nbd_export_info *i = &n->info;

	i->block_min = block_size(n->h, LIBNBD_SIZE_MINIMUM);
	i->block_preferred = block_size(n->h, LIBNBD_SIZE_PREFERRED);
	i->block_max = block_size(n->h, LIBNBD_SIZE_MAXIMUM);
	i->read_only = nbd_is_read_only(n->h) == 1;
	i->can_flush = nbd_can_flush(n->h) == 1;
	i->can_trim = nbd_can_trim(n->h) == 1;
	i->can_zero = nbd_can_zero(n->h) == 1;
	i->block_status = nbd_can_meta_context(n->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
	n->max_io = i->block_max && i->block_max < DEFAULT_MAX_IO ? i->block_max : DEFAULT_MAX_IO;
}

static int64_t ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void sleep_ms(int64_t ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	while (nanosleep(&t, &t) < 0 && errno == EINTR) {
	}
}

/* With the write lock: a new connection, tried with backoff until the
 * outage is NBD_RECONNECT_SECONDS old (once only after that, so I/O fails
 * fast while the server stays away, and recovers when it is back). */
static int reconnect_locked(struct nbd_image *n)
{
	const int64_t limit = NBD_RECONNECT_SECONDS * 1000;
	int64_t delay = BACKOFF_FIRST_MS;
	char why[256];

	if (n->h) {
		nbd_close(n->h);
		n->h = NULL;
		clock_gettime(CLOCK_MONOTONIC, &n->lost);
		cv_warn("disk '%s': NBD connection lost; reconnecting", n->img.path);
	}
	for (;;) {
		struct nbd_handle *h = connect_uri(n->img.path, why, sizeof(why));
		int64_t left;

		/* Another export behind the same URI is not this disk. */
		if (h && nbd_get_size(h) != (int64_t)n->img.size) {
			snprintf(why, sizeof(why), "the export's size changed");
			nbd_close(h);
			h = NULL;
		}
		if (h) {
			n->h = h;
			n->gen++;
			n->gave_up = false;
			cv_warn("disk '%s': reconnected to the NBD server", n->img.path);
			return 0;
		}
		left = limit - ms_since(&n->lost);
		if (left <= 0)
			break;
		sleep_ms(delay < left ? delay : left);
		delay = delay * 2 < BACKOFF_MAX_MS ? delay * 2 : BACKOFF_MAX_MS;
	}
	if (!n->gave_up)
		cv_warn("disk '%s': cannot reconnect for %d s (%s); its I/O fails until the server is back",
			n->img.path, NBD_RECONNECT_SECONDS, why);
	n->gave_up = true;
	return -EIO;
}

static int on_extent(void *opaque, const char *context, uint64_t off, uint32_t *entries, size_t n, int *error)
{
	struct extent *e = opaque;

	(void)off;
	(void)error;
	if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) || n < 2)
		return 0;
	/* Holes that do not read as zeroes are data to a copy. */
	e->kind = entries[1] & LIBNBD_STATE_ZERO ? EXTENT_ZERO : EXTENT_DATA;
	if (entries[0] && entries[0] < e->len)
		e->len = entries[0];
	return 0;
}

static int issue(struct nbd_handle *h, struct cmd *c)
{
	switch (c->op) {
	case CMD_READ:
		return nbd_pread(h, c->buf, c->len, c->off, 0);
	case CMD_WRITE:
		return nbd_pwrite(h, c->buf, c->len, c->off, 0);
	case CMD_FLUSH:
		return nbd_flush(h, 0);
	case CMD_TRIM:
		return nbd_trim(h, c->len, c->off, 0);
	case CMD_ZERO:
		return nbd_zero(h, c->len, c->off, c->flags);
	case CMD_STATUS:
		*c->e = (struct extent){ .kind = EXTENT_DATA, .off = c->off, .len = c->len };
		return nbd_block_status(h, c->len, c->off, (nbd_extent_callback){ .callback = on_extent, .user_data = c->e },
					LIBNBD_CMD_FLAG_REQ_ONE);
	}
	return -1;
}

static bool connection_error(int e)
{
	return e == ENOTCONN || e == ECONNRESET || e == EPIPE || e == ESHUTDOWN;
}

/* Runs c, through as many reconnections as it takes: every command is
 * idempotent, so one whose reply was lost can be sent again. */
static int run(struct nbd_image *n, struct cmd *c)
{
	for (;;) {
		uint64_t gen;
		bool dead;
		int rc, e;

		pthread_rwlock_rdlock(&n->lock);
		gen = n->gen;
		rc = n->h ? issue(n->h, c) : -1;
		e = n->h ? nbd_get_errno() : ENOTCONN;
		dead = !n->h || nbd_aio_is_dead(n->h) == 1 || nbd_aio_is_closed(n->h) == 1;
		pthread_rwlock_unlock(&n->lock);
		if (rc != -1)
			return 0;
		if (!dead && !connection_error(e))
			return e ? -e : -EIO;
		pthread_rwlock_wrlock(&n->lock);
		/* Unless another worker has made a new connection meanwhile. */
		rc = n->gen == gen ? reconnect_locked(n) : 0;
		pthread_rwlock_unlock(&n->lock);
		if (rc)
			return rc;
	}
}

/* c over [c->off, c->off+len) in commands of at most `max` bytes. */
static int run_ranges(struct nbd_image *n, struct cmd c, uint64_t len, uint64_t max)
{
	int rc = 0;

	for (uint64_t end = c.off + len; !rc && c.off < end; c.off += c.len) {
		c.len = end - c.off < max ? end - c.off : max;
		rc = run(n, &c);
	}
	return rc;
}

/* Reads or writes iov in commands of up to max_io bytes, each straight
 * from its iovec when it lies in one, else through a bounce buffer. */
static int rw(struct image *img, enum cmd_op op, uint64_t off, const struct iovec *iov, unsigned niov)
{
	struct nbd_image *n = nbd_of(img);
	uint64_t total = iov_total(iov, niov);
	uint8_t *bounce = NULL;
	int rc = 0;

	for (uint64_t done = 0; !rc && done < total;) {
		struct cmd c = { .op = op, .off = off + done };
		struct iovec one;

		c.len = total - done < n->max_io ? total - done : n->max_io;
		if (iov_slice(iov, niov, done, c.len, &one, 1) == 1 && one.iov_len == c.len) {
			c.buf = one.iov_base;
		} else {
			if (!bounce && !(bounce = malloc(total < n->max_io ? total : n->max_io)))
				return -ENOMEM;
			c.buf = bounce;
			if (op == CMD_WRITE)
				iov_to_buf(iov, niov, done, bounce, c.len);
		}
		rc = run(n, &c);
		if (!rc && op == CMD_READ && c.buf == bounce)
			iov_from_buf(iov, niov, done, bounce, c.len);
		done += c.len;
	}
	free(bounce);
	return rc;
}

static int nbd_image_preadv(struct image *img, uint64_t off, const struct iovec *iov, unsigned n)
{
	return rw(img, CMD_READ, off, iov, n);
}

static int nbd_image_pwritev(struct image *img, uint64_t off, const struct iovec *iov, unsigned n)
{
	return rw(img, CMD_WRITE, off, iov, n);
}

/* A server that cannot flush has no cache to flush (NBD spec). */
static int nbd_image_flush(struct image *img)
{
	struct nbd_image *n = nbd_of(img);

	return n->info.can_flush ? run(n, &(struct cmd){ .op = CMD_FLUSH }) : 0;
}

/* Discard is advisory: a server without trim ignores it. */
static int nbd_image_discard(struct image *img, uint64_t off, uint64_t len)
{
	struct nbd_image *n = nbd_of(img);

	return n->info.can_trim ? run_ranges(n, (struct cmd){ .op = CMD_TRIM, .off = off }, len, MAX_RANGE) : 0;
}

static int nbd_image_write_zeroes(struct image *img, uint64_t off, uint64_t len, bool unmap)
{
	static const uint8_t zero[1u << 16];
	struct nbd_image *n = nbd_of(img);
	struct cmd c = { .op = CMD_ZERO, .off = off, .flags = unmap ? 0 : LIBNBD_CMD_FLAG_NO_HOLE };

	if (n->info.can_zero)
		return run_ranges(n, c, len, MAX_RANGE);
	/* A server without the command: write them. */
	c = (struct cmd){ .op = CMD_WRITE, .buf = (void *)zero, .off = off };
	return run_ranges(n, c, len, n->max_io < sizeof(zero) ? n->max_io : sizeof(zero));
}

static bool nbd_image_map(struct image *img, uint64_t off, uint64_t len, bool write, struct extent *e)
{
	(void)img;
	(void)off;
	(void)len;
	(void)write;
	(void)e;
	return false; /* no host file: every I/O is a command */
}

static int nbd_image_status(struct image *img, uint64_t off, uint64_t len, struct extent *e)
{
	struct nbd_image *n = nbd_of(img);
	struct cmd c = { .op = CMD_STATUS, .off = off, .len = len < MAX_RANGE ? len : MAX_RANGE, .e = e };

	if (!n->info.block_status) {
		*e = (struct extent){ .kind = EXTENT_DATA, .off = off, .len = len };
		return 0;
	}
	return run(n, &c);
}

static int nbd_image_close(struct image *img)
{
	struct nbd_image *n = nbd_of(img);

	if (n->h) {
		/* Lets the server finish what it received before we go. */
		nbd_shutdown(n->h, 0);
		nbd_close(n->h);
	}
	pthread_rwlock_destroy(&n->lock);
	image_fini(img);
	free(n);
	return 0;
}

static const struct image_ops nbd_ops = {
	.name = "raw",
	.preadv = nbd_image_preadv,
	.pwritev = nbd_image_pwritev,
	.flush = nbd_image_flush,
	.discard = nbd_image_discard,
	.write_zeroes = nbd_image_write_zeroes,
	.map = nbd_image_map,
	.status = nbd_image_status,
	.close = nbd_image_close,
};

static const struct nbd_export_info *export_info(const struct image *img)
{
	return img && img->ops == &nbd_ops ? &((const struct nbd_image *)img)->info : NULL;
}

static int open_export(const char *uri, enum block_format format, bool readonly, struct image **out)
{
	struct nbd_image *n;
	char why[256];
	int64_t size;

	if (format == BLOCK_FORMAT_QCOW2) {
		cv_err("disk '%s': qcow2 over NBD is not supported (let the server read the qcow2 file: "
		       "qemu-nbd -f qcow2)", uri);
		return CV_EINPUT;
	}
	if (!(n = calloc(1, sizeof(*n)))) {
		cv_err("%s: out of memory", uri);
		return CV_EFAIL;
	}
	if (!(n->h = connect_uri(uri, why, sizeof(why)))) {
		cv_err("cannot open disk '%s': %s", uri, why);
		free(n);
		return CV_EINPUT;
	}
	if ((size = nbd_get_size(n->h)) < 0) {
		cv_err("cannot open disk '%s': %s", uri, nbd_get_error());
		nbd_close(n->h);
		free(n);
		return CV_EINPUT;
	}
	read_info(n);
	if (image_init(&n->img, &nbd_ops, -1, uri, readonly || n->info.read_only)) {
		nbd_close(n->h);
		free(n);
		return CV_EFAIL;
	}
	n->img.size = (uint64_t)size;
	pthread_rwlock_init(&n->lock, NULL);
	*out = &n->img;
	return 0;
}

const struct nbd_module cellvm_module_nbd = { .open = open_export, .info = export_info };
