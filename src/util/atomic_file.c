#include "util/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"

int atomic_file_open(const char *path, const char *what, char *tmp, size_t cap)
{
	int fd;

	if (snprintf(tmp, cap, "%s.tmp.%d", path, (int)getpid()) >= (int)cap) {
		cv_err("%s path '%s' is too long", what, path);
		return CV_EINPUT;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		cv_err("cannot create %s '%s': %s", what, tmp, strerror(errno));
		return CV_EINPUT;
	}
	return fd;
}

int atomic_file_pwrite(int fd, const void *p, size_t len, uint64_t off)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = pwrite(fd, b, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int atomic_file_abort(int fd, const char *tmp, const char *what)
{
	cv_err("cannot write %s '%s': %s", what, tmp, strerror(errno ? errno : EIO));
	close(fd);
	unlink(tmp);
	return CV_EFAIL;
}

int atomic_file_commit(int fd, const char *tmp, const char *path, const char *what)
{
	if (fsync(fd) < 0)
		return atomic_file_abort(fd, tmp, what);
	close(fd);
	if (rename(tmp, path) < 0) {
		cv_err("cannot rename %s '%s' to '%s': %s", what, tmp, path, strerror(errno));
		unlink(tmp);
		return CV_EFAIL;
	}
	return 0;
}
