/* cellvm disk convert SRC DST [--format raw|qcow2], and the copy loop
 * that snapshot commit shares. */
#include "disk/disk.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/nbd.h"
#include "block/qcow2.h"
#include "disk/progress.h"
#include "util/err.h"

#define CHUNK (2u << 20)

static bool all_zero(const uint8_t *p, size_t len)
{
	return !len || (p[0] == 0 && !memcmp(p, p + 1, len - 1));
}

int disk_copy(struct image *src, struct image *dst, bool chain, const char *label)
{
	uint8_t *buf = malloc(CHUNK);
	struct progress p;
	struct extent e;
	uint64_t off = 0;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	progress_start(&p, label, src->size);
	while (!rc && off < src->size) {
		uint64_t len = src->size - off < CHUNK ? src->size - off : CHUNK;
		struct iovec v = { .iov_base = buf };

		rc = chain ? image_chain_status(src, off, len, &e) : src->ops->status(src, off, len, &e);
		if (rc)
			break;
		v.iov_len = e.len;
		if (e.kind == EXTENT_DATA) {
			/* Zero blocks stay holes (the destination is new or they are written as zeroes below). */
			rc = src->ops->preadv(src, off, &v, 1);
			if (!rc && !(chain && all_zero(buf, e.len)))
				rc = dst->ops->pwritev(dst, off, &v, 1);
		} else if (e.kind == EXTENT_ZERO && !chain) {
			rc = dst->ops->write_zeroes(dst, off, e.len, true);
		}
		off += e.len;
		progress_update(&p, off);
	}
	progress_end(&p);
	free(buf);
	if (!rc)
		rc = dst->ops->flush(dst);
	return rc;
}

/* Into an existing export: nothing to create or rename. It is zeroed
 * first, as the copy skips what reads as zeroes. */
static int convert_to_export(const char *from, const char *uri, enum block_format f)
{
	struct image *src, *dst;
	int rc;

	if (f != BLOCK_FORMAT_RAW) {
		cv_err("cannot convert to '%s': an NBD export is raw (--format raw)", uri);
		return CV_EINPUT;
	}
	if ((rc = image_open(from, BLOCK_FORMAT_AUTO, 0, &src)))
		return rc;
	if ((rc = image_open(uri, BLOCK_FORMAT_RAW, IMAGE_RW, &dst))) {
		image_close(src);
		return rc;
	}
	if (dst->readonly || dst->size < src->size) {
		cv_err("cannot convert to '%s': the export is %s", uri,
		       dst->readonly ? "read-only" : "smaller than the source");
		rc = CV_EINPUT;
	} else if ((rc = dst->ops->write_zeroes(dst, 0, src->size, true)) ||
		   (rc = disk_copy(src, dst, true, "converting"))) {
		cv_err("cannot convert '%s' to '%s': %s", from, uri, strerror(-rc));
		rc = CV_EFAIL;
	}
	image_close(dst);
	image_close(src);
	return rc;
}

int disk_convert(int argc, char **argv)
{
	const char *pos[2], *format = NULL;
	enum block_format f = BLOCK_FORMAT_QCOW2;
	struct disk_opt opts[] = { { "--format", &format, NULL }, { NULL, NULL, NULL } };
	struct image *src, *dst;
	char tmp[PATH_MAX];
	int npos, rc;

	if ((rc = disk_args("convert", argc, argv, opts, pos, 2, 2, &npos)) ||
	    (format && (rc = disk_parse_format(format, &f))))
		return disk_exit(rc);
	if (nbd_image_is_uri(pos[1]))
		return disk_exit(convert_to_export(pos[0], pos[1], format ? f : BLOCK_FORMAT_RAW));
	if (access(pos[1], F_OK) == 0) {
		cv_err("'%s' already exists", pos[1]);
		return DISK_EXIT_USAGE;
	}
	if ((rc = image_open(pos[0], BLOCK_FORMAT_AUTO, 0, &src)))
		return disk_exit(rc);
	if ((rc = layer_tmp_name(pos[1], tmp, sizeof(tmp))) ||
	    (rc = disk_make_image(tmp, f, src->size, NULL, BLOCK_FORMAT_AUTO, false))) {
		image_close(src);
		return disk_exit(rc);
	}
	if ((rc = image_open(tmp, f, IMAGE_RW, &dst))) {
		image_close(src);
		unlink(tmp);
		return disk_exit(rc);
	}
	rc = disk_copy(src, dst, true, "converting");
	if (rc)
		cv_err("cannot convert '%s' to '%s': %s", pos[0], pos[1], strerror(-rc));
	if (image_close(dst) && !rc)
		rc = -EIO;
	image_close(src);
	if (rc) {
		unlink(tmp);
		return DISK_EXIT_FAIL;
	}
	return disk_exit(layer_publish(tmp, pos[1], false));
}
