#include "manager/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "block/image.h"
#include "block/layer.h"
#include "manager/bundle.h"
#include "manager/vmproc.h"
#include "util/err.h"

/* Writing a guest's whole memory can take a while on a slow disk. */
#define SNAPSHOT_TIMEOUT_MS (10 * 60 * 1000)
#define MAX_SNAPSHOTS 256

/* The host paths of NAME's disks. */
struct drives {
	char path[CV_MAX_DISKS][PATH_MAX];
	unsigned n;
};

static int load_drives(const char *name, struct drives *d)
{
	char dir[PATH_MAX];
	json_t *doc, *drive;
	size_t i;
	int rc;

	d->n = 0;
	if ((rc = bundle_dir(name, dir, sizeof(dir))) || (rc = bundle_load(name, &doc)))
		return rc;
	json_array_foreach(json_object_get(doc, "drives"), i, drive)
	{
		const char *p = json_string_value(json_object_get(drive, "path_on_host"));

		if (!p || d->n == CV_MAX_DISKS) {
			cv_err("VM '%s': broken %s: bad drive", name, BUNDLE_CONFIG);
			rc = CV_EFAIL;
			break;
		}
		if ((rc = *p == '/' ? path_fmt(d->path[d->n], PATH_MAX, "%s", p)
				    : path_fmt(d->path[d->n], PATH_MAX, "%s/%s", dir, p)))
			break;
		d->n++;
	}
	json_decref(doc);
	return rc;
}

static int snap_path(const char *name, const char *snap, const char *file, char *buf, size_t cap)
{
	char dir[PATH_MAX];
	int rc = bundle_dir(name, dir, sizeof(dir));

	return rc ? rc : path_fmt(buf, cap, "%s/%s/%s%s%s", dir, BUNDLE_SNAPSHOTS, snap, file ? "/" : "", file ? file : "");
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* A snapshot that exists (not deleted). */
static bool is_live(const char *name, const char *snap)
{
	char meta[PATH_MAX];

	return !snap_path(name, snap, SNAPSHOT_META, meta, sizeof(meta)) && exists(meta);
}

static int check_snap_name(const char *snap)
{
	if (!layer_name_ok(snap)) {
		cv_err("invalid snapshot name '%s': 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
		       snap);
		return CV_EINPUT;
	}
	return 0;
}

static int require_snapshot(const char *name, const char *snap)
{
	int rc;

	if ((rc = bundle_require(name)) || (rc = check_snap_name(snap)))
		return rc;
	if (!is_live(name, snap)) {
		cv_err("VM '%s' has no snapshot '%s' (see cellvm snapshot list %s)", name, snap, name);
		return CV_EINPUT;
	}
	return 0;
}

/* Every entry of the bundle's snapshots directory (live or not). */
static int list_dirs(const char *name, char (*out)[BUNDLE_NAME_MAX + 1], unsigned *n)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int rc;

	*n = 0;
	if ((rc = snap_path(name, "", NULL, dir, sizeof(dir))))
		return rc;
	if (!(d = opendir(dir)))
		return errno == ENOENT ? 0 : (cv_err("cannot read '%s': %s", dir, strerror(errno)), CV_EFAIL);
	while ((e = readdir(d)) && *n < MAX_SNAPSHOTS)
		if (layer_name_ok(e->d_name) && strlen(e->d_name) <= BUNDLE_NAME_MAX)
			snprintf(out[(*n)++], BUNDLE_NAME_MAX + 1, "%s", e->d_name);
	closedir(d);
	return 0;
}

static time_t created(const char *name, const char *snap)
{
	char meta[PATH_MAX];
	json_t *doc;
	time_t t = 0;

	if (snap_path(name, snap, SNAPSHOT_META, meta, sizeof(meta)) || !(doc = json_load_file(meta, 0, NULL)))
		return 0;
	t = (time_t)json_integer_value(json_object_get(doc, "created"));
	json_decref(doc);
	return t;
}

int snapshot_names(const char *name, json_t **names)
{
	static char dirs[MAX_SNAPSHOTS][BUNDLE_NAME_MAX + 1];
	time_t when[MAX_SNAPSHOTS];
	unsigned n, order[MAX_SNAPSHOTS], live = 0;
	int rc;

	if ((rc = list_dirs(name, dirs, &n)))
		return rc;
	for (unsigned i = 0; i < n; i++) {
		if (!is_live(name, dirs[i]))
			continue;
		when[i] = created(name, dirs[i]);
		/* Insertion sort by creation time, then name. */
		unsigned j = live++;

		while (j > 0 && (when[order[j - 1]] > when[i] ||
				 (when[order[j - 1]] == when[i] && strcmp(dirs[order[j - 1]], dirs[i]) > 0))) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	*names = json_array();
	for (unsigned i = 0; i < live; i++)
		json_array_append_new(*names, json_string(dirs[order[i]]));
	return 0;
}

/* ------------------------------------------------------------- layers */

static int layer_of(const char *img, const char *snap, char *buf, size_t cap)
{
	return path_fmt(buf, cap, "%s.%s", img, snap);
}

static bool same_file(const char *path, const struct stat *file)
{
	struct stat st;

	return stat(path, &st) == 0 && st.st_dev == file->st_dev && st.st_ino == file->st_ino;
}

static int is_file(void *ctx, const char *path, const char *name)
{
	(void)name;
	return same_file(path, ctx);
}

/* Whether `file` is `root` or in root's backing chain. */
static bool in_chain(const char *root, const struct stat *file)
{
	return same_file(root, file) || image_walk_backing(root, is_file, (void *)file) == 1;
}

/* Whether a disk or a live snapshot of disk `img` is built on `layer`. */
static bool layer_needed(const char *name, const char *img, const char *layer,
			 char (*dirs)[BUNDLE_NAME_MAX + 1], unsigned ndirs)
{
	char other[PATH_MAX];
	struct stat st;

	if (stat(layer, &st) < 0)
		return false;
	if (in_chain(img, &st))
		return true;
	for (unsigned i = 0; i < ndirs; i++)
		if (is_live(name, dirs[i]) && !layer_of(img, dirs[i], other, sizeof(other)) && exists(other) &&
		    in_chain(other, &st))
			return true;
	return false;
}

/* Removes the disk layers of deleted snapshots that nothing needs any
 * more, and the snapshot directories left with none. */
static int sweep(const char *name, const struct drives *d)
{
	static char dirs[MAX_SNAPSHOTS][BUNDLE_NAME_MAX + 1];
	unsigned n;
	int rc;

	if ((rc = list_dirs(name, dirs, &n)))
		return rc;
	for (unsigned i = 0; i < n; i++) {
		char layer[PATH_MAX], dir[PATH_MAX];
		bool kept = false;

		if (is_live(name, dirs[i]))
			continue;
		for (unsigned k = 0; k < d->n; k++) {
			if (layer_of(d->path[k], dirs[i], layer, sizeof(layer)) || !exists(layer))
				continue;
			if (layer_needed(name, d->path[k], layer, dirs, n))
				kept = true;
			else if (unlink(layer) < 0)
				cv_warn("cannot remove '%s': %s", layer, strerror(errno));
		}
		if (!kept && !snap_path(name, dirs[i], NULL, dir, sizeof(dir)))
			remove_tree(dir);
	}
	return 0;
}

static uint64_t allocated(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (uint64_t)st.st_blocks * 512;
}

/* What a snapshot takes on disk (state, memory, disk layers), and its
 * disk layers: how many and (if names) their file names. */
static uint64_t snapshot_bytes(const char *name, const char *snap, const struct drives *d, unsigned *frozen,
			       char *names, size_t cap)
{
	char file[PATH_MAX];
	uint64_t bytes = 0;
	size_t used = 0;

	*frozen = 0;
	for (const char *const *f = (const char *const[]){ "state", "memory", NULL }; *f; f++)
		if (!snap_path(name, snap, *f, file, sizeof(file)))
			bytes += allocated(file);
	for (unsigned k = 0; k < d->n; k++) {
		int n;

		if (layer_of(d->path[k], snap, file, sizeof(file)) || !exists(file))
			continue;
		bytes += allocated(file);
		(*frozen)++;
		n = names ? snprintf(names + used, cap - used, "%s%s", used ? "," : "", strrchr(file, '/') + 1) : 0;
		if (n > 0)
			used = used + (size_t)n < cap ? used + (size_t)n : cap - 1;
	}
	return bytes;
}

/* ------------------------------------------------------------- create */

static int default_name(const char *name, char *buf, size_t cap)
{
	char dir[PATH_MAX];

	for (unsigned i = 1; i <= MAX_SNAPSHOTS; i++) {
		snprintf(buf, cap, "s%u", i);
		if (!snap_path(name, buf, NULL, dir, sizeof(dir)) && !exists(dir))
			return 0;
	}
	cv_err("VM '%s' has %d snapshots: delete some first", name, MAX_SNAPSHOTS);
	return CV_EINPUT;
}

static int make_dir(const char *name, const char *snap, char *dir, size_t cap)
{
	char top[PATH_MAX];
	int rc;

	if ((rc = snap_path(name, "", NULL, top, sizeof(top))) || (rc = snap_path(name, snap, NULL, dir, cap)))
		return rc;
	if (mkdir(top, 0755) < 0 && errno != EEXIST) {
		cv_err("cannot create '%s': %s", top, strerror(errno));
		return CV_EFAIL;
	}
	if (mkdir(dir, 0755) == 0)
		return 0;
	if (errno != EEXIST) {
		cv_err("cannot create '%s': %s", dir, strerror(errno));
		return CV_EFAIL;
	}
	if (is_live(name, snap))
		cv_err("VM '%s' already has a snapshot '%s'", name, snap);
	else
		cv_err("snapshot name '%s' is still taken by a deleted snapshot whose disk layers are in use", snap);
	return CV_EINPUT;
}

static int write_meta(const char *name, const char *snap)
{
	char meta[PATH_MAX], tmp[PATH_MAX];
	json_t *doc = json_pack("{sI}", "created", (json_int_t)time(NULL));
	int rc;

	if ((rc = snap_path(name, snap, SNAPSHOT_META, meta, sizeof(meta))) ||
	    (rc = path_fmt(tmp, sizeof(tmp), "%s.tmp", meta)))
		goto out;
	if (json_dump_file(doc, tmp, JSON_INDENT(2)) || rename(tmp, meta) < 0) {
		cv_err("cannot write '%s': %s", meta, strerror(errno));
		unlink(tmp);
		rc = CV_EFAIL;
	}
out:
	json_decref(doc);
	return rc;
}

static int snap_create(const char *name, const char *given)
{
	char snap[BUNDLE_NAME_MAX + 1], dir[PATH_MAX], state[PATH_MAX], mem[PATH_MAX], *body = NULL;
	json_t *req;
	struct vm_status st;
	struct drives d;
	unsigned frozen = 0;
	uint64_t bytes;
	int rc, rc2 = 0;

	if ((rc = bundle_require(name)) || (rc = given ? check_snap_name(given) : default_name(name, snap, sizeof(snap))))
		return rc;
	if (given)
		snprintf(snap, sizeof(snap), "%s", given);
	if ((rc = load_drives(name, &d)) || (rc = vmproc_status(name, &st)))
		return rc;
	if (st.state != VMS_RUNNING && st.state != VMS_PAUSED) {
		cv_err("VM '%s' is %s: a snapshot saves a running VM (cellvm start %s)", name, vm_state_name(st.state),
		       name);
		return CV_EINPUT;
	}
	if ((rc = make_dir(name, snap, dir, sizeof(dir))))
		return rc;
	/* Paths relative to the bundle, the VM process's directory. */
	snprintf(state, sizeof(state), "%s/%s/state", BUNDLE_SNAPSHOTS, snap);
	snprintf(mem, sizeof(mem), "%s/%s/memory", BUNDLE_SNAPSHOTS, snap);
	req = json_pack("{ssssssss}", "snapshot_type", "Full", "snapshot_path", state, "mem_file_path", mem,
			"disk_layer", snap);
	if (!req || !(body = json_dumps(req, JSON_COMPACT)))
		rc = CV_EFAIL;
	json_decref(req);
	if (!rc && st.state == VMS_RUNNING)
		rc = vmproc_api(name, "PATCH", "/vm", "{\"state\":\"Paused\"}", VMPROC_API_TIMEOUT_MS);
	if (!rc)
		rc = vmproc_api(name, "PUT", "/snapshot/create", body, SNAPSHOT_TIMEOUT_MS);
	/* Running again, whatever happened. */
	if (st.state == VMS_RUNNING)
		rc2 = vmproc_api(name, "PATCH", "/vm", "{\"state\":\"Resumed\"}", VMPROC_API_TIMEOUT_MS);
	free(body);
	if (!rc)
		rc = write_meta(name, snap);
	if (rc) {
		remove_tree(dir);
		sweep(name, &d);
		return rc;
	}
	bytes = snapshot_bytes(name, snap, &d, &frozen, NULL, 0);
	printf("created snapshot %s of VM %s (%.1f MiB; %u disk%s frozen as IMG.%s)\n", snap, name,
	       (double)bytes / (1 << 20), frozen, frozen == 1 ? "" : "s", snap);
	return rc2;
}

/* ------------------------------------------------------------- list */

static int snap_list(const char *name)
{
	json_t *names, *v;
	struct drives d;
	size_t i;
	int rc;

	if ((rc = bundle_require(name)) || (rc = load_drives(name, &d)) || (rc = snapshot_names(name, &names)))
		return rc;
	if (!json_array_size(names))
		printf("VM %s has no snapshots\n", name);
	else
		printf("%-20s %-19s %10s  %s\n", "SNAPSHOT", "CREATED", "SIZE", "DISKS");
	json_array_foreach(names, i, v)
	{
		const char *snap = json_string_value(v);
		char when[32] = "?", disks[256] = "";
		time_t t = created(name, snap);
		unsigned frozen;
		uint64_t bytes;

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
		bytes = snapshot_bytes(name, snap, &d, &frozen, disks, sizeof(disks));
		printf("%-20s %-19s %8.1fMi  %s\n", snap, when, (double)bytes / (1 << 20), frozen ? disks : "-");
	}
	json_decref(names);
	return 0;
}

/* ------------------------------------------------------------- restore */

static int snap_restore(const char *name, const char *snap)
{
	char layer[PATH_MAX], undo[CV_MAX_DISKS][PATH_MAX], rel[PATH_MAX], tmp[PATH_MAX];
	bool moved[CV_MAX_DISKS] = { false };
	struct vm_status st;
	struct drives d;
	int rc;

	if ((rc = require_snapshot(name, snap)) || (rc = load_drives(name, &d)) || (rc = vmproc_status(name, &st)))
		return rc;
	if (st.pid) {
		cv_err("VM '%s' is %s: stop it first (cellvm stop %s)", name, vm_state_name(st.state), name);
		return CV_EINPUT;
	}
	/* Each frozen disk gets a new delta on its layer; the old file stays
	 * under a second name until the restored VM runs. */
	for (unsigned i = 0; !rc && i < d.n; i++) {
		struct image *img;

		if ((rc = layer_of(d.path[i], snap, layer, sizeof(layer))) || !exists(layer))
			continue;
		/* Not layer_new_delta's own temporary name. */
		if ((rc = layer_tmp_name(d.path[i], tmp, sizeof(tmp))) ||
		    (rc = path_fmt(undo[i], sizeof(undo[i]), "%s-undo", tmp)))
			break;
		unlink(undo[i]); /* a leftover of a crashed run of ours */
		if (link(d.path[i], undo[i]) < 0) {
			cv_err("cannot link '%s' to '%s': %s", d.path[i], undo[i], strerror(errno));
			rc = CV_EFAIL;
			break;
		}
		moved[i] = true;
		if (!(rc = image_open(layer, BLOCK_FORMAT_QCOW2, IMAGE_NO_BACKING, &img))) {
			uint64_t size = img->size;

			image_close(img);
			rc = layer_new_delta(d.path[i], layer, BLOCK_FORMAT_QCOW2, size);
		}
	}
	if (!rc && !(rc = path_fmt(rel, sizeof(rel), "%s/%s", BUNDLE_SNAPSHOTS, snap)))
		rc = vmproc_start(name, rel);
	for (unsigned i = 0; i < d.n; i++) {
		if (!moved[i])
			continue;
		if (rc && rename(undo[i], d.path[i]) < 0)
			cv_err("cannot rename '%s' back to '%s': %s", undo[i], d.path[i], strerror(errno));
		else if (!rc)
			unlink(undo[i]);
	}
	if (!rc)
		sweep(name, &d);
	return rc;
}

/* ------------------------------------------------------------- delete */

static int snap_delete(const char *name, const char *snap)
{
	char file[PATH_MAX];
	struct drives d;
	int rc;

	if ((rc = require_snapshot(name, snap)) || (rc = load_drives(name, &d)))
		return rc;
	/* Without its meta file the snapshot is gone, even if a crash
	 * interrupts the rest: the sweep finishes the job. */
	for (const char *const *f = (const char *const[]){ SNAPSHOT_META, "state", "memory", NULL }; *f; f++) {
		if ((rc = snap_path(name, snap, *f, file, sizeof(file))))
			return rc;
		if (unlink(file) < 0 && errno != ENOENT) {
			cv_err("cannot remove '%s': %s", file, strerror(errno));
			return CV_EFAIL;
		}
	}
	if ((rc = sweep(name, &d)))
		return rc;
	printf("deleted snapshot %s of VM %s\n", snap, name);
	for (unsigned i = 0; i < d.n; i++)
		if (!layer_of(d.path[i], snap, file, sizeof(file)) && exists(file))
			printf("kept %s: the disk is built on it\n", file);
	return 0;
}

int snapshot_main(int argc, char **argv)
{
	static const char shape[] = "create NAME [SNAP] | list NAME | restore NAME SNAP | delete NAME SNAP";
	const char *op = argc ? argv[0] : "";
	int rc;

	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-') {
			cv_err("snapshot: unknown option '%s' (cellvm snapshot %s)", argv[i], shape);
			return 2;
		}
	}
	if (!strcmp(op, "create") && (argc == 2 || argc == 3))
		rc = snap_create(argv[1], argc == 3 ? argv[2] : NULL);
	else if (!strcmp(op, "list") && argc == 2)
		rc = snap_list(argv[1]);
	else if (!strcmp(op, "restore") && argc == 3)
		rc = snap_restore(argv[1], argv[2]);
	else if (!strcmp(op, "delete") && argc == 3)
		rc = snap_delete(argv[1], argv[2]);
	else {
		cv_err("usage: cellvm snapshot %s", shape);
		return 2;
	}
	return rc == 0 ? 0 : rc == CV_EINPUT ? 2 : 1;
}
