#include "migrate/storage.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "block/image.h"
#include "block/layer.h"
#include "block/qcow2.h"
#include "block/raw.h"
#include "migrate/stream.h"
#include "util/err.h"

#define BLOCKS_HEAD 20u /* disk, flags, offset, length */
#define DISK_FMT_RAW 1
#define DISK_FMT_QCOW2 2
/* A disk's size as a stream may give it: what an image may be. */
#define MAX_DISK_SIZE (1ULL << 50)

/* ---------------------------------------------------------------- source */

int storage_out_start(struct storage_out *s, const struct storage_src *src, unsigned n)
{
	int rc = 0;

	memset(s, 0, sizeof(*s));
	s->first = true;
	/* s holds every owned file from here: storage_out_stop closes them. */
	for (unsigned i = 0; i < n; i++)
		s->disk[i].src = src[i];
	s->n = n;
	if (!(s->buf = malloc(BLOCKS_HEAD + MIG_BLOCKS_MAX)))
		rc = CV_EFAIL;
	for (unsigned i = 0; !rc && i < n; i++) {
		struct storage_disk *d = &s->disk[i];

		if (block_dirty_init(&d->dirty, d->src.b->size) || !(d->send = calloc(d->dirty.words, 8))) {
			rc = CV_EFAIL;
			break;
		}
		s->todo += d->src.b->size;
		if (!d->src.owned)
			d->src.b->ops->track(d->src.b, &d->dirty);
		/* The first round sends it all (what holds data). */
		block_dirty_mark_all(&d->dirty);
		block_dirty_take(&d->dirty, d->send);
	}
	if (rc) {
		cv_err("out of memory");
		storage_out_stop(s);
	}
	return rc;
}

void storage_out_stop(struct storage_out *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		struct storage_disk *d = &s->disk[i];

		if (d->src.owned)
			d->src.b->ops->close(d->src.b);
		else
			d->src.b->ops->track(d->src.b, NULL);
		block_dirty_free(&d->dirty);
		free(d->send);
	}
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static uint8_t *put_str(uint8_t *p, const char *str)
{
	uint16_t n = (uint16_t)strlen(str), le = htole16(n);

	memcpy(p, &le, 2);
	memcpy(p + 2, str, n);
	return p + 2 + n;
}

int storage_out_announce(struct storage_out *s, mig_out_fn out, void *ctx)
{
	uint8_t *p = s->buf + 4;
	uint32_t n = htole32(s->n);

	memcpy(s->buf, &n, 4);
	for (unsigned i = 0; i < s->n; i++) {
		const struct storage_src *src = &s->disk[i].src;
		uint64_t size = htole64(src->b->size);

		if (strlen(src->path) >= PATH_MAX || strlen(src->id) > CV_DISK_ID_MAX)
			return -ENAMETOOLONG;
		memcpy(p, &size, 8);
		p[8] = src->b->format == BLOCK_FORMAT_QCOW2 ? DISK_FMT_QCOW2 : DISK_FMT_RAW;
		p[9] = (uint8_t)src->role;
		p[10] = (uint8_t)src->drive;
		p = put_str(put_str(p + 11, src->path), src->id);
	}
	return out(ctx, MIG_DISKS, s->buf, (size_t)(p - s->buf), NULL, 0);
}

uint64_t storage_out_dirty(struct storage_out *s)
{
	uint64_t chunks = 0;

	for (unsigned i = 0; i < s->n; i++)
		chunks += block_dirty_take(&s->disk[i].dirty, s->disk[i].send);
	s->todo = chunks * BLOCK_DIRTY_CHUNK;
	return s->todo;
}

/* One BLOCKS record: [off, off+len) of disk i, its data in s->buf after
 * the header (or zeroes). */
static int send_run(struct storage_out *s, unsigned i, uint64_t off, uint32_t len, bool zero, mig_out_fn out,
		    void *ctx)
{
	uint32_t disk = htole32(i), flags = htole32(zero ? MIG_BLOCKS_ZERO : 0), l = htole32(len);
	uint64_t o = htole64(off);

	memcpy(s->buf, &disk, 4);
	memcpy(s->buf + 4, &flags, 4);
	memcpy(s->buf + 8, &o, 8);
	memcpy(s->buf + 16, &l, 4);
	return out(ctx, MIG_BLOCKS, s->buf, BLOCKS_HEAD + (zero ? 0 : len), NULL, 0);
}

/* The data chunks of disk d from chunk c on, contiguous and marked, read
 * into s->buf: how many bytes (0 when chunk c reads as zeroes). */
static int gather(struct storage_out *s, struct storage_disk *d, uint64_t *c, uint64_t chunks, uint32_t *len,
		  bool *zero)
{
	uint64_t off = *c << BLOCK_DIRTY_SHIFT, n;
	bool data;
	int rc;

	*len = 0;
	*zero = false;
	while (*c < chunks && (d->send[*c / 64] >> (*c % 64)) & 1 && *len < MIG_BLOCKS_MAX) {
		uint64_t at = off + *len, piece = d->src.b->size - at < BLOCK_DIRTY_CHUNK ? d->src.b->size - at : BLOCK_DIRTY_CHUNK;

		if ((rc = d->src.b->ops->copy_status(d->src.b, at, piece, &data, &n)))
			return rc;
		if (!data && n >= piece) {
			/* A zero chunk ends the run, or is one of its own. */
			if (!*len) {
				*zero = true;
				*len = (uint32_t)piece;
				d->send[*c / 64] &= ~(1ULL << (*c % 64));
				(*c)++;
			}
			break;
		}
		if ((rc = d->src.b->ops->copy_read(d->src.b, at, s->buf + BLOCKS_HEAD + *len, piece)))
			return rc;
		d->send[*c / 64] &= ~(1ULL << (*c % 64));
		*len += (uint32_t)piece;
		(*c)++;
	}
	return 0;
}

int storage_out_round(struct storage_out *s, mig_out_fn out, void *ctx)
{
	bool first = s->first;
	int rc = 0;

	s->first = false;
	atomic_store(&s->done, 0);
	for (unsigned i = 0; i < s->n && !rc; i++) {
		struct storage_disk *d = &s->disk[i];
		uint64_t chunks = (d->src.b->size + BLOCK_DIRTY_CHUNK - 1) >> BLOCK_DIRTY_SHIFT;

		for (uint64_t c = 0; c < chunks && !rc;) {
			uint64_t off = c << BLOCK_DIRTY_SHIFT;
			uint32_t len;
			bool zero;

			if (!((d->send[c / 64] >> (c % 64)) & 1)) {
				c++;
				continue;
			}
			if ((rc = gather(s, d, &c, chunks, &len, &zero)))
				break;
			atomic_fetch_add(&s->done, len);
			/* The destination's copy starts as zeroes. */
			if (len && !(zero && first))
				rc = send_run(s, i, off, len, zero, out, ctx);
		}
	}
	return rc;
}

/* ----------------------------------------------------------- destination */

static const uint8_t *get_str(const uint8_t *p, const uint8_t *end, char *buf, size_t cap)
{
	uint16_t n;

	if (!p || end - p < 2)
		return NULL;
	memcpy(&n, p, 2);
	n = le16toh(n);
	if ((size_t)(end - p - 2) < n || n >= cap || memchr(p + 2, 0, n))
		return NULL;
	memcpy(buf, p + 2, n);
	buf[n] = 0;
	return p + 2 + n;
}

/* Where file t (drive `id` when a disk, the source's `path`) goes here:
 * into t->path, or CV_EINPUT with *why. */
static int target_of(struct storage_target *t, const char *id, const char *path, const struct storage_dest *dest,
		     const char **why)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	char vd[8];

	snprintf(vd, sizeof(vd), "vd%c", 'a' + t->drive);
	for (unsigned k = 0; t->role == STORAGE_DISK && k < dest->nov; k++)
		if (!strcmp(dest->ov[k].drive, vd) || (*id && !strcmp(dest->ov[k].drive, id)))
			return snprintf(t->path, sizeof(t->path), "%s", dest->ov[k].path) < (int)sizeof(t->path)
				       ? 0
				       : CV_EINPUT;
	if (!dest->dir) {
		if (t->role == STORAGE_DISK)
			cv_err("the source sends its disk '%s' along (copy_storage), but this destination takes "
			       "disks only with --receive-dir DIR or --disk-override %s=PATH",
			       path, *id ? id : vd);
		else
			cv_err("the source sends its %s '%s' along (copy_storage), but this destination takes files "
			       "only with --receive-dir DIR",
			       t->role == STORAGE_KERNEL ? "kernel" : "initrd", path);
		*why = "this destination takes no files (start it with --receive-dir DIR)";
		return CV_EINPUT;
	}
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..") ||
	    snprintf(t->path, sizeof(t->path), "%s/%s", dest->dir, base) >= (int)sizeof(t->path)) {
		*why = "a bad file name";
		return CV_EINPUT;
	}
	return 0;
}

static int make_target(struct storage_target *t, const char **why)
{
	struct qcow2_create_opts o = { .size = t->size };
	struct stat st;
	int rc;

	if (!stat(t->path, &st) || errno != ENOENT) {
		cv_err("'%s' exists here already: the copy of the migrating VM's file would replace it "
		       "(--disk-override DRIVE=PATH puts a disk elsewhere)",
		       t->path);
		*why = "a copy would replace a file on the destination";
		return CV_EINPUT;
	}
	if ((rc = layer_tmp_name(t->path, t->tmp, sizeof(t->tmp))) ||
	    (rc = t->format == DISK_FORMAT_QCOW2 ? qcow2_create(t->tmp, &o) : raw_create(t->tmp, t->size, false))) {
		t->tmp[0] = 0;
		*why = "a disk's copy could not be created";
		return rc;
	}
	if ((rc = image_open(t->tmp, t->format == DISK_FORMAT_QCOW2 ? BLOCK_FORMAT_QCOW2 : BLOCK_FORMAT_RAW,
			     IMAGE_RW | IMAGE_NO_BACKING, &t->img))) {
		*why = "a disk's copy could not be opened";
		return rc;
	}
	return 0;
}

int storage_in_disks(struct storage_in *s, const uint8_t *rec, size_t len, const struct storage_dest *dest,
		     const char **why)
{
	const uint8_t *p = rec + 4, *end = rec + len;
	uint32_t n;
	int rc;

	*why = "a bad DISKS record";
	if (len < 4 || s->n)
		return CV_EINPUT;
	memcpy(&n, rec, 4);
	n = le32toh(n);
	if (!n || n > STORAGE_MAX)
		return CV_EINPUT;
	for (unsigned i = 0, seen = 0; i < n; i++) {
		struct storage_target *t = &s->disk[i];
		char path[PATH_MAX], id[CV_DISK_ID_MAX + 1];
		uint64_t size;
		uint8_t fmt, role, drive;

		if (end - p < 11)
			return CV_EINPUT;
		memcpy(&size, p, 8);
		size = le64toh(size);
		fmt = p[8];
		role = p[9];
		drive = p[10];
		p = get_str(get_str(p + 11, end, path, sizeof(path)), end, id, sizeof(id));
		/* Each drive, the kernel and the initrd once at most. */
		if (!p || !size || size > MAX_DISK_SIZE || (fmt != DISK_FMT_RAW && fmt != DISK_FMT_QCOW2) ||
		    !*path || role > STORAGE_INITRD || (role == STORAGE_DISK && drive >= CV_MAX_DISKS) ||
		    (role != STORAGE_DISK && drive) ||
		    (seen & (1u << (role == STORAGE_DISK ? drive : CV_MAX_DISKS + role))))
			return CV_EINPUT;
		seen |= 1u << (role == STORAGE_DISK ? drive : CV_MAX_DISKS + role);
		t->size = size;
		t->format = fmt == DISK_FMT_QCOW2 ? DISK_FORMAT_QCOW2 : DISK_FORMAT_RAW;
		t->role = (enum storage_role)role;
		t->drive = drive;
		if ((rc = target_of(t, id, path, dest, why)))
			return rc;
		s->n = i + 1;
		if ((rc = make_target(t, why)))
			return rc;
	}
	return p == end ? 0 : CV_EINPUT;
}

int storage_in_blocks(struct storage_in *s, const uint8_t *rec, size_t len, const char **why)
{
	uint32_t disk, flags, n;
	uint64_t off;
	struct storage_target *t;
	int rc;

	*why = "a BLOCKS record out of range";
	if (len < BLOCKS_HEAD)
		return CV_EINPUT;
	memcpy(&disk, rec, 4);
	memcpy(&flags, rec + 4, 4);
	memcpy(&off, rec + 8, 8);
	memcpy(&n, rec + 16, 4);
	disk = le32toh(disk);
	flags = le32toh(flags);
	off = le64toh(off);
	n = le32toh(n);
	if (disk >= s->n || (flags & ~MIG_BLOCKS_ZERO) || !n || n > MIG_BLOCKS_MAX)
		return CV_EINPUT;
	t = &s->disk[disk];
	if (off > t->size || n > t->size - off || len != BLOCKS_HEAD + (flags ? 0 : n))
		return CV_EINPUT;
	if (flags)
		rc = t->img->ops->write_zeroes(t->img, off, n, true);
	else
		rc = t->img->ops->pwritev(t->img, off, &(struct iovec){ .iov_base = (void *)(rec + BLOCKS_HEAD), .iov_len = n },
					 1);
	if (rc) {
		cv_err("migration: writing disk '%s': %s", t->tmp, strerror(-rc));
		*why = "a disk's copy could not be written";
		return CV_EFAIL;
	}
	return 0;
}

int storage_in_finish(struct storage_in *s, const char **why)
{
	for (unsigned i = 0; i < s->n; i++) {
		struct storage_target *t = &s->disk[i];
		int rc = t->img->ops->flush(t->img);

		if (image_close(t->img) || rc) {
			t->img = NULL;
			cv_err("migration: writing disk '%s' back failed", t->tmp);
			*why = "a disk's copy could not be written";
			return CV_EFAIL;
		}
		t->img = NULL;
		if (layer_publish(t->tmp, t->path, false)) {
			t->tmp[0] = 0; /* removed */
			*why = "a disk's copy could not be put in place";
			return CV_EFAIL;
		}
		t->tmp[0] = 0;
		t->published = true;
	}
	return 0;
}

void storage_in_discard(struct storage_in *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		struct storage_target *t = &s->disk[i];

		if (t->img)
			image_close(t->img);
		if (t->tmp[0])
			unlink(t->tmp);
		if (t->published)
			unlink(t->path);
	}
	memset(s, 0, sizeof(*s));
}
