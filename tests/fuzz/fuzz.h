/* Shared setup for the libFuzzer targets (tests/fuzz/fuzz_*.c): a private
 * temporary directory removed at exit (nothing a target writes may land
 * elsewhere), a fake guest whose RAM is a heap buffer (so ASan sees any
 * stray access), and a reader that takes fixed-size values off the input. */
#ifndef CELLVM_TESTS_FUZZ_FUZZ_H
#define CELLVM_TESTS_FUZZ_FUZZ_H

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "vmm/memory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir_path[64];

/* Empties the directory (targets make only plain files in it) and removes it. */
static inline void fuzz_dir_clean(void)
{
	DIR *d = opendir(fuzz_dir_path);
	struct dirent *de;
	char p[512];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", fuzz_dir_path, de->d_name);
		unlink(p);
	}
	closedir(d);
}

static inline void fuzz_dir_remove(void)
{
	fuzz_dir_clean();
	rmdir(fuzz_dir_path);
}

/* The target's own directory, made on first use. */
static inline const char *fuzz_dir(const char *target)
{
	if (!*fuzz_dir_path) {
		snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "/tmp/cellvm-fuzz-%s-XXXXXX", target);
		if (!mkdtemp(fuzz_dir_path)) {
			perror("mkdtemp");
			abort();
		}
		atexit(fuzz_dir_remove);
	}
	return fuzz_dir_path;
}

/* Guest RAM of `size` bytes below the MMIO hole, zeroed. */
static inline void fuzz_guest_init(struct guest_mem *m, uint64_t size)
{
	guest_mem_layout(m, size, LAYOUT_MMIO_HOLE);
	m->vm_fd = -1;
	m->ram_fd = -1;
	m->host = aligned_alloc(4096, size);
	if (!m->host)
		abort();
	memset(m->host, 0, size);
}

/* The input as a stream of values; past the end everything reads as 0. */
struct fuzz_in {
	const uint8_t *p;
	size_t left;
};

static inline uint64_t fuzz_take(struct fuzz_in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && in->left; i++, in->p++, in->left--)
		v |= (uint64_t)*in->p << (8 * i);
	return v;
}

#endif
