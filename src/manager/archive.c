#include "manager/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "manager/bundle.h"
#include "block/image.h"
#include "block/layer.h"
#include "manager/copy.h"
#include "manager/snapshot.h"
#include "manager/vmproc.h"
#include "util/err.h"

/* vm.json's files, disk layers and snapshots' files. */
#define MAX_MEMBERS 1024

/* A name that stays inside the bundle directory. */
static bool plain_name(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	return len && len < 128 && s[0] != '.' &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

/* ------------------------------------------------------------- export */

struct member {
	char src[PATH_MAX]; /* where the file is now */
	char name[192];     /* its name in the archive, under NAME/ */
};

struct members {
	struct member *m;
	unsigned n;
};

/* Adds src as `name`; the same file reached twice (a layer under two
 * images) is added once. */
static int add_member(struct members *ms, const char *src, const char *name)
{
	for (unsigned i = 0; i < ms->n; i++) {
		if (strcmp(ms->m[i].name, name))
			continue;
		if (!strcmp(ms->m[i].src, src))
			return 0;
		cv_err("cannot export: two files would be called '%s'", name);
		return CV_EFAIL;
	}
	if (ms->n == MAX_MEMBERS) {
		cv_err("cannot export: more than %d files", MAX_MEMBERS);
		return CV_EFAIL;
	}
	if (path_fmt(ms->m[ms->n].src, sizeof(ms->m[0].src), "%s", src) ||
	    path_fmt(ms->m[ms->n].name, sizeof(ms->m[0].name), "%s", name))
		return CV_EINPUT;
	ms->n++;
	return 0;
}

/* A backing file named by its base name travels with its image; one named
 * by a path stays where it is. */
static int add_layer(void *ctx, const char *path, const char *name)
{
	if (!plain_name(name)) {
		cv_warn("the exported disk refers to '%s', which stays outside the archive", path);
		return 0;
	}
	return add_member(ctx, path, name);
}

struct writer {
	struct archive *a;
	int fd;
	long long pos; /* of the logical stream written so far */
	const char *src;
};

static int write_zeros(struct writer *w, long long upto)
{
	static const char zeros[1 << 16];

	/* The pax writer drops bytes that fall in declared holes; they must
	 * still be fed in order. */
	while (w->pos < upto) {
		size_t n = upto - w->pos < (long long)sizeof(zeros) ? (size_t)(upto - w->pos) : sizeof(zeros);

		if (archive_write_data(w->a, zeros, n) < 0)
			return CV_EFAIL;
		w->pos += (long long)n;
	}
	return 0;
}

static int write_extent(void *ctx, long long off, long long len)
{
	struct writer *w = ctx;
	char buf[1 << 16];

	if (write_zeros(w, off))
		return CV_EFAIL;
	while (len > 0) {
		ssize_t n = pread(w->fd, buf, len < (long long)sizeof(buf) ? (size_t)len : sizeof(buf), off);

		if (n <= 0) {
			cv_err("cannot read '%s': %s", w->src, n < 0 ? strerror(errno) : "file shrank");
			return CV_EFAIL;
		}
		if (archive_write_data(w->a, buf, (size_t)n) < 0)
			return CV_EFAIL;
		off += n;
		len -= n;
		w->pos = off;
	}
	return 0;
}

struct sparse_map {
	struct archive_entry *e;
	long long data; /* bytes in extents */
};

static int add_extent_to_map(void *ctx, long long off, long long len)
{
	struct sparse_map *m = ctx;

	archive_entry_sparse_add_entry(m->e, off, len);
	m->data += len;
	return 0;
}

static struct archive_entry *entry(const char *top, const char *name, mode_t type, long long size)
{
	struct archive_entry *e = archive_entry_new();
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", top, name);
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
	archive_entry_set_size(e, size);
	archive_entry_set_mtime(e, time(NULL), 0);
	return e;
}

static int add_file(struct archive *a, const char *top, const struct member *m)
{
	struct writer w = { .a = a, .src = m->src };
	struct archive_entry *e;
	struct stat st;
	int rc;

	if ((w.fd = open(m->src, O_RDONLY | O_CLOEXEC)) < 0 || fstat(w.fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cv_err("cannot export '%s': %s", m->src, w.fd < 0 ? strerror(errno) : "not a regular file");
		if (w.fd >= 0)
			close(w.fd);
		return CV_EFAIL;
	}
	e = entry(top, m->name, AE_IFREG, st.st_size);
	/* Snapshots know their disks by size and modification time. */
	archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	/* A map only for files with holes; an all-hole file is described by
	 * one empty extent at its end (GNU tar's convention). */
	struct sparse_map map = { .e = e };

	for_each_extent(w.fd, st.st_size, add_extent_to_map, &map);
	if (map.data == st.st_size)
		archive_entry_sparse_clear(e);
	else if (map.data == 0)
		archive_entry_sparse_add_entry(e, st.st_size, 0);
	rc = archive_write_header(a, e) == ARCHIVE_OK ? 0 : CV_EFAIL;
	if (!rc)
		rc = for_each_extent(w.fd, st.st_size, write_extent, &w);
	if (!rc)
		rc = write_zeros(&w, st.st_size);
	archive_entry_free(e);
	close(w.fd);
	return rc;
}

static int add_buffer(struct archive *a, const char *top, const char *name, const char *data)
{
	struct archive_entry *e = entry(top, name, AE_IFREG, (long long)strlen(data));
	int rc = archive_write_header(a, e) == ARCHIVE_OK &&
			 archive_write_data(a, data, strlen(data)) == (la_ssize_t)strlen(data)
		 ? 0
		 : CV_EFAIL;

	archive_entry_free(e);
	return rc;
}

/* Points a path field of vm.json at a member: relative paths are bundle
 * files, absolute ones (referenced disks) are copied in as `as`. */
static int take(json_t *obj, const char *field, const char *dir, const char *as, struct members *ms)
{
	const char *p = json_string_value(json_object_get(obj, field));
	char src[PATH_MAX];
	int rc;

	if (!p)
		return 0;
	if (*p != '/' && !plain_name(p)) {
		cv_err("broken bundle: '%s' is not a file of the bundle", p);
		return CV_EFAIL;
	}
	if ((rc = *p == '/' ? path_fmt(src, sizeof(src), "%s", p) : path_fmt(src, sizeof(src), "%s/%s", dir, p)) ||
	    (rc = add_member(ms, src, *p == '/' ? as : p)))
		return rc;
	json_object_set_new(obj, field, json_string(ms->m[ms->n - 1].name));
	return 0;
}

/* Each live snapshot's files, and the disk layers it froze. Their state
 * names the disks by the paths the VM had: referenced disks would not be
 * found under their new names. */
static int take_snapshots(const char *name, const char *dir, json_t *drives, bool referenced, struct members *ms)
{
	static const char *const files[] = { "state", "memory", SNAPSHOT_META };
	json_t *names, *v, *d;
	size_t i, k;
	int rc;

	if ((rc = snapshot_names(name, &names)))
		return rc;
	if (json_array_size(names) && referenced) {
		cv_err("cannot export VM '%s' with snapshots: it has referenced disks, which its snapshots name by "
		       "their paths on this host (delete the snapshots, or create the VM with copied disks)",
		       name);
		rc = CV_EINPUT;
	}
	json_array_foreach(names, i, v)
	{
		const char *snap = json_string_value(v);
		char src[PATH_MAX], as[192];

		for (unsigned f = 0; !rc && f < sizeof(files) / sizeof(files[0]); f++)
			if (!(rc = path_fmt(src, sizeof(src), "%s/%s/%s/%s", dir, BUNDLE_SNAPSHOTS, snap, files[f])) &&
			    !(rc = path_fmt(as, sizeof(as), "%s/%s/%s", BUNDLE_SNAPSHOTS, snap, files[f])))
				rc = add_member(ms, src, as);
		json_array_foreach(drives, k, d)
		{
			struct stat st;

			if (rc || (rc = path_fmt(as, sizeof(as), "%s.%s",
						 json_string_value(json_object_get(d, "path_on_host")), snap)) ||
			    (rc = path_fmt(src, sizeof(src), "%s/%s", dir, as)))
				break;
			if (stat(src, &st) == 0 && !(rc = add_member(ms, src, as)))
				rc = image_walk_backing(src, add_layer, ms);
		}
		if (rc)
			break;
	}
	json_decref(names);
	return rc;
}

static int collect(const char *name, json_t *doc, const char *dir, struct members *ms)
{
	json_t *boot = json_object_get(doc, "boot-source"), *drives = json_object_get(doc, "drives"), *d;
	json_t *storage = json_object_get(json_object_get(doc, "cellvm"), "drives");
	bool referenced = false;
	size_t i;
	int rc;

	ms->n = 0;
	if ((rc = take(boot, "kernel_image_path", dir, "kernel", ms)) ||
	    (rc = take(boot, "initrd_path", dir, "initrd", ms)))
		return rc;
	json_array_foreach(drives, i, d)
	{
		const char *id = json_string_value(json_object_get(d, "drive_id"));
		const char *p = json_string_value(json_object_get(d, "path_on_host"));
		char as[128];

		if (!plain_name(id)) {
			cv_err("broken bundle: bad drive_id");
			return CV_EFAIL;
		}
		referenced = referenced || (p && *p == '/');
		if ((rc = path_fmt(as, sizeof(as), "%s.img", id)) || (rc = take(d, "path_on_host", dir, as, ms)) ||
		    (rc = image_walk_backing(ms->m[ms->n - 1].src, add_layer, ms)))
			return rc;
		if (storage)
			json_object_set_new(storage, id, json_string("copied"));
	}
	return take_snapshots(name, dir, drives, referenced, ms);
}

static int bundle_export(const char *name, const char *file)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	static struct member m[MAX_MEMBERS];
	struct members ms = { .m = m };
	struct vm_status st;
	struct archive *a = NULL;
	struct archive_entry *e;
	json_t *doc = NULL;
	char *text = NULL;
	int rc, fd;

	if ((rc = bundle_require(name)) || (rc = bundle_dir(name, dir, sizeof(dir))) ||
	    (rc = vmproc_status(name, &st)))
		return rc;
	if (st.pid) {
		cv_err("VM '%s' is %s: stop it before exporting (its disks are in use)", name, vm_state_name(st.state));
		return CV_EINPUT;
	}
	if ((rc = bundle_load(name, &doc)) || (rc = collect(name, doc, dir, &ms)))
		goto out;
	if (!(text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS))) {
		rc = CV_EFAIL;
		goto out;
	}
	/* Written beside the target and renamed: no half archive on failure. */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", file) >= sizeof(tmp) || (fd = mkstemp(tmp)) < 0) {
		cv_err("invalid export file '%s': %s", file, strerror(errno));
		rc = CV_EINPUT;
		goto out;
	}
	fchmod(fd, 0644);
	a = archive_write_new();
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK || archive_write_open_fd(a, fd) != ARCHIVE_OK)
		rc = CV_EFAIL;
	e = entry(name, "", AE_IFDIR, 0);
	if (!rc && archive_write_header(a, e) != ARCHIVE_OK)
		rc = CV_EFAIL;
	archive_entry_free(e);
	if (!rc)
		rc = add_buffer(a, name, BUNDLE_CONFIG, text);
	for (unsigned i = 0; !rc && i < ms.n; i++)
		rc = add_file(a, name, &m[i]);
	if (archive_write_close(a) != ARCHIVE_OK && !rc)
		rc = CV_EFAIL;
	if (rc && archive_error_string(a))
		cv_err("cannot write '%s': %s", file, archive_error_string(a));
	if (fsync(fd) < 0 && !rc)
		rc = CV_EFAIL;
	close(fd);
	if (!rc && rename(tmp, file) < 0) {
		cv_err("cannot write '%s': %s", file, strerror(errno));
		rc = CV_EINPUT;
	}
	if (rc)
		unlink(tmp);
	else
		printf("exported VM %s to %s\n", name, file);
out:
	if (a)
		archive_write_free(a);
	free(text);
	json_decref(doc);
	return rc;
}

/* ------------------------------------------------------------- import */

/* Splits "TOP/base" (an optional "./" first); base may be empty (the
 * directory itself). */
static int split_member(const char *path, char *top, size_t cap, const char **base)
{
	const char *slash;

	if (!strncmp(path, "./", 2))
		path += 2;
	slash = strchr(path, '/');
	if (!slash || (size_t)(slash - path) >= cap)
		return -1;
	memcpy(top, path, (size_t)(slash - path));
	top[slash - path] = 0;
	*base = slash + 1;
	return 0;
}

static bool all_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	return !len || (p[0] == 0 && !memcmp(p, p + 1, len - 1));
}

/* What a member under the VM's directory may be: a plain file of the
 * bundle, the snapshots directory, a snapshot's directory or one of its
 * files. Returns the file type it must have, or 0 if it may not exist. */
static mode_t member_type(const char *base)
{
	static const char *const files[] = { "state", "memory", SNAPSHOT_META };
	size_t top = strlen(BUNDLE_SNAPSHOTS);
	const char *snap, *slash;
	char name[BUNDLE_NAME_MAX + 1];

	if (!*base)
		return AE_IFDIR;
	if (plain_name(base))
		return AE_IFREG;
	if (strncmp(base, BUNDLE_SNAPSHOTS, top) || base[top] != '/')
		return 0;
	snap = base + top + 1;
	if (!*snap)
		return AE_IFDIR;
	slash = strchr(snap, '/');
	if ((size_t)((slash ? slash : snap + strlen(snap)) - snap) > BUNDLE_NAME_MAX)
		return 0;
	snprintf(name, sizeof(name), "%.*s", (int)((slash ? slash : snap + strlen(snap)) - snap), snap);
	if (!layer_name_ok(name))
		return 0;
	if (!slash || !slash[1])
		return AE_IFDIR;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (!strcmp(slash + 1, files[i]))
			return AE_IFREG;
	return 0;
}

/* mkdir -p of the directories in `base` (relative to dir). */
static int make_parents(const char *dir, const char *base)
{
	char path[PATH_MAX];

	for (const char *p = strchr(base, '/'); p; p = strchr(p + 1, '/')) {
		if (path_fmt(path, sizeof(path), "%s/%.*s", dir, (int)(p - base), base))
			return CV_EINPUT;
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			cv_err("cannot create '%s': %s", path, strerror(errno));
			return CV_EFAIL;
		}
	}
	return 0;
}

static int extract(struct archive *a, struct archive_entry *e, const char *dir, const char *base)
{
	char path[PATH_MAX];
	const void *buf;
	size_t len;
	la_int64_t off;
	int fd, r, rc = 0;

	if (path_fmt(path, sizeof(path), "%s/%s", dir, base) || (rc = make_parents(dir, base)))
		return rc ? rc : CV_EINPUT;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
		cv_err("invalid archive: member '%s' %s", base, errno == EEXIST ? "appears twice" : strerror(errno));
		return errno == EEXIST ? CV_EINPUT : CV_EFAIL;
	}
	/* Blocks come with their offsets: holes are seeked over, not written,
	 * and so are blocks of zeros (an archive made without sparse maps). */
	while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
		if (all_zero(buf, len))
			continue;
		for (size_t done = 0; done < len && !rc;) {
			ssize_t w = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				cv_err("cannot write '%s': %s", path, strerror(errno));
				rc = CV_EFAIL;
			}
			done += w > 0 ? (size_t)w : 0;
		}
		if (rc)
			break;
	}
	if (!rc && r != ARCHIVE_EOF) {
		cv_err("invalid archive: %s", archive_error_string(a));
		rc = CV_EINPUT;
	}
	if (!rc && ftruncate(fd, archive_entry_size(e)) < 0)
		rc = CV_EFAIL;
	if (!rc && archive_entry_mtime_is_set(e) &&
	    futimens(fd, (struct timespec[]){ { .tv_nsec = UTIME_OMIT },
					      { archive_entry_mtime(e), archive_entry_mtime_nsec(e) } }) < 0)
		rc = CV_EFAIL;
	close(fd);
	return rc;
}

static bool member_ok(json_t *obj, const char *field, const char *dir, bool required)
{
	const char *p = json_string_value(json_object_get(obj, field));
	char path[PATH_MAX];
	struct stat st;

	if (!p)
		return !required && !json_object_get(obj, field);
	return plain_name(p) && !path_fmt(path, sizeof(path), "%s/%s", dir, p) && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The imported vm.json may only name files it came with. */
static int check_config(const char *dir)
{
	char path[PATH_MAX];
	json_t *doc, *boot, *d;
	json_error_t err;
	size_t i;
	bool ok;

	if (path_fmt(path, sizeof(path), "%s/%s", dir, BUNDLE_CONFIG))
		return CV_EINPUT;
	if (!(doc = json_load_file(path, JSON_REJECT_DUPLICATES, &err))) {
		cv_err("invalid archive: %s: %s", BUNDLE_CONFIG, err.text);
		return CV_EINPUT;
	}
	boot = json_object_get(doc, "boot-source");
	ok = json_is_object(doc) && member_ok(boot, "kernel_image_path", dir, true) &&
	     member_ok(boot, "initrd_path", dir, false) && !json_object_get(doc, "logger") &&
	     !json_object_get(doc, "metrics");
	json_array_foreach(json_object_get(doc, "drives"), i, d) ok = ok && member_ok(d, "path_on_host", dir, true);
	json_decref(doc);
	if (!ok) {
		cv_err("invalid archive: %s names files outside the archive (or has logger/metrics)", BUNDLE_CONFIG);
		return CV_EINPUT;
	}
	return 0;
}

static int bundle_import(const char *file, const char *name)
{
	char root[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX], top[BUNDLE_NAME_MAX + 2] = "", t[BUNDLE_NAME_MAX + 2];
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	const char *base;
	int rc, r;

	if (name && (rc = bundle_check_name(name)))
		goto free;
	if ((rc = bundle_root(root, sizeof(root))))
		goto free;
	archive_read_support_format_tar(a);
	archive_read_support_filter_all(a);
	if (archive_read_open_filename(a, file, 1 << 16) != ARCHIVE_OK) {
		cv_err("invalid archive '%s': %s", file, archive_error_string(a));
		rc = CV_EINPUT;
		goto free;
	}
	if (mkdir(root, 0755) < 0 && errno != EEXIST) {
		snprintf(tmp, sizeof(tmp), "%s", root);
		*strrchr(tmp, '/') = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			rc = CV_EFAIL;
		if (!rc && mkdir(root, 0755) < 0 && errno != EEXIST)
			rc = CV_EFAIL;
		if (rc) {
			cv_err("cannot create '%s': %s", root, strerror(errno));
			goto free;
		}
	}
	if ((rc = path_fmt(tmp, sizeof(tmp), "%s/.import.XXXXXX", root)))
		goto free;
	if (!mkdtemp(tmp)) {
		cv_err("cannot create a directory in '%s': %s", root, strerror(errno));
		rc = CV_EFAIL;
		goto free;
	}
	chmod(tmp, 0755);
	while (!rc && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *path = archive_entry_pathname(e);
		mode_t type = archive_entry_filetype(e);

		if (!path || split_member(path, t, sizeof(t), &base) || (*top && strcmp(t, top)) ||
		    archive_entry_hardlink(e) || archive_entry_symlink(e) || type != member_type(base)) {
			cv_err("invalid archive: member '%s' is not a plain file of one VM directory", path ? path : "?");
			rc = CV_EINPUT;
			break;
		}
		snprintf(top, sizeof(top), "%s", t);
		if (type == AE_IFREG)
			rc = extract(a, e, tmp, base);
	}
	if (!rc && r != ARCHIVE_EOF) {
		cv_err("invalid archive '%s': %s", file, archive_error_string(a));
		rc = CV_EINPUT;
	}
	if (!rc && !*top) {
		cv_err("invalid archive '%s': empty", file);
		rc = CV_EINPUT;
	}
	if (!rc && !name && bundle_check_name(top))
		rc = CV_EINPUT;
	if (!rc)
		rc = check_config(tmp);
	if (!rc && (rc = bundle_dir(name ? name : top, final, sizeof(final))) == 0 && rename(tmp, final) < 0) {
		cv_err(errno == EEXIST || errno == ENOTEMPTY ? "a VM named '%s' already exists" : "cannot import VM '%s'",
		       name ? name : top);
		rc = errno == EEXIST || errno == ENOTEMPTY ? CV_EINPUT : CV_EFAIL;
	}
	if (rc)
		remove_tree(tmp);
	else
		printf("imported VM %s\n", name ? name : top);
free:
	archive_read_free(a);
	return rc;
}

const struct archive_module cellvm_module_archive = { .export_bundle = bundle_export,
						       .import_bundle = bundle_import };
