/* cellvm disk check IMG
 *
 * Exit status: 0 when the image is consistent, leaked clusters included
 * (they only waste space; they are counted on stdout); 1 when it is
 * corrupt (each problem is listed); 2 when it cannot be opened at all. */
#include "disk/disk.h"

#include <stdio.h>
#include <string.h>

#include "block/qcow2.h"
#include "util/err.h"

static void report(void *ctx, const char *line)
{
	(void)ctx;
	printf("ERROR %s\n", line);
}

int disk_check(int argc, char **argv)
{
	const char *pos[1];
	struct qcow2_check_result r;
	struct image *img;
	int npos, rc;

	if ((rc = disk_args("check", argc, argv, NULL, pos, 1, 1, &npos)) ||
	    (rc = image_open(pos[0], BLOCK_FORMAT_AUTO, IMAGE_NO_BACKING, &img)))
		return disk_exit(rc);
	if (!qcow2_of(img)) {
		printf("%s: raw image, no metadata to check\n", pos[0]);
		image_close(img);
		return DISK_EXIT_OK;
	}
	rc = qcow2_check(img, report, NULL, &r);
	image_close(img);
	if (rc) {
		cv_err("cannot check '%s': %s", pos[0], strerror(-rc));
		return DISK_EXIT_FAIL;
	}
	printf("%llu/%llu clusters allocated (%.2f%%), %llu compressed\n", (unsigned long long)r.allocated,
	       (unsigned long long)r.total, r.total ? 100.0 * (double)r.allocated / (double)r.total : 0.0,
	       (unsigned long long)r.compressed);
	if (r.leaks)
		printf("%llu leaked clusters (harmless: space that is not reused)\n", (unsigned long long)r.leaks);
	if (r.errors) {
		printf("%llu errors: the image is corrupt\n", (unsigned long long)r.errors);
		return DISK_EXIT_FAIL;
	}
	printf("no errors\n");
	return DISK_EXIT_OK;
}
