#include "snapshot/memfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/atomic_file.h"
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

/* Whether the page at off belongs in the file: it is in `pages` (all are
 * when NULL) and, with data_only, not all zeros. */
static bool page_wanted(const struct guest_mem *m, const uint64_t *pages, bool data_only, uint64_t off)
{
	if (pages && !(pages[off / PAGE / 64] >> (off / PAGE % 64) & 1))
		return false;
	return !data_only || !page_is_zero(m->host + off);
}

/* The next run [*off, *end) of wanted pages at or after *off, at most
 * 8 MiB long; false when there is none. */
static bool next_run(const struct guest_mem *m, const uint64_t *pages, bool data_only, uint64_t *off,
		     uint64_t *end)
{
	while (*off < m->size && !page_wanted(m, pages, data_only, *off))
		*off += PAGE;
	if (*off >= m->size)
		return false;
	for (*end = *off + PAGE; *end < m->size && *end - *off < (8u << 20) && page_wanted(m, pages, data_only, *end);)
		*end += PAGE;
	return true;
}

int memfile_save(const struct guest_mem *m, const char *path, const uint64_t *pages, uint64_t *written)
{
	char tmp[4096];
	int fd;

	*written = 0;
	if ((fd = atomic_file_open(path, "memory file", tmp, sizeof(tmp))) < 0)
		return fd;
	if (ftruncate(fd, (off_t)m->size) < 0)
		return atomic_file_abort(fd, tmp, "memory file");
	/* Runs of non-zero pages go out in one write each; a zero page stays
	 * a hole, which reads as zeros (in a diff file too). */
	for (uint64_t off = 0, end; next_run(m, pages, true, &off, &end); off = end) {
		if (atomic_file_pwrite(fd, m->host + off, (size_t)(end - off), off))
			return atomic_file_abort(fd, tmp, "memory file");
		*written += end - off;
	}
	return atomic_file_commit(fd, tmp, path, "memory file");
}

/* Opens a memory file that must be exactly as large as RAM. */
static int open_sized(const struct guest_mem *m, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

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
	return fd;
}

int memfile_apply(struct guest_mem *m, const char *path, const uint64_t *pages)
{
	int fd = open_sized(m, path);

	if (fd < 0)
		return fd;
	for (uint64_t off = 0, end; next_run(m, pages, false, &off, &end); off = end) {
		for (uint64_t at = off; at < end;) {
			ssize_t n = pread(fd, m->host + at, (size_t)(end - at), (off_t)at);

			if (n <= 0) {
				cv_err("cannot read memory file '%s' at %llu: %s", path, (unsigned long long)at,
				       n < 0 ? strerror(errno) : "it ended");
				close(fd);
				return CV_EFAIL;
			}
			at += (uint64_t)n;
		}
	}
	close(fd);
	return 0;
}

int memfile_map(struct guest_mem *m, const char *path)
{
	int fd = open_sized(m, path);
	int rc = 0;

	if (fd < 0)
		return fd;
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
