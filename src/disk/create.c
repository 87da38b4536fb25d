/* cellvm disk create IMG [SIZE] [--format raw|qcow2] [--backing FILE] [--prealloc] */
#include "disk/disk.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "block/raw.h"
#include "util/err.h"

int disk_make_image(const char *path, enum block_format f, uint64_t size, const char *backing,
		    enum block_format backing_fmt, bool prealloc)
{
	struct qcow2_create_opts o = { .size = size, .backing = backing };
	struct image *img;
	int rc;

	if (f == BLOCK_FORMAT_RAW)
		return raw_create(path, size, prealloc);
	if (backing && backing_fmt != BLOCK_FORMAT_AUTO)
		o.backing_fmt = image_format_name(backing_fmt);
	if ((rc = qcow2_create(path, &o)) || !prealloc)
		return rc;
	/* Thick qcow2: every cluster allocated, the file fully allocated. */
	if ((rc = image_open(path, BLOCK_FORMAT_QCOW2, IMAGE_RW, &img)))
		return rc;
	rc = qcow2_preallocate(img);
	if (rc)
		cv_err("cannot preallocate '%s': %s", path, strerror(-rc));
	if (image_close(img) || rc) {
		unlink(path);
		return CV_EFAIL;
	}
	return 0;
}

int disk_create(int argc, char **argv)
{
	const char *pos[2], *format = NULL, *backing = NULL;
	enum block_format f = BLOCK_FORMAT_QCOW2, bf = BLOCK_FORMAT_AUTO;
	bool prealloc = false;
	struct disk_opt opts[] = {
		{ "--format", &format, NULL },
		{ "--backing", &backing, NULL },
		{ "--prealloc", NULL, &prealloc },
		{ NULL, NULL, NULL },
	};
	char tmp[PATH_MAX];
	uint64_t size = 0;
	int npos, rc;

	if ((rc = disk_args("create", argc, argv, opts, pos, 1, 2, &npos)) || (format && (rc = disk_parse_format(format, &f))))
		return disk_exit(rc);
	if (npos == 2 && (rc = disk_parse_size(pos[1], &size)))
		return disk_exit(rc);
	if (backing && f == BLOCK_FORMAT_RAW) {
		cv_err("a raw image cannot have a backing file (use --format qcow2)");
		return DISK_EXIT_USAGE;
	}
	if (backing && prealloc) {
		cv_err("--prealloc and --backing exclude each other (preallocated clusters hide the backing file)");
		return DISK_EXIT_USAGE;
	}
	if (!backing && npos < 2) {
		cv_err("disk create: missing SIZE");
		return DISK_EXIT_USAGE;
	}
	if ((rc = disk_need_file("create", pos[0])) || (backing && (rc = disk_need_file("create", backing))))
		return disk_exit(rc);
	if (access(pos[0], F_OK) == 0) {
		cv_err("'%s' already exists", pos[0]);
		return DISK_EXIT_USAGE;
	}
	if (backing) {
		/* The name is stored as given, so it resolves against IMG's directory. */
		char path[PATH_MAX];
		struct image *b;

		if (!image_backing_path(pos[0], backing, path, sizeof(path))) {
			cv_err("backing file name '%s' is too long", backing);
			return DISK_EXIT_USAGE;
		}
		if ((rc = image_open(path, BLOCK_FORMAT_AUTO, 0, &b)))
			return disk_exit(rc);
		bf = qcow2_of(b) ? BLOCK_FORMAT_QCOW2 : BLOCK_FORMAT_RAW;
		if (npos < 2)
			size = b->size;
		image_close(b);
	}
	if ((rc = layer_tmp_name(pos[0], tmp, sizeof(tmp))) ||
	    (rc = disk_make_image(tmp, f, size, backing, bf, prealloc)))
		return disk_exit(rc);
	return disk_exit(layer_publish(tmp, pos[0], false));
}
