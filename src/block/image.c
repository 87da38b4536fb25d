#include "block/image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/iov.h"
#include "block/nbd.h"
#include "block/qcow2.h"
#include "block/raw.h"
#include "util/err.h"

const char *image_format_name(enum block_format f)
{
	return f == BLOCK_FORMAT_QCOW2 ? "qcow2" : f == BLOCK_FORMAT_RAW ? "raw" : "auto";
}

int image_init(struct image *img, const struct image_ops *ops, int fd, const char *path, bool readonly)
{
	struct stat st;

	img->ops = ops;
	img->fd = fd;
	img->readonly = readonly;
	img->path = strdup(path);
	if (!img->path || (fd >= 0 && fstat(fd, &st) < 0)) {
		cv_err("%s: %s", path, img->path ? strerror(errno) : "out of memory");
		free(img->path);
		if (fd >= 0)
			close(fd);
		return CV_EFAIL;
	}
	if (fd >= 0) {
		img->dev = st.st_dev;
		img->ino = st.st_ino;
	}
	return 0;
}

void image_fini(struct image *img)
{
	if (img->fd >= 0)
		close(img->fd);
	free(img->path);
}

static enum block_format probe(int fd)
{
	uint8_t magic[4];

	if (pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) && !memcmp(magic, QCOW2_MAGIC, 4))
		return BLOCK_FORMAT_QCOW2;
	return BLOCK_FORMAT_RAW;
}

/* Our own lock, so two cellvm processes (or a VM and `cellvm disk`)
 * never write one image, or write an image another one reads. */
static int lock_image(int fd, const char *path, unsigned flags)
{
	if (flock(fd, (flags & (IMAGE_RW | IMAGE_EXCL) ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		cv_err("image '%s' is in use by another process", path);
	else
		cv_err("cannot lock image '%s': %s", path, strerror(errno));
	return CV_EINPUT;
}

static int open_fd(int fd, const char *path, enum block_format format, unsigned flags, const struct image *child,
		   struct image **out)
{
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		cv_err("disk '%s' is not a regular file or block device", path);
		close(fd);
		return CV_EINPUT;
	}
	if ((rc = lock_image(fd, path, flags))) {
		close(fd);
		return rc;
	}
	if (format == BLOCK_FORMAT_AUTO)
		format = probe(fd);
	if (format == BLOCK_FORMAT_QCOW2)
		rc = qcow2_open(fd, path, flags, child, out);
	else
		rc = raw_open(fd, path, !(flags & IMAGE_RW), out);
	if (!rc)
		(*out)->child = child;
	return rc;
}

int image_open(const char *path, enum block_format format, unsigned flags, struct image **out)
{
	int fd;

	/* The server owns the export: no file, no lock of ours, no chain. */
	if (nbd_image_is_uri(path))
		return nbd_image_open(path, format, !(flags & IMAGE_RW), out);
	fd = open(path, (flags & IMAGE_RW ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		cv_err("cannot open disk '%s': %s", path, strerror(errno));
		return CV_EINPUT;
	}
	return open_fd(fd, path, format, flags, NULL, out);
}

bool image_backing_path(const char *image_path, const char *name, char *buf, size_t len)
{
	const char *slash = strrchr(image_path, '/');
	int n;

	if (name[0] == '/' || !slash)
		n = snprintf(buf, len, "%s", name);
	else
		n = snprintf(buf, len, "%.*s/%s", (int)(slash - image_path), image_path, name);
	return n >= 0 && (size_t)n < len;
}

static bool restricted;
static char *allowed[IMAGE_MAX_ALLOWED_DIRS];
static unsigned nallowed;

void image_restrict_backing(void)
{
	restricted = true;
}

int image_allow_backing(const char *dir)
{
	char *real = realpath(dir, NULL);

	if (!real) {
		cv_err("invalid --allow-backing '%s': %s", dir, strerror(errno));
		return CV_EINPUT;
	}
	if (nallowed == IMAGE_MAX_ALLOWED_DIRS) {
		free(real);
		cv_err("invalid --allow-backing '%s': at most %d directories", dir, IMAGE_MAX_ALLOWED_DIRS);
		return CV_EINPUT;
	}
	allowed[nallowed++] = real;
	return 0;
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '/' || (n == 1 && dir[0] == '/'));
}

/* The policy above, for the backing file at path of child's chain. */
static int backing_allowed(const struct image *child, const char *path)
{
	const struct image *top = child;
	char dir[PATH_MAX], *real, *top_dir;
	const char *slash;
	bool ok;

	if (!restricted)
		return 0;
	while (top->child)
		top = top->child;
	slash = strrchr(top->path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - top->path) + (slash == top->path) : 1,
		 slash ? top->path : ".");
	/* A missing file is left to open() to report. */
	if (!(real = realpath(path, NULL)))
		return 0;
	top_dir = realpath(dir, NULL);
	ok = top_dir && under(real, top_dir);
	for (unsigned i = 0; !ok && i < nallowed; i++)
		ok = under(real, allowed[i]);
	if (!ok)
		cv_err("%s: backing file '%s' is outside the image's directory: give --allow-backing DIR to let the "
		       "guest read it", child->path, path);
	free(real);
	free(top_dir);
	return ok ? 0 : CV_EINPUT;
}

int image_open_backing(const struct image *child, const char *name, enum block_format format,
		       struct image **out)
{
	char path[PATH_MAX];
	struct stat st;
	unsigned depth = 0;
	int fd;

	if (!image_backing_path(child->path, name, path, sizeof(path))) {
		cv_err("%s: backing file name '%s' is too long", child->path, name);
		return CV_EINPUT;
	}
	if (backing_allowed(child, path))
		return CV_EINPUT;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		cv_err("%s: cannot open backing file '%s': %s", child->path, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CV_EINPUT;
	}
	for (const struct image *c = child; c; c = c->child, depth++) {
		if (c->dev == st.st_dev && c->ino == st.st_ino) {
			cv_err("%s: backing file '%s' loops back to '%s'", child->path, path, c->path);
			close(fd);
			return CV_EINPUT;
		}
	}
	if (depth >= IMAGE_MAX_CHAIN) {
		cv_err("%s: backing chain longer than %d images", child->path, IMAGE_MAX_CHAIN);
		close(fd);
		return CV_EINPUT;
	}
	return open_fd(fd, path, format, 0, child, out);
}

int image_close(struct image *img)
{
	return img ? img->ops->close(img) : 0;
}

int image_read_clipped(struct image *img, uint64_t off, const struct iovec *iov, unsigned n)
{
	uint64_t len = iov_total(iov, n), in = 0;
	struct iovec part[IOV_PARTS];
	unsigned k;

	if (img && off < img->size)
		in = img->size - off < len ? img->size - off : len;
	if (in < len)
		iov_fill(iov, n, in, 0, len - in);
	if (!in)
		return 0;
	k = iov_slice(iov, n, 0, in, part, IOV_PARTS);
	if (iov_total(part, k) == in)
		return img->ops->preadv(img, off, part, k);
	/* Too fragmented for the stack: bounce. */
	{
		uint8_t *buf = malloc(in);
		struct iovec v = { .iov_base = buf, .iov_len = in };
		int rc;

		if (!buf)
			return -ENOMEM;
		rc = img->ops->preadv(img, off, &v, 1);
		if (!rc)
			iov_from_buf(iov, n, 0, buf, in);
		free(buf);
		return rc;
	}
}

void image_io_end(struct image *owner)
{
	if (owner && owner->ops->io_end)
		owner->ops->io_end(owner);
}

int image_chain_status(struct image *img, uint64_t off, uint64_t len, struct extent *e)
{
	int rc;

	for (;;) {
		if (!img || off >= img->size) {
			*e = (struct extent){ .kind = EXTENT_ZERO, .len = len };
			return 0;
		}
		if (len > img->size - off)
			len = img->size - off;
		if ((rc = img->ops->status(img, off, len, e)))
			return rc;
		if (e->kind != EXTENT_BACKING)
			return 0;
		len = e->len;
		img = img->backing;
	}
}

static int open_peek(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		cv_err("cannot open disk '%s': %s", path, strerror(errno));
	return fd;
}

int image_probe(const char *path, enum block_format *f)
{
	int fd = open_peek(path);

	if (fd < 0)
		return CV_EINPUT;
	*f = probe(fd);
	close(fd);
	return 0;
}

int image_backing_name(const char *path, char *buf, size_t cap)
{
	struct qcow2_header h;
	uint64_t hdr, size;
	int fd = open_peek(path), rc = 0;

	if (fd < 0)
		return CV_EINPUT;
	buf[0] = 0;
	if (probe(fd) == BLOCK_FORMAT_QCOW2 && !(rc = qcow2_read_header(fd, path, &h, &hdr, &size)) &&
	    (size_t)snprintf(buf, cap, "%s", h.backing_file) >= cap) {
		cv_err("%s: backing file name too long", path);
		rc = CV_EINPUT;
	}
	close(fd);
	return rc;
}

int image_walk_backing(const char *path, int (*fn)(void *ctx, const char *path, const char *name), void *ctx)
{
	char cur[PATH_MAX], next[PATH_MAX], name[PATH_MAX];
	int rc;

	snprintf(cur, sizeof(cur), "%s", path);
	for (int depth = 0; depth < IMAGE_MAX_CHAIN; depth++) {
		if ((rc = image_backing_name(cur, name, sizeof(name))) || !*name)
			return rc;
		if (!image_backing_path(cur, name, next, sizeof(next))) {
			cv_err("%s: backing file path too long", cur);
			return CV_EINPUT;
		}
		if ((rc = fn(ctx, next, name)))
			return rc;
		memcpy(cur, next, sizeof(cur));
	}
	cv_err("%s: backing chain longer than %d images", path, IMAGE_MAX_CHAIN);
	return CV_EINPUT;
}
