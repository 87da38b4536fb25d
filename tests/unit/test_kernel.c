/* Kernel loaders (bzImage, ELF vmlinux, format detection) on images crafted
 * in memory. Guest RAM is pre-filled with a sentinel so that a rejected
 * image can be shown to have written nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <elf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/kernel.h"
#include "helpers.h"
#include "util/err.h"

#define RAM (32 * MiB)
#define SENTINEL 0xaa

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static void fill_pattern(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pattern(i);
}

static int mem_setup(void **state)
{
	struct guest_mem *m = calloc(1, sizeof(*m));

	if (!m)
		return -1;
	test_mem_map(m, RAM);
	memset(m->host, SENTINEL, RAM);
	*state = m;
	return 0;
}

static int mem_teardown(void **state)
{
	test_mem_unmap(*state);
	free(*state);
	return 0;
}

static uint8_t *gpa(struct guest_mem *m, uint64_t addr)
{
	uint8_t *p = guest_mem_ptr(m, addr, 1);

	assert_non_null(p);
	return p;
}

static int ram_untouched(const struct guest_mem *m)
{
	return test_all_bytes(m->host, m->size, SENTINEL);
}

/* ---- bzImage ---------------------------------------------------------- */

#define BZ_HDR 0x1f1
#define BZ_PM_SIZE 0x3000
#define BZ_INIT_SIZE (4 * MiB)
#define BZ_PREF (16 * MiB)

struct bz {
	struct setup_header h; /* written into data at 0x1f1 by bz_load() */
	uint8_t *data;
	size_t len, setup_size;
};

/* A valid 64-bit bzImage with `setup_sects` (0 means 4) and a protected-mode
 * part of pm_size bytes filled with pattern(). */
static void bz_make(struct bz *b, uint8_t setup_sects, size_t pm_size)
{
	b->setup_size = ((size_t)(setup_sects ? setup_sects : 4) + 1) * 512;
	b->len = b->setup_size + pm_size;
	b->data = calloc(1, b->len);
	assert_non_null(b->data);
	fill_pattern(b->data + b->setup_size, pm_size);
	b->h = (struct setup_header){
		.setup_sects = setup_sects,
		.boot_flag = 0xaa55,
		/* jmp short to the end of the header: 0x202 + offset = 0x1f1 + sizeof. */
		.jump = 0xeb | (uint16_t)((BZ_HDR + sizeof(struct setup_header) - 0x202) << 8),
		.version = 0x020f,
		.loadflags = LOADED_HIGH,
		.initrd_addr_max = 0x7fffffff,
		.kernel_alignment = 0x200000,
		.relocatable_kernel = 1,
		.xloadflags = XLF_KERNEL_64,
		.cmdline_size = 2047,
		.pref_address = BZ_PREF,
		.init_size = BZ_INIT_SIZE,
	};
	memcpy(&b->h.header, "HdrS", 4);
}

static int bz_load(struct guest_mem *m, struct bz *b, struct kernel_image *out)
{
	if (b->len >= BZ_HDR + sizeof(b->h))
		memcpy(b->data + BZ_HDR, &b->h, sizeof(b->h));
	return bzimage_load(m, b->data, b->len, "bz", out);
}

/* Loads (and frees) b; true if that failed with CV_EINPUT and left guest
 * RAM untouched. */
static bool bz_rejected(struct guest_mem *m, struct bz *b)
{
	struct kernel_image img;
	int rc = bz_load(m, b, &img);
	bool untouched = ram_untouched(m);

	free(b->data);
	if (rc != CV_EINPUT)
		print_error("bzimage_load returned %d, want CV_EINPUT\n", rc);
	if (!untouched)
		print_error("bzimage_load wrote to guest RAM\n");
	return rc == CV_EINPUT && untouched;
}

static void test_bz_valid(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct bz b;

	bz_make(&b, 4, BZ_PM_SIZE);
	assert_int_equal(bz_load(m, &b, &img), 0);
	assert_int_equal(img.entry, 0x100200);
	assert_memory_equal(gpa(m, 0x100000), b.data + b.setup_size, BZ_PM_SIZE);
	/* Nothing below 1 MiB (setup code stays out) and nothing past the image. */
	assert_true(test_all_bytes(m->host, 0x100000, SENTINEL));
	assert_true(test_all_bytes(gpa(m, 0x100000 + BZ_PM_SIZE), RAM - 0x100000 - BZ_PM_SIZE, SENTINEL));
	/* The kernel decompresses up to pref_address + init_size. */
	assert_int_equal(img.end, BZ_PREF + BZ_INIT_SIZE);
	/* Header for boot_params: the file's, plus what the loader filled in. */
	assert_int_equal(img.hdr.version, 0x020f);
	assert_int_equal(img.hdr.init_size, BZ_INIT_SIZE);
	assert_int_equal(img.hdr.type_of_loader, 0xff);
	assert_int_equal(img.hdr.loadflags & (LOADED_HIGH | CAN_USE_HEAP), LOADED_HIGH | CAN_USE_HEAP);
	assert_int_equal(img.hdr.code32_start, 0x100000);
	assert_int_equal(img.hdr.heap_end_ptr, 0xfe00);
	free(b.data);
}

static void test_bz_end_covers_image_and_init_size(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct bz b;

	/* Loaded at 1 MiB and run in place: init_size counts from there too. */
	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.pref_address = 0x100000;
	assert_int_equal(bz_load(m, &b, &img), 0);
	assert_int_equal(img.end, 0x100000 + BZ_INIT_SIZE);
	/* An image larger than init_size ends where its bytes end. */
	b.h.init_size = 0x1000;
	assert_int_equal(bz_load(m, &b, &img), 0);
	assert_int_equal(img.end, 0x100000 + BZ_PM_SIZE);
	free(b.data);
}

static void test_bz_setup_sects_zero_means_four(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct bz b;

	bz_make(&b, 0, BZ_PM_SIZE);
	assert_int_equal(b.setup_size, 5 * 512);
	assert_int_equal(bz_load(m, &b, &img), 0);
	assert_memory_equal(gpa(m, 0x100000), b.data + 5 * 512, BZ_PM_SIZE);
	free(b.data);
}

static void test_bz_other_setup_size(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct bz b;

	bz_make(&b, 30, BZ_PM_SIZE);
	assert_int_equal(bz_load(m, &b, &img), 0);
	assert_memory_equal(gpa(m, 0x100000), b.data + 31 * 512, BZ_PM_SIZE);
	free(b.data);
}

static void test_bz_fits_ram_exactly(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct bz b;

	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.init_size = (uint32_t)(RAM - BZ_PREF);
	assert_int_equal(bz_load(m, &b, &img), 0);
	assert_int_equal(img.end, RAM);
	free(b.data);
}

static void test_bz_short_header_ignores_later_fields(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct bz b;

	/* The jump says the header ends at 0x250, before pref_address and
	 * init_size: their (absurd) values in the file must not count. */
	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.jump = 0xeb | ((0x250 - 0x202) << 8);
	b.h.pref_address = 1ULL << 62;
	b.h.init_size = 0xffffffff;
	assert_int_equal(bz_load(m, &b, &img), 0);
	assert_int_equal(img.hdr.pref_address, 0);
	assert_int_equal(img.hdr.init_size, 0);
	assert_int_equal(img.end, 0x100000 + BZ_PM_SIZE);
	free(b.data);
}

static void test_bz_truncated(void **state)
{
	struct guest_mem *m = *state;
	struct bz b;

	bz_make(&b, 4, BZ_PM_SIZE);
	memcpy(b.data + BZ_HDR, &b.h, sizeof(b.h));
	b.len = BZ_HDR + sizeof(b.h) - 1; /* header cut by one byte */
	assert_true(bz_rejected(m, &b));
	bz_make(&b, 4, BZ_PM_SIZE);
	b.len = 0x100;
	assert_true(bz_rejected(m, &b));
}

static void test_bz_bad_magic(void **state)
{
	struct guest_mem *m = *state;
	struct bz b;

	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.boot_flag = 0x55aa;
	assert_true(bz_rejected(m, &b));
	bz_make(&b, 4, BZ_PM_SIZE);
	memcpy(&b.h.header, "HdrZ", 4);
	assert_true(bz_rejected(m, &b));
}

static void test_bz_old_protocol(void **state)
{
	struct guest_mem *m = *state;
	struct bz b;

	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.version = 0x020b;
	assert_true(bz_rejected(m, &b));
}

static void test_bz_no_64bit_entry(void **state)
{
	struct guest_mem *m = *state;
	struct bz b;

	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G | XLF_EFI_HANDOVER_64;
	assert_true(bz_rejected(m, &b));
}

static void test_bz_setup_fills_file(void **state)
{
	struct guest_mem *m = *state;
	struct bz b;

	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.setup_sects = 255; /* 128 KiB of setup in a 14 KiB file */
	assert_true(bz_rejected(m, &b));
	/* Setup code exactly as long as the file: no protected-mode part. */
	bz_make(&b, 4, 0);
	assert_true(bz_rejected(m, &b));
}

static void test_bz_init_size_exceeds_ram(void **state)
{
	struct guest_mem *m = *state;
	struct bz b;

	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.init_size = (uint32_t)(RAM - BZ_PREF + 1);
	assert_true(bz_rejected(m, &b));
	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.init_size = 0xffffffff;
	assert_true(bz_rejected(m, &b));
}

static void test_bz_pref_address_beyond_ram(void **state)
{
	struct guest_mem *m = *state;
	struct bz b;

	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.pref_address = 1ULL << 62;
	assert_true(bz_rejected(m, &b));
}

static void test_bz_pref_address_wraps(void **state)
{
	struct guest_mem *m = *state;
	struct bz b;

	/* pref_address + init_size wraps around 2^64 to a small number. */
	bz_make(&b, 4, BZ_PM_SIZE);
	b.h.pref_address = UINT64_MAX - 0xfff;
	b.h.init_size = 0x2000;
	assert_true(bz_rejected(m, &b));
}

/* ---- ELF vmlinux ------------------------------------------------------ */

#define ELF_VADDR 0xffffffff81000000ULL
#define ELF_PADDR 0x1000000ULL
#define ELF_FILESZ 0x100
#define ELF_MEMSZ 0x200

/* Headers and one segment's bytes, laid out exactly like a file. */
struct elf_img {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[4];
	uint8_t payload[ELF_FILESZ];
};

_Static_assert(offsetof(struct elf_img, ph) == sizeof(Elf64_Ehdr), "program headers follow the ELF header");
_Static_assert(offsetof(struct elf_img, payload) == sizeof(Elf64_Ehdr) + 4 * sizeof(Elf64_Phdr),
	       "payload follows the program headers");

/* A vmlinux-like image: one PT_LOAD linked at ELF_VADDR, loaded at
 * ELF_PADDR, with bss (memsz > filesz); entry 0x10 bytes in, virtual. */
static void elf_make(struct elf_img *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
	e->eh.e_ident[EI_CLASS] = ELFCLASS64;
	e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	e->eh.e_ident[EI_VERSION] = EV_CURRENT;
	e->eh.e_type = ET_EXEC;
	e->eh.e_machine = EM_X86_64;
	e->eh.e_version = EV_CURRENT;
	e->eh.e_entry = ELF_VADDR + 0x10;
	e->eh.e_phoff = offsetof(struct elf_img, ph);
	e->eh.e_ehsize = sizeof(Elf64_Ehdr);
	e->eh.e_phentsize = sizeof(Elf64_Phdr);
	e->eh.e_phnum = 1;
	e->ph[0] = (Elf64_Phdr){
		.p_type = PT_LOAD,
		.p_flags = PF_R | PF_X,
		.p_offset = offsetof(struct elf_img, payload),
		.p_vaddr = ELF_VADDR,
		.p_paddr = ELF_PADDR,
		.p_filesz = ELF_FILESZ,
		.p_memsz = ELF_MEMSZ,
		.p_align = 0x200000,
	};
	fill_pattern(e->payload, sizeof(e->payload));
}

static int elf_load_img(struct guest_mem *m, const struct elf_img *e, size_t len, struct kernel_image *out)
{
	return elf_load(m, (const uint8_t *)e, len, -1, "vmlinux", out);
}

static void test_elf_valid_virtual_entry(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct elf_img e;

	elf_make(&e);
	assert_int_equal(elf_load_img(m, &e, sizeof(e), &img), 0);
	assert_int_equal(img.entry, ELF_PADDR + 0x10);
	assert_int_equal(img.end, ELF_PADDR + ELF_MEMSZ);
	assert_memory_equal(gpa(m, ELF_PADDR), e.payload, ELF_FILESZ);
	/* bss zeroed over the sentinel; neighbours untouched. */
	assert_true(test_all_bytes(gpa(m, ELF_PADDR + ELF_FILESZ), ELF_MEMSZ - ELF_FILESZ, 0));
	assert_true(test_all_bytes(m->host, ELF_PADDR, SENTINEL));
	assert_true(test_all_bytes(gpa(m, ELF_PADDR + ELF_MEMSZ), RAM - ELF_PADDR - ELF_MEMSZ, SENTINEL));
	/* A synthesized header the boot code can hand to the kernel. */
	assert_int_equal(img.hdr.boot_flag, 0xaa55);
	assert_memory_equal(&img.hdr.header, "HdrS", 4);
	assert_true(img.hdr.version >= 0x0206);
	assert_true(img.hdr.cmdline_size > 0);
	assert_true(img.hdr.initrd_addr_max > 0);
}

static void test_elf_physical_entry(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct elf_img e;

	elf_make(&e);
	e.eh.e_entry = ELF_PADDR + 0x20;
	assert_int_equal(elf_load_img(m, &e, sizeof(e), &img), 0);
	assert_int_equal(img.entry, ELF_PADDR + 0x20);
}

static void test_elf_identity_mapped(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct elf_img e;

	elf_make(&e);
	e.ph[0].p_vaddr = ELF_PADDR;
	e.eh.e_entry = ELF_PADDR + ELF_MEMSZ - 1; /* last byte, in bss */
	assert_int_equal(elf_load_img(m, &e, sizeof(e), &img), 0);
	assert_int_equal(img.entry, ELF_PADDR + ELF_MEMSZ - 1);
}

static void test_elf_several_segments(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct elf_img e;

	/* A note (not loaded, at a low address), then two PT_LOADs sharing
	 * the payload; entry in the second, highest one. */
	elf_make(&e);
	e.eh.e_phnum = 3;
	e.ph[1] = e.ph[0];
	e.ph[0] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = offsetof(struct elf_img, payload),
				.p_paddr = 0x10, .p_filesz = 0x10, .p_memsz = 0x10 };
	e.ph[2] = e.ph[1];
	e.ph[2].p_offset += 0x80;
	e.ph[2].p_filesz = 0x80;
	e.ph[2].p_memsz = 0x1000;
	e.ph[2].p_vaddr = ELF_VADDR + 0x400000;
	e.ph[2].p_paddr = ELF_PADDR + 0x400000;
	e.eh.e_entry = ELF_VADDR + 0x400010;
	assert_int_equal(elf_load_img(m, &e, sizeof(e), &img), 0);
	assert_int_equal(img.entry, ELF_PADDR + 0x400010);
	assert_int_equal(img.end, ELF_PADDR + 0x400000 + 0x1000);
	assert_memory_equal(gpa(m, ELF_PADDR), e.payload, ELF_FILESZ);
	assert_memory_equal(gpa(m, ELF_PADDR + 0x400000), e.payload + 0x80, 0x80);
	assert_true(test_all_bytes(gpa(m, ELF_PADDR + 0x400080), 0x1000 - 0x80, 0));
	assert_int_equal(*gpa(m, 0x10), SENTINEL);
}

/* Each case breaks one thing in a valid image (and may shorten the file). */
static void elf_trunc_ehdr(struct elf_img *e, size_t *len) { (void)e; *len = sizeof(Elf64_Ehdr) - 1; }
static void elf_trunc_phdr(struct elf_img *e, size_t *len) { (void)e; *len = sizeof(Elf64_Ehdr) + 20; }
static void elf_class32(struct elf_img *e, size_t *len) { (void)len; e->eh.e_ident[EI_CLASS] = ELFCLASS32; }
static void elf_big_endian(struct elf_img *e, size_t *len) { (void)len; e->eh.e_ident[EI_DATA] = ELFDATA2MSB; }
static void elf_i386(struct elf_img *e, size_t *len) { (void)len; e->eh.e_machine = EM_386; }
static void elf_aarch64(struct elf_img *e, size_t *len) { (void)len; e->eh.e_machine = EM_AARCH64; }
static void elf_dyn(struct elf_img *e, size_t *len) { (void)len; e->eh.e_type = ET_DYN; }
static void elf_rel(struct elf_img *e, size_t *len) { (void)len; e->eh.e_type = ET_REL; }
static void elf_phentsize(struct elf_img *e, size_t *len) { (void)len; e->eh.e_phentsize = sizeof(Elf32_Phdr); }
static void elf_phnum0(struct elf_img *e, size_t *len) { (void)len; e->eh.e_phnum = 0; }
static void elf_phnum1000(struct elf_img *e, size_t *len) { (void)len; e->eh.e_phnum = 1000; }
static void elf_phoff_past_end(struct elf_img *e, size_t *len) { (void)len; e->eh.e_phoff = sizeof(*e) + 8; }
static void elf_phoff_huge(struct elf_img *e, size_t *len) { (void)len; e->eh.e_phoff = UINT64_MAX - 8; }
static void elf_phdrs_cross_end(struct elf_img *e, size_t *len) { (void)len; e->eh.e_phoff = sizeof(*e) - 40; }
static void elf_data_past_end(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_offset = sizeof(*e) - 0x80; }
static void elf_offset_huge(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_offset = UINT64_MAX - 0x10; }
static void elf_file_cut(struct elf_img *e, size_t *len) { (void)e; *len -= 1; } /* cuts segment data */
static void elf_filesz_gt_memsz(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_memsz = ELF_FILESZ - 1; }
static void elf_below_1m(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_paddr = 0x80000; }
static void elf_at_zero(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_paddr = 0; }
static void elf_beyond_ram(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_paddr = RAM - ELF_MEMSZ + 1; }
static void elf_in_hole(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_paddr = LAYOUT_MMIO_HOLE; }
static void elf_paddr_wraps(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_paddr = UINT64_MAX - 0xff; }
static void elf_memsz_wraps(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_memsz = UINT64_MAX - 0xfff; }
static void elf_entry_outside(struct elf_img *e, size_t *len) { (void)len; e->eh.e_entry = ELF_VADDR + ELF_MEMSZ; }
static void elf_entry_low(struct elf_img *e, size_t *len) { (void)len; e->eh.e_entry = 0x1000; }
static void elf_no_load(struct elf_img *e, size_t *len) { (void)len; e->ph[0].p_type = PT_NOTE; }

/* Only the second of two segments is bad: the first must not be written. */
static void elf_second_bad(struct elf_img *e, size_t *len)
{
	(void)len;
	e->eh.e_phnum = 2;
	e->ph[1] = e->ph[0];
	e->ph[1].p_paddr = RAM;
	e->ph[1].p_vaddr = ELF_VADDR + RAM;
}

static void test_elf_hostile(void **state)
{
	static const struct {
		const char *name;
		void (*mutate)(struct elf_img *e, size_t *len);
	} cases[] = {
#define CASE(f) { #f, f }
		CASE(elf_trunc_ehdr), CASE(elf_trunc_phdr), CASE(elf_class32), CASE(elf_big_endian),
		CASE(elf_i386), CASE(elf_aarch64), CASE(elf_dyn), CASE(elf_rel), CASE(elf_phentsize),
		CASE(elf_phnum0), CASE(elf_phnum1000), CASE(elf_phoff_past_end), CASE(elf_phoff_huge),
		CASE(elf_phdrs_cross_end), CASE(elf_data_past_end), CASE(elf_offset_huge), CASE(elf_file_cut),
		CASE(elf_filesz_gt_memsz), CASE(elf_below_1m), CASE(elf_at_zero), CASE(elf_beyond_ram),
		CASE(elf_in_hole), CASE(elf_paddr_wraps), CASE(elf_memsz_wraps), CASE(elf_entry_outside),
		CASE(elf_entry_low), CASE(elf_no_load), CASE(elf_second_bad),
#undef CASE
	};
	struct guest_mem *m = *state;
	unsigned failed = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kernel_image img;
		struct elf_img e;
		size_t len = sizeof(e);
		int rc;

		elf_make(&e);
		cases[i].mutate(&e, &len);
		rc = elf_load_img(m, &e, len, &img);
		if (rc != CV_EINPUT) {
			print_error("%s: elf_load returned %d, want CV_EINPUT\n", cases[i].name, rc);
			failed++;
		}
		if (!ram_untouched(m)) {
			print_error("%s: guest RAM was written\n", cases[i].name);
			memset(m->host, SENTINEL, m->size);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* ---- format detection ------------------------------------------------- */

static void test_kernel_load_detects_format(void **state)
{
	struct guest_mem *m = *state;
	struct kernel_image img;
	struct elf_img e;
	struct bz b;

	elf_make(&e);
	assert_int_equal(kernel_load(m, (const uint8_t *)&e, sizeof(e), -1, "vmlinux", &img), 0);
	assert_int_equal(img.entry, ELF_PADDR + 0x10);

	bz_make(&b, 4, BZ_PM_SIZE);
	memcpy(b.data + BZ_HDR, &b.h, sizeof(b.h));
	assert_int_equal(kernel_load(m, b.data, b.len, -1, "bz", &img), 0);
	assert_int_equal(img.entry, 0x100200);
	free(b.data);
}

static void test_kernel_load_rejects_other_files(void **state)
{
	static const char text[] = "#!/bin/sh\necho this is not a kernel\n";
	struct guest_mem *m = *state;
	struct kernel_image img;
	uint8_t *zeros = calloc(1, 64 * 1024);

	assert_non_null(zeros);
	assert_int_equal(kernel_load(m, (const uint8_t *)text, sizeof(text), -1, "sh", &img), CV_EINPUT);
	assert_int_equal(kernel_load(m, zeros, 64 * 1024, -1, "zeros", &img), CV_EINPUT);
	assert_int_equal(kernel_load(m, (const uint8_t *)ELFMAG, SELFMAG, -1, "magic-only", &img), CV_EINPUT);
	assert_true(ram_untouched(m));
	free(zeros);
}

#define T(f) cmocka_unit_test_setup_teardown(f, mem_setup, mem_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_bz_valid),
		T(test_bz_end_covers_image_and_init_size),
		T(test_bz_setup_sects_zero_means_four),
		T(test_bz_other_setup_size),
		T(test_bz_fits_ram_exactly),
		T(test_bz_short_header_ignores_later_fields),
		T(test_bz_truncated),
		T(test_bz_bad_magic),
		T(test_bz_old_protocol),
		T(test_bz_no_64bit_entry),
		T(test_bz_setup_fills_file),
		T(test_bz_init_size_exceeds_ram),
		T(test_bz_pref_address_beyond_ram),
		T(test_bz_pref_address_wraps),
		T(test_elf_valid_virtual_entry),
		T(test_elf_physical_entry),
		T(test_elf_identity_mapped),
		T(test_elf_several_segments),
		T(test_elf_hostile),
		T(test_kernel_load_detects_format),
		T(test_kernel_load_rejects_other_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
