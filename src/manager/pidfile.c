#include "manager/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/err.h"

static pid_t read_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char *end;
	long v;

	if (n <= 0)
		return 0;
	buf[n] = 0;
	v = strtol(buf, &end, 10);
	return (v > 0 && (*end == '\n' || !*end)) ? (pid_t)v : 0;
}

int pidfile_acquire(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	char buf[32];
	int n;

	if (fd < 0) {
		cv_err("invalid --pid-file '%s': %s", path, strerror(errno));
		return CV_EINPUT;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		pid_t other = read_pid(fd);

		close(fd);
		cv_err("invalid --pid-file '%s': process %ld is running with it", path, (long)other);
		return CV_EINPUT;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		cv_err("cannot write --pid-file '%s': %s", path, strerror(errno));
		close(fd);
		return CV_EFAIL;
	}
	return fd;
}

void pidfile_release(int fd, const char *path)
{
	(void)path;
	if (fd < 0)
		return;
	/* Not unlinked: another process may already be waiting on this
	 * inode; an empty, unlocked file reads as "not running". */
	if (ftruncate(fd, 0) < 0)
		cv_warn("cannot empty the pid file: %s", strerror(errno));
	close(fd);
}

pid_t pidfile_owner(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	pid_t pid = 0;

	if (fd < 0)
		return 0;
	/* A shared lock we can take means nobody holds the exclusive one. */
	if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
		pid = read_pid(fd);
		if (!pid)
			pid = -1; /* locked, the PID not written yet */
	}
	close(fd);
	return pid;
}
