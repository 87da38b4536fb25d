#include "snapshot/memfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/err.h"

#define PAGE 4096

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	for (unsigned i = 0; i < PAGE / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	return true;
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int memfile_save(const struct guest_mem *m, const char *path, uint64_t *written)
{
	char tmp[4096];
	int fd;

	*written = 0;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
		cv_err("memory file path '%s' is too long", path);
		return CV_EINPUT;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		cv_err("cannot create memory file '%s': %s", tmp, strerror(errno));
		return CV_EINPUT;
	}
	if (ftruncate(fd, (off_t)m->size) < 0)
		goto fail;
	/* Runs of non-zero pages go out in one write each. */
	for (uint64_t off = 0; off < m->size;) {
		uint64_t end;

		if (page_is_zero(m->host + off)) {
			off += PAGE;
			continue;
		}
		for (end = off + PAGE; end < m->size && end - off < (8u << 20) && !page_is_zero(m->host + end);)
			end += PAGE;
		if (pwrite_all(fd, m->host + off, (size_t)(end - off), off))
			goto fail;
		*written += end - off;
		off = end;
	}
	if (fsync(fd) < 0)
		goto fail;
	close(fd);
	if (rename(tmp, path) < 0) {
		cv_err("cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
		unlink(tmp);
		return CV_EFAIL;
	}
	return 0;
fail:
	cv_err("cannot write memory file '%s': %s", tmp, strerror(errno));
	close(fd);
	unlink(tmp);
	return CV_EFAIL;
}

int memfile_map(struct guest_mem *m, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int rc = 0;

	if (fd < 0) {
		cv_err("invalid memory file '%s': %s", path, strerror(errno));
		return CV_EINPUT;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->size) {
		cv_err("invalid memory file '%s': %lld bytes, the snapshot's guest has %llu", path,
		       (long long)st.st_size, (unsigned long long)m->size);
		close(fd);
		return CV_EINPUT;
	}
	if (guest_mem_map_file(m, 0, m->low_size, fd, 0) ||
	    (m->size > m->low_size &&
	     guest_mem_map_file(m, guest_mem_end(m) - (m->size - m->low_size), m->size - m->low_size, fd, m->low_size))) {
		cv_err("cannot map memory file '%s': %s", path, strerror(errno));
		rc = CV_EFAIL;
	}
	/* The mappings keep the file open. */
	close(fd);
	return rc;
}
