/* cellvm disk resize IMG SIZE|+SIZE: grows only. */
#include "disk/disk.h"

#include <stdio.h>
#include <string.h>

#include "util/err.h"
#include "util/size.h"

int disk_resize(int argc, char **argv)
{
	const char *pos[2];
	struct image *img;
	uint64_t size, cur;
	bool rel;
	int npos, rc;
	char a[32], b[32];

	if ((rc = disk_args("resize", argc, argv, NULL, pos, 2, 2, &npos)))
		return disk_exit(rc);
	rel = pos[1][0] == '+';
	if ((rc = disk_need_file("resize", pos[0])) || (rc = disk_parse_size(pos[1] + rel, &size)) ||
	    (rc = image_open(pos[0], BLOCK_FORMAT_AUTO, IMAGE_RW, &img)))
		return disk_exit(rc);
	cur = img->size;
	if (rel && size > UINT64_MAX - cur) {
		cv_err("invalid size '%s': too large", pos[1]);
		image_close(img);
		return DISK_EXIT_USAGE;
	}
	if (rel)
		size += cur;
	if (size < cur) {
		size_format(cur, a, sizeof(a));
		size_format(size, b, sizeof(b));
		cv_err("cannot shrink '%s' from %s to %s (only growing is supported)", pos[0], a, b);
		image_close(img);
		return DISK_EXIT_USAGE;
	}
	rc = size == cur ? 0 : img->ops->grow(img, size);
	if (rc)
		cv_err("cannot resize '%s': %s", pos[0], strerror(-rc));
	if (image_close(img) && !rc)
		rc = -1;
	return rc ? DISK_EXIT_FAIL : DISK_EXIT_OK;
}
