/* libFuzzer target: `cellvm run`'s command line (options_parse_run: the
 * --disk, --net, --memory, --cpus, ... value parsers), and the same
 * argument vector as Firecracker's flags (fc_flags_parse) and the
 * jailer's (jailer_parse). The input is the argument vector, arguments
 * separated by NUL bytes. Parsing opens no file (the jailer only stats
 * --exec-file): paths are only used when the VM is built. */
#include "fuzz.h"
#include "jail/jailer.h"
#include "vmm/fc_flags.h"
#include "vmm/options.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[MAX_ARGS + 1];
	struct vm_config cfg;
	char err[256];
	int argc = 0;

	memcpy(buf, data, size);
	buf[size] = 0;
	for (char *p = buf; argc < MAX_ARGS && p <= buf + size; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	static struct fc_flags f;
	struct jailer_args j;

	options_parse_run(argc, argv, &cfg, err, sizeof(err));
	fc_flags_parse(argc, argv, &cfg, &f, err, sizeof(err));
	if (jailer_parse(argc, argv, &j, err, sizeof(err)) == 0)
		jailer_free(&j);
	free(buf);
	return 0;
}
