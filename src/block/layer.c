#include "block/layer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "block/image.h"
#include "block/qcow2.h"
#include "util/err.h"

bool layer_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n && n <= 64 && s[0] != '.' &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int layer_tmp_name(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	int n = slash ? snprintf(buf, len, "%.*s/.%s.tmp-%d", (int)(slash - path), path, slash + 1, (int)getpid())
		      : snprintf(buf, len, ".%s.tmp-%d", path, (int)getpid());

	if (n < 0 || (size_t)n >= len) {
		cv_err("path '%s' is too long", path);
		return CV_EINPUT;
	}
	unlink(buf); /* a leftover of a crashed run of ours */
	return 0;
}

int layer_publish(const char *tmp, const char *path, bool replace)
{
	int rc = replace ? rename(tmp, path) : renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
	int e = errno;

	if (rc == 0)
		return 0;
	if (e == EEXIST)
		cv_err("'%s' already exists", path);
	else
		cv_err("cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
	unlink(tmp);
	return e == EEXIST ? CV_EINPUT : CV_EFAIL;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

int layer_new_delta(const char *img, const char *base, enum block_format base_fmt, uint64_t size)
{
	struct qcow2_create_opts o = { .size = size, .backing = base_name(base) };
	char tmp[4096];
	int rc;

	if (base_fmt != BLOCK_FORMAT_AUTO)
		o.backing_fmt = image_format_name(base_fmt);
	if ((rc = layer_tmp_name(img, tmp, sizeof(tmp))) || (rc = qcow2_create(tmp, &o)))
		return rc;
	return layer_publish(tmp, img, true);
}

int layer_freeze(const char *img, const char *layer, enum block_format fmt, uint64_t size)
{
	int rc;

	if (link(img, layer) < 0) {
		int e = errno;

		if (e == EEXIST)
			cv_err("'%s' already exists (a snapshot of that name?)", layer);
		else
			cv_err("cannot create '%s': %s", layer, strerror(e));
		return e == EEXIST ? CV_EINPUT : CV_EFAIL;
	}
	if ((rc = layer_new_delta(img, layer, fmt, size)))
		unlink(layer);
	return rc;
}
