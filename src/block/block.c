#include "block/block.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/raw.h"
#include "util/err.h"

int block_open(const char *path, enum block_format format, bool readonly, unsigned max_inflight,
	       struct event_loop *loop, struct block **out)
{
	struct stat st;
	uint64_t size;
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC), rc;

	if (fd < 0) {
		cv_err("cannot open disk '%s': %s", path, strerror(errno));
		return CV_EINPUT;
	}
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		cv_err("disk '%s' is not a regular file or block device", path);
		close(fd);
		return CV_EINPUT;
	}
	size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0) {
		cv_err("cannot size disk '%s': %s", path, strerror(errno));
		close(fd);
		return CV_EINPUT;
	}
	if (format == BLOCK_FORMAT_QCOW2) {
		cv_err("disk '%s': qcow2 images are not supported by this build", path);
		close(fd);
		return CV_EINPUT;
	}
	rc = raw_open(fd, size, readonly, max_inflight, loop, out);
	if (rc)
		close(fd);
	return rc;
}
