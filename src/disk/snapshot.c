/* cellvm disk snapshot create|list|revert|commit: the base + delta model.
 *
 * The VM always uses the same path IMG. `snapshot create IMG NAME` gives
 * IMG's current file the name IMG.NAME (a hard link, then an atomic
 * rename of a new overlay over IMG): IMG.NAME is the frozen state, and IMG
 * becomes an empty qcow2 delta whose backing file is IMG.NAME. Later
 * snapshots stack: IMG -> IMG.s2 -> IMG.s1 -> (IMG's original backing).
 * `revert IMG [NAME]` replaces IMG by a new empty delta on IMG.NAME (the
 * newest snapshot by default) and deletes the snapshots newer than NAME.
 * `commit IMG` copies the delta into the newest snapshot and renames that
 * file to IMG, so the snapshot is merged away. At every moment IMG is a
 * complete image with the right content: a crash leaves at worst a stray
 * file. Every command refuses images that a VM (or anything else) has
 * open, through the images' locks. */
#include "disk/disk.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "util/err.h"

/* The snapshot NAME of a layer at `path` of image `img_path`: the part
 * after "IMG." when the layer is IMG.NAME in IMG's directory; NULL if the
 * layer is not one of IMG's snapshots. */
static const char *snapshot_of(const char *img_path, const char *path)
{
	size_t n = strlen(img_path);

	/* Snapshot layers name their backing by its base name, so the path
	 * they were opened with is IMG's directory part + "IMG.NAME". */
	if (strncmp(path, img_path, n) == 0 && path[n] == '.' && path[n + 1] && !strchr(path + n + 1, '/'))
		return path + n + 1;
	return NULL;
}

static int check_name(const char *name)
{
	if (!layer_name_ok(name)) {
		cv_err("invalid snapshot name '%s': use 1..64 letters, digits, '.', '_' or '-', not starting with '.'", name);
		return CV_EINPUT;
	}
	return 0;
}

static int join(char *buf, size_t len, const char *img, const char *name)
{
	int n = snprintf(buf, len, "%s.%s", img, name);

	if (n < 0 || (size_t)n >= len) {
		cv_err("path '%s.%s' is too long", img, name);
		return CV_EINPUT;
	}
	return 0;
}

static enum block_format format_of(struct image *l)
{
	return qcow2_of(l) ? BLOCK_FORMAT_QCOW2 : BLOCK_FORMAT_RAW;
}

static int snap_create(const char *img_path, const char *name)
{
	char snap[PATH_MAX];
	struct image *img;
	int rc;

	if ((rc = check_name(name)) || (rc = join(snap, sizeof(snap), img_path, name)))
		return rc;
	/* Held open (locked) until IMG is the new delta. */
	if ((rc = image_open(img_path, BLOCK_FORMAT_AUTO, IMAGE_EXCL, &img)))
		return rc;
	rc = layer_freeze(img_path, snap, format_of(img), img->size);
	image_close(img);
	if (rc)
		return rc;
	printf("snapshot '%s' created: %s is frozen, %s is a new delta on it\n", name, snap, img_path);
	return 0;
}

static int snap_list(const char *img_path)
{
	struct image *img;
	int rc;

	if ((rc = image_open(img_path, BLOCK_FORMAT_AUTO, 0, &img)))
		return rc;
	printf("%s: current state (%s, %llu bytes allocated)\n", img_path, img->ops->name,
	       (unsigned long long)disk_allocated(img));
	for (struct image *l = img->backing; l; l = l->backing) {
		const char *name = snapshot_of(img_path, l->path);
		struct stat st;
		char when[32] = "?";

		if (!fstat(l->fd, &st))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&st.st_mtime));
		if (name)
			printf("snapshot %s: %s (%s, last written %s)\n", name, l->path, l->ops->name, when);
		else
			printf("base: %s (%s)\n", l->path, l->ops->name);
	}
	image_close(img);
	return 0;
}

static int snap_revert(const char *img_path, const char *name)
{
	char snap[PATH_MAX];
	struct image *img, *target = NULL;
	int rc;

	if (name && ((rc = check_name(name)) || (rc = join(snap, sizeof(snap), img_path, name))))
		return rc;
	if ((rc = image_open(img_path, BLOCK_FORMAT_AUTO, IMAGE_EXCL, &img)))
		return rc;
	for (struct image *l = img->backing; l && snapshot_of(img_path, l->path); l = l->backing) {
		if (!name || !strcmp(snapshot_of(img_path, l->path), name)) {
			target = l;
			break;
		}
	}
	if (!target) {
		if (name)
			cv_err("'%s' has no snapshot '%s'", img_path, name);
		else
			cv_err("'%s' has no snapshot to revert to", img_path);
		image_close(img);
		return CV_EINPUT;
	}
	rc = layer_new_delta(img_path, target->path, format_of(target), target->size);
	if (!rc) {
		/* The layers between IMG and the target are no longer used. */
		for (struct image *l = img->backing; l != target; l = l->backing) {
			printf("removed snapshot '%s' (%s)\n", snapshot_of(img_path, l->path), l->path);
			unlink(l->path);
		}
		printf("%s reverted to snapshot '%s'\n", img_path, snapshot_of(img_path, target->path));
	}
	image_close(img);
	return rc;
}

static int snap_commit(const char *img_path)
{
	struct image *delta, *base;
	char base_path[PATH_MAX];
	const char *name;
	int rc;

	/* This layer only: the base is opened writable below. */
	if ((rc = image_open(img_path, BLOCK_FORMAT_AUTO, IMAGE_EXCL | IMAGE_NO_BACKING, &delta)))
		return rc;
	if (!qcow2_of(delta) || !qcow2_of(delta)->h.backing_file[0] ||
	    !image_backing_path(img_path, qcow2_of(delta)->h.backing_file, base_path, sizeof(base_path)) ||
	    !(name = snapshot_of(img_path, base_path))) {
		cv_err("'%s' has no snapshot to commit into (its backing file is not %s.NAME)", img_path, img_path);
		image_close(delta);
		return CV_EINPUT;
	}
	if ((rc = image_open(base_path, BLOCK_FORMAT_AUTO, IMAGE_RW, &base))) {
		image_close(delta);
		return rc;
	}
	if (base->size < delta->size && (rc = base->ops->grow(base, delta->size)))
		cv_err("cannot grow '%s': %s", base_path, strerror(-rc));
	if (!rc && (rc = disk_copy(delta, base, false, "committing")))
		cv_err("cannot commit '%s' into '%s': %s", img_path, base_path, strerror(-rc));
	if (image_close(base) && !rc)
		rc = -EIO;
	/* Until this rename, IMG (the delta over the base) reads the same. */
	if (!rc && rename(base_path, img_path) < 0) {
		rc = -errno;
		cv_err("cannot rename '%s' to '%s': %s", base_path, img_path, strerror(errno));
	}
	image_close(delta);
	if (rc)
		return CV_EFAIL;
	printf("committed: snapshot '%s' merged into %s\n", name, img_path);
	return 0;
}

int disk_snapshot(int argc, char **argv)
{
	const char *pos[3];
	int npos, rc;

	if ((rc = disk_args("snapshot", argc, argv, NULL, pos, 2, 3, &npos)) ||
	    (rc = disk_need_file("snapshot", pos[1])))
		return disk_exit(rc);
	if (!strcmp(pos[0], "create") && npos == 3)
		rc = snap_create(pos[1], pos[2]);
	else if (!strcmp(pos[0], "list") && npos == 2)
		rc = snap_list(pos[1]);
	else if (!strcmp(pos[0], "revert"))
		rc = snap_revert(pos[1], npos == 3 ? pos[2] : NULL);
	else if (!strcmp(pos[0], "commit") && npos == 2)
		rc = snap_commit(pos[1]);
	else {
		cv_err("disk snapshot: expected create IMG NAME, list IMG, revert IMG [NAME] or commit IMG");
		rc = CV_EINPUT;
	}
	return disk_exit(rc);
}
