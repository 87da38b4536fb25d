/* Uncompressed ELF vmlinux: PT_LOAD segments at their physical addresses,
 * entered at the ELF entry point in 64-bit mode. */
#include <elf.h>
#include <string.h>

#include "arch/x86/kernel.h"
#include "arch/x86/layout.h"
#include "util/err.h"

static int bad(const char *path, const char *what)
{
	cv_err("kernel '%s' is a malformed ELF file: %s", path, what);
	return CV_EINPUT;
}

/* Physical address of the entry point: e_entry is virtual in vmlinux
 * (0xffffffff81...), physical in simpler images. */
static int entry_phys(const Elf64_Ehdr *eh, const Elf64_Phdr *ph, unsigned n, uint64_t *out)
{
	for (unsigned i = 0; i < n; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (eh->e_entry - ph[i].p_vaddr < ph[i].p_memsz) {
			*out = eh->e_entry - ph[i].p_vaddr + ph[i].p_paddr;
			return 0;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (ph[i].p_type == PT_LOAD && eh->e_entry - ph[i].p_paddr < ph[i].p_memsz) {
			*out = eh->e_entry;
			return 0;
		}
	}
	return -1;
}

/* Puts one validated segment in place: whole file pages mapped when fd and
 * alignment allow, the rest copied, the BSS zeroed. */
static void place(struct guest_mem *m, const uint8_t *data, int fd, const Elf64_Phdr *ph)
{
	uint8_t *dst = guest_mem_ptr(m, ph->p_paddr, ph->p_memsz);
	uint64_t mapped = ph->p_filesz & ~4095ULL;

	if (fd < 0 || (ph->p_paddr & 4095) || (ph->p_offset & 4095) ||
	    guest_mem_map_file(m, ph->p_paddr, mapped, fd, ph->p_offset))
		mapped = 0;
	memcpy(dst + mapped, data + ph->p_offset + mapped, ph->p_filesz - mapped);
	memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
}

int elf_load(struct guest_mem *m, const uint8_t *data, size_t len, int fd, const char *path,
	     struct kernel_image *out)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	unsigned nload = 0;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(eh))
		return bad(path, "truncated ELF header");
	memcpy(&eh, data, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64) {
		cv_err("kernel '%s' is neither a bzImage nor an x86-64 ELF vmlinux", path);
		return CV_EINPUT;
	}
	if (eh.e_type != ET_EXEC)
		return bad(path, "not an executable");
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64)
		return bad(path, "bad program header table");
	if (eh.e_phoff > len || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return bad(path, "program headers past the end of the file");
	memcpy(ph, data + eh.e_phoff, eh.e_phnum * sizeof(Elf64_Phdr));

	/* Validate every segment before writing any of them. */
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_filesz > ph[i].p_memsz)
			return bad(path, "segment file size exceeds memory size");
		if (ph[i].p_offset > len || ph[i].p_filesz > len - ph[i].p_offset)
			return bad(path, "segment data past the end of the file");
		if (ph[i].p_paddr < LAYOUT_HIGH_MEM || ph[i].p_paddr >= m->low_size ||
		    !guest_mem_ptr(m, ph[i].p_paddr, ph[i].p_memsz)) {
			cv_err("kernel '%s': segment at 0x%llx (%llu bytes) does not fit in guest RAM",
			       path, (unsigned long long)ph[i].p_paddr, (unsigned long long)ph[i].p_memsz);
			return CV_EINPUT;
		}
		nload++;
	}
	if (!nload)
		return bad(path, "no loadable segment");
	if (entry_phys(&eh, ph, eh.e_phnum, &out->entry))
		return bad(path, "entry point outside the loaded segments");

	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		place(m, data, fd, &ph[i]);
		if (ph[i].p_paddr + ph[i].p_memsz > out->end)
			out->end = ph[i].p_paddr + ph[i].p_memsz;
	}

	/* No setup code to take a header from: describe what we did. */
	out->hdr.boot_flag = 0xaa55;
	memcpy(&out->hdr.header, "HdrS", 4);
	out->hdr.version = 0x020f;
	out->hdr.type_of_loader = 0xff;
	out->hdr.loadflags = LOADED_HIGH | CAN_USE_HEAP;
	out->hdr.heap_end_ptr = 0xfe00;
	out->hdr.initrd_addr_max = 0x7fffffff;
	out->hdr.kernel_alignment = 0x200000;
	out->hdr.cmdline_size = 2047;
	return 0;
}

int kernel_load(struct guest_mem *m, const uint8_t *data, size_t len, int fd, const char *path,
		struct kernel_image *out)
{
	if (len >= SELFMAG && !memcmp(data, ELFMAG, SELFMAG))
		return elf_load(m, data, len, fd, path, out);
	return bzimage_load(m, data, len, path, out);
}
