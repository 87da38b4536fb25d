#include "vmm/ram.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/mempolicy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "util/err.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static const char *const page_names[] = { "4K", "2M", "1G", "thp" };

/* "on"/"off" into *out. */
static bool on_off(const char *v, bool *out)
{
	if (!strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "off"))
		*out = false;
	else
		return false;
	return true;
}

static int parse_one(const char *key, const char *val, struct ram_config *c, char *err, size_t errlen)
{
	bool b;

	if (!strcmp(key, "backend")) {
		if (!strcmp(val, "anon"))
			c->backend = RAM_ANON;
		else if (!strcmp(val, "memfd"))
			c->backend = RAM_MEMFD;
		else
			return cv_fmt(err, errlen, "invalid --memory backend '%s': anon, memfd or file=PATH", val);
	} else if (!strcmp(key, "file")) {
		if (!*val)
			return cv_fmt(err, errlen, "invalid --memory file '': give the path of the RAM's file");
		if (strlen(val) >= sizeof(c->file))
			return cv_fmt(err, errlen, "invalid --memory file '%.64s...': too long", val);
		c->backend = RAM_FILE;
		snprintf(c->file, sizeof(c->file), "%s", val);
	} else if (!strcmp(key, "hugepages")) {
		unsigned i = 0;

		while (i < 4 && strcmp(val, page_names[i]))
			i++;
		if (i == 4 || i == RAM_PAGES_4K)
			return cv_fmt(err, errlen, "invalid --memory hugepages '%s': 2M, 1G or thp", val);
		c->pages = (enum ram_pages)i;
	} else if (!strcmp(key, "shared") && on_off(val, &b)) {
		c->shared = b ? RAM_SHARED_ON : RAM_SHARED_OFF;
	} else if (!strcmp(key, "merge") && on_off(val, &b)) {
		c->merge = b;
	} else if (!strcmp(key, "prealloc") && on_off(val, &b)) {
		c->prealloc = b;
	} else if (!strcmp(key, "node")) {
		char *end;
		long n;

		errno = 0;
		n = strtol(val, &end, 10);
		if (!*val || *end || errno || n < 0 || n > 1023)
			return cv_fmt(err, errlen, "invalid --memory node '%s': a NUMA node number", val);
		c->bind = true;
		c->node = (unsigned)n;
	} else if (!strcmp(key, "shared") || !strcmp(key, "merge") || !strcmp(key, "prealloc")) {
		return cv_fmt(err, errlen, "invalid --memory %s '%s': on or off", key, val);
	} else {
		return cv_fmt(err, errlen,
			      "invalid --memory option '%s': backend=, file=, hugepages=, shared=, merge=, prealloc= "
			      "or node=",
			      key);
	}
	return 0;
}

int ram_parse(const char *opts, struct ram_config *c, char *err, size_t errlen)
{
	const char *p = opts;

	while (*p) {
		const char *comma = strchr(p, ','), *eq;
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char item[4096];
		int rc;

		if (n >= sizeof(item))
			return cv_fmt(err, errlen, "invalid --memory option '%.64s...': too long", p);
		memcpy(item, p, n);
		item[n] = 0;
		if (!(eq = strchr(item, '=')))
			return cv_fmt(err, errlen, "invalid --memory option '%s': use KEY=VALUE", item);
		item[eq - item] = 0;
		if ((rc = parse_one(item, eq + 1, c, err, errlen)))
			return rc;
		p += n + (comma != NULL);
	}
	if (c->pages == RAM_PAGES_THP && c->backend != RAM_ANON)
		return cv_fmt(err, errlen, "invalid --memory hugepages 'thp': only for backend=anon (a file's huge "
					   "pages come from its filesystem, e.g. hugetlbfs)");
	if (c->backend == RAM_FILE && (c->pages == RAM_PAGES_2M || c->pages == RAM_PAGES_1G))
		return cv_fmt(err, errlen, "invalid --memory hugepages '%s' with file=: put the file on a hugetlbfs "
					   "mount instead",
			      page_names[c->pages]);
	return 0;
}

void ram_format(const struct ram_config *c, char *buf, size_t cap)
{
	static const char *const backends[] = { "anon", "memfd", "file" };
	int n = 0;

	buf[0] = 0;
	if (c->backend == RAM_FILE)
		n += snprintf(buf + n, cap - (size_t)n, ",file=%s", c->file);
	else if (c->backend != RAM_ANON)
		n += snprintf(buf + n, cap - (size_t)n, ",backend=%s", backends[c->backend]);
	if (c->pages != RAM_PAGES_4K && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, ",hugepages=%s", page_names[c->pages]);
	if (c->shared != RAM_SHARED_DEFAULT && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, ",shared=%s", c->shared == RAM_SHARED_ON ? "on" : "off");
	if (c->merge && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, ",merge=on");
	if (c->prealloc && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, ",prealloc=on");
	if (c->bind && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, ",node=%u", c->node);
	/* Without the leading comma: the options as ram_parse takes them. */
	if (n > 0 && (size_t)n < cap)
		memmove(buf, buf + 1, (size_t)n);
}

uint64_t ram_page_size(const struct ram_config *c)
{
	return c->pages == RAM_PAGES_2M ? 2ULL << 20 : c->pages == RAM_PAGES_1G ? 1ULL << 30 : 4096;
}

/* Huge pages come from the host's pool: say how many are missing. */
static int check_pool(const struct ram_config *c, uint64_t size)
{
	uint64_t page = ram_page_size(c), want = size / page, have = 0;
	char path[96];
	FILE *f;

	if (size % page) {
		cv_err("invalid --memory: %llu MiB is not a whole number of %s pages",
		       (unsigned long long)(size >> 20), page_names[c->pages]);
		return CV_EINPUT;
	}
	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages",
		 (unsigned long long)(page >> 10));
	if ((f = fopen(path, "re"))) {
		if (fscanf(f, "%llu", (unsigned long long *)&have) != 1)
			have = 0;
		fclose(f);
	}
	if (have < want) {
		cv_err("invalid --memory hugepages=%s: the guest needs %llu pages of %s, the host has %llu free "
		       "(raise /sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages%s)",
		       page_names[c->pages], (unsigned long long)want, page_names[c->pages], (unsigned long long)have,
		       (unsigned long long)(page >> 10), c->pages == RAM_PAGES_2M ? " or /proc/sys/vm/nr_hugepages" : "");
		return CV_EINPUT;
	}
	return 0;
}

/* The RAM's file: made if missing (its size then), else at least size
 * bytes and writable. */
static int open_file(const char *path, uint64_t size, int *fd)
{
	struct stat st;
	bool made;

	*fd = open(path, O_RDWR | O_CLOEXEC);
	made = *fd < 0 && errno == ENOENT;
	if (made)
		*fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (*fd < 0) {
		cv_err("invalid --memory file '%s': %s", path, strerror(errno));
		return CV_EINPUT;
	}
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cv_err("invalid --memory file '%s': not a regular file", path);
		return CV_EINPUT;
	}
	if (made && ftruncate(*fd, (off_t)size) < 0) {
		cv_err("invalid --memory file '%s': cannot make it %llu bytes: %s", path, (unsigned long long)size,
		       strerror(errno));
		unlink(path);
		return CV_EINPUT;
	}
	if (!made && (uint64_t)st.st_size < size) {
		cv_err("invalid --memory file '%s': it holds %llu bytes, the guest's RAM needs %llu", path,
		       (unsigned long long)st.st_size, (unsigned long long)size);
		return CV_EINPUT;
	}
	return 0;
}

static int make_memfd(const struct ram_config *c, uint64_t size, int *fd)
{
	unsigned flags = MFD_CLOEXEC;

	if (c->pages == RAM_PAGES_2M || c->pages == RAM_PAGES_1G)
		flags |= MFD_HUGETLB | (c->pages == RAM_PAGES_2M ? 21u : 30u) << MFD_HUGE_SHIFT;
	if ((*fd = memfd_create("cellvm-ram", flags)) < 0 || ftruncate(*fd, (off_t)size) < 0) {
		cv_err("cannot make the guest's RAM as a memfd: %s", strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

static int bind_node(void *p, uint64_t size, unsigned node)
{
	unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };
	char path[64];

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%u", node);
	if (access(path, F_OK) < 0) {
		cv_err("invalid --memory node=%u: the host has no such NUMA node", node);
		return CV_EINPUT;
	}
	mask[node / (8 * sizeof(unsigned long))] |= 1UL << (node % (8 * sizeof(unsigned long)));
	if (syscall(SYS_mbind, p, size, MPOL_BIND, mask, (unsigned long)1024, 0) < 0) {
		cv_err("cannot bind the guest's RAM to NUMA node %u: %s", node, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

void *ram_map(const struct ram_config *c, uint64_t size, int *fd, int *rc)
{
	bool huge = c->pages == RAM_PAGES_2M || c->pages == RAM_PAGES_1G;
	bool shared = c->shared == RAM_SHARED_DEFAULT ? c->backend != RAM_ANON : c->shared == RAM_SHARED_ON;
	int flags = shared ? MAP_SHARED : MAP_PRIVATE;
	void *p;

	*fd = -1;
	if ((huge && (*rc = check_pool(c, size))) ||
	    (c->backend == RAM_MEMFD && (*rc = make_memfd(c, size, fd))) ||
	    (c->backend == RAM_FILE && (*rc = open_file(c->file, size, fd))))
		goto fail;
	if (c->backend == RAM_ANON) {
		flags |= MAP_ANONYMOUS;
		/* Huge pages are reserved at mmap: never a SIGBUS later. */
		if (huge)
			flags |= MAP_HUGETLB | (c->pages == RAM_PAGES_2M ? 21 : 30) << MAP_HUGE_SHIFT;
		else
			flags |= MAP_NORESERVE;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, *fd, 0);
	if (p == MAP_FAILED) {
		cv_err("cannot map %llu bytes of guest RAM%s: %s", (unsigned long long)size,
		       huge ? " in huge pages" : "", strerror(errno));
		*rc = CV_EFAIL;
		goto fail;
	}
	/* Guest RAM is the guest's business; keep it out of host core dumps. */
	madvise(p, size, MADV_DONTDUMP);
	if ((c->pages == RAM_PAGES_THP && madvise(p, size, MADV_HUGEPAGE) < 0) ||
	    (c->merge && madvise(p, size, MADV_MERGEABLE) < 0)) {
		cv_err("cannot mark the guest's RAM %s: %s", c->merge ? "mergeable (is KSM built in?)" : "for huge pages",
		       strerror(errno));
		*rc = CV_EFAIL;
	} else if (c->bind) {
		*rc = bind_node(p, size, c->node);
	} else {
		*rc = 0;
	}
	/* Every page now: no fault on the guest's first touch. */
	if (!*rc && c->prealloc && madvise(p, size, MADV_POPULATE_WRITE) < 0) {
		volatile uint8_t *q = p;

		/* Older kernels: a write to each page, keeping a file's bytes. */
		for (uint64_t off = 0; off < size; off += ram_page_size(c))
			q[off] = q[off];
	}
	if (!*rc && !shared && *fd >= 0) {
		/* A private mapping holds the file itself; discards never touch it. */
		close(*fd);
		*fd = -1;
	}
	if (!*rc)
		return p;
	munmap(p, size);
fail:
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return NULL;
}

int ram_discard(void *host, int fd, uint64_t off, uint64_t len)
{
	/* A shared file's pages live in the file: punch them out. */
	if (fd >= 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return -errno;
	return madvise((uint8_t *)host + off, len, MADV_DONTNEED) < 0 ? -errno : 0;
}
