#include "arch/x86/boot.h"

#include <asm/bootparam.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/e820.h"
#include "arch/x86/kernel.h"
#include "arch/x86/layout.h"
#include "util/err.h"
#include "util/size.h"

#define PAGE 4096ULL

int x86_initrd_place(const struct guest_mem *m, uint64_t kernel_end, uint32_t initrd_addr_max,
		     uint64_t size, uint64_t *at)
{
	uint64_t top = (uint64_t)initrd_addr_max + 1, lo = (kernel_end + PAGE - 1) & ~(PAGE - 1);

	if (top > m->low_size)
		top = m->low_size;
	if (size > top || ((top - size) & ~(PAGE - 1)) < lo)
		return -1;
	*at = (top - size) & ~(PAGE - 1);
	return 0;
}

/* Opens a regular file for reading; reports errors naming what it is. */
static int open_input(const char *what, const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		cv_err("cannot open %s '%s': %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0) {
		cv_err("cannot read %s '%s': %s", what, path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		cv_err("cannot read %s '%s': %s", what, path, S_ISDIR(st->st_mode) ? "Is a directory" : "not a regular file");
		close(fd);
		return -1;
	}
	return fd;
}

static int load_kernel(struct guest_mem *m, const char *path, struct kernel_image *img)
{
	struct stat st;
	void *data;
	int fd = open_input("kernel", path, &st), rc;

	if (fd < 0)
		return CV_EINPUT;
	if (st.st_size == 0) {
		close(fd);
		cv_err("kernel '%s' is neither a bzImage nor an x86-64 ELF vmlinux", path);
		return CV_EINPUT;
	}
	data = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (data == MAP_FAILED) {
		cv_err("cannot read kernel '%s': %s", path, strerror(errno));
		close(fd);
		return CV_EINPUT;
	}
	rc = kernel_load(m, data, st.st_size, fd, path, img);
	munmap(data, st.st_size);
	close(fd);
	return rc;
}

static int load_initrd(struct guest_mem *m, const char *path, const struct kernel_image *img,
		       struct boot_params *bp)
{
	struct stat st;
	uint64_t at, done = 0;
	char mem[32];
	int fd = open_input("initrd", path, &st);

	if (fd < 0)
		return CV_EINPUT;
	if (x86_initrd_place(m, img->end, img->hdr.initrd_addr_max, st.st_size, &at)) {
		size_format(m->size, mem, sizeof(mem));
		cv_err("initrd '%s' (%llu bytes) does not fit in guest RAM (%s)", path,
		       (unsigned long long)st.st_size, mem);
		close(fd);
		return CV_EINPUT;
	}
	/* Whole pages are mapped copy-on-write; only the tail is read. */
	if (!guest_mem_map_file(m, at, st.st_size & ~(PAGE - 1), fd, 0))
		done = st.st_size & ~(PAGE - 1);
	while (done < (uint64_t)st.st_size) {
		ssize_t n = pread(fd, m->host + at + done, st.st_size - done, done);

		if (n <= 0) {
			cv_err("cannot read initrd '%s': %s", path, n ? strerror(errno) : "file shrank");
			close(fd);
			return CV_EINPUT;
		}
		done += n;
	}
	close(fd);
	bp->hdr.ramdisk_image = (uint32_t)at;
	bp->hdr.ramdisk_size = (uint32_t)st.st_size;
	return 0;
}

int x86_boot_load(struct guest_mem *m, const char *kernel, const char *initrd, const char *cmdline, uint64_t rsdp,
		  struct boot_info *out)
{
	struct kernel_image img;
	struct boot_params *bp = guest_mem_ptr(m, LAYOUT_BOOT_PARAMS, sizeof(*bp));
	size_t cmdlen = strlen(cmdline);
	int rc;

	if ((rc = load_kernel(m, kernel, &img)))
		return rc;
	memset(bp, 0, sizeof(*bp));
	bp->hdr = img.hdr;

	/* cmdline_size excludes the terminating NUL; old kernels take 255. */
	if (cmdlen > (img.hdr.version >= 0x0206 ? img.hdr.cmdline_size : 255) ||
	    cmdlen >= LAYOUT_CMDLINE_MAX) {
		cv_err("kernel command line is %zu bytes, more than the kernel accepts", cmdlen);
		return CV_EINPUT;
	}
	memcpy(guest_mem_ptr(m, LAYOUT_CMDLINE, cmdlen + 1), cmdline, cmdlen + 1);
	bp->hdr.cmd_line_ptr = LAYOUT_CMDLINE;

	if (initrd && (rc = load_initrd(m, initrd, &img, bp)))
		return rc;
	bp->e820_entries = e820_build(m, bp->e820_table);
	bp->acpi_rsdp_addr = rsdp;
	out->entry = img.entry;
	out->boot_params = LAYOUT_BOOT_PARAMS;
	return 0;
}
