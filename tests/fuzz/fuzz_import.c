/* libFuzzer target: `cellvm import` of a hostile tar archive
 * (src/manager/archive.c: one top directory, plain member names and types,
 * a vm.json naming only the archive's own files), with CELLVM_HOME in the
 * fuzzer's directory, so the archive is written there and whatever the
 * import extracts or keeps lands under it; both are removed after each
 * input. The first byte picks whether a name is given (else the
 * archive's own top directory is the VM's name). */
#include <fcntl.h>

#include "fuzz.h"
#include "manager/archive.h"
#include "manager/bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char file[128], vms[128];
	int fd;

	if (!*file) {
		const char *dir = fuzz_dir("import");

		setenv("CELLVM_HOME", dir, 1);
		/* "imported VM NAME" for every success would bury libFuzzer's report. */
		if (!freopen("/dev/null", "w", stdout))
			abort();
		snprintf(file, sizeof(file), "%s/in.tar", dir);
		snprintf(vms, sizeof(vms), "%s/vms", dir);
	}
	if (!size)
		return 0;
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data + 1, size - 1) < 0)
		abort();
	close(fd);
	cellvm_module_archive.import_bundle(file, data[0] & 1 ? "fuzzvm" : NULL);
	remove_tree(vms);
	unlink(file);
	return 0;
}
