/* libFuzzer target: the kernel loaders (src/arch/x86/bzimage.c, elf.c)
 * on a hostile image, into a fake guest of 16 MiB. The first input byte
 * picks the loader (bzImage, ELF, or detection by content); the rest is
 * the file. ELF segments are copied, never mapped (no fd). */
#include "arch/x86/kernel.h"
#include "fuzz.h"

#define RAM (16ULL << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem m;
	struct kernel_image k;
	uint8_t *file;

	if (!m.host)
		fuzz_guest_init(&m, RAM);
	if (!size)
		return 0;
	file = malloc(size - 1 + 1);
	memcpy(file, data + 1, size - 1);
	switch (data[0] % 3) {
	case 0:
		bzimage_load(&m, file, size - 1, "fuzz", &k);
		break;
	case 1:
		elf_load(&m, file, size - 1, -1, "fuzz", &k);
		break;
	default:
		kernel_load(&m, file, size - 1, -1, "fuzz", &k);
	}
	free(file);
	return 0;
}
