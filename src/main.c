/* cellvm: command dispatch. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/switch.h"
#include "disk/disk.h"
#include "jail/jail.h"
#include "jail/jailer.h"
#include "manager/cli.h"
#include "util/err.h"
#include "util/signals.h"
#include "vmm/fc_flags.h"
#include "vmm/modules.h"
#include "vmm/options.h"
#include "vmm/run.h"
#include "vmm/vcpu.h"

#ifndef CELLVM_VERSION
#define CELLVM_VERSION "0.0.0-dev"
#endif

enum { EXIT_OK = 0, EXIT_VM_FAILED = 1, EXIT_USAGE = 2 };

static const char usage[] =
	"usage: cellvm COMMAND [options]\n"
	"commands:\n"
	"  run        boot a VM (cellvm run --help)\n"
	"  jail       boot a VM confined: namespaces, a root of its own, no privileges (cellvm jail --help)\n"
	"  firecracker, jailer\n"
	"             Firecracker's and its jailer's command lines (also as argv[0] `firecracker`, `jailer`)\n"
	"  create, start, stop, list, console, pause, resume, delete, export, import\n"
	"             manage VMs kept as bundles under $CELLVM_HOME (cellvm create --help)\n"
	"  disk       create, inspect, convert and snapshot disk images (cellvm disk --help)\n"
	"  switch     run a virtual switch for VMs on this host (cellvm switch --help)\n"
	"  --version  print the version\n";

static int run_vm(struct vm_config *cfg)
{
	int rc, sig_fd;

	/* Every thread (vCPUs included) keeps the stop signals blocked, and
	 * SIGUSR1, the vCPU kick, which only vCPU threads take. */
	if ((sig_fd = stop_signals_fd(SIGUSR1)) < 0 || vcpu_signals_init()) {
		cv_err("cannot set up signal handling");
		return EXIT_VM_FAILED;
	}
	rc = run_main(cfg, sig_fd);
	close(sig_fd);
	return rc;
}

/* 0 and cfg, or the exit status (EXIT_OK after --help). */
static int parse_run(int argc, char **argv, struct vm_config *cfg, int *code)
{
	char err[256];
	int rc = options_parse_run(argc, argv, cfg, err, sizeof(err));

	if (rc == 1) {
		fputs(options_run_usage, stdout);
		*code = EXIT_OK;
		return 1;
	}
	if (rc) {
		cv_err("%s", err);
		*code = EXIT_USAGE;
		return 1;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	struct vm_config cfg;
	int code;

	return parse_run(argc, argv, &cfg, &code) ? code : run_vm(&cfg);
}

static int cmd_firecracker(int argc, char **argv)
{
	static struct fc_flags f;
	struct vm_config cfg;
	char err[256];
	int rc = fc_flags_parse(argc, argv, &cfg, &f, err, sizeof(err));

	if (rc == 1)
		return EXIT_OK;
	if (rc) {
		cv_err("%s", err);
		return EXIT_USAGE;
	}
	return run_vm(&cfg);
}

/* The VMM's flags are read before the jail is entered: its modules must be
 * loaded while the executable's directory can still be reached. */
static int cmd_jailer(int argc, char **argv)
{
	static struct fc_flags f;
	struct jailer_args a;
	struct vm_config cfg;
	char err[256];
	int rc = jailer_parse(argc, argv, &a, err, sizeof(err)), code;

	if (rc == 1)
		return EXIT_OK;
	if (rc) {
		cv_err("%s", err);
		return EXIT_USAGE;
	}
	if ((rc = fc_flags_parse(a.fc_argc, a.fc_argv, &cfg, &f, err, sizeof(err)))) {
		if (rc != 1)
			cv_err("%s", err);
		jailer_free(&a);
		return rc == 1 ? EXIT_OK : EXIT_USAGE;
	}
	if (vm_modules_load(&cfg, true))
		code = EXIT_VM_FAILED;
	else
		code = jail_enter(&a.jail, &code) ? run_vm(&cfg) : code;
	jailer_free(&a);
	return code;
}

/* Started under another name (a link named `firecracker` or `jailer`):
 * that tool's command line. */
static const char *invoked_as(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	return base ? base + 1 : argv0;
}

/* The VM's options are read before the jail is entered: its modules must
 * be loaded while the executable's directory can still be reached. */
static int cmd_jail(int argc, char **argv)
{
	struct jail_config jc;
	struct vm_config cfg;
	char err[256];
	int rc = jail_parse(argc, argv, &jc, err, sizeof(err)), code;

	if (rc == 1) {
		fputs(jail_usage, stdout);
		return EXIT_OK;
	}
	if (rc) {
		cv_err("%s", err);
		return EXIT_USAGE;
	}
	if (parse_run(jc.run_argc, jc.run_argv, &cfg, &code))
		return code;
	if (vm_modules_load(&cfg, true))
		return EXIT_VM_FAILED;
	if (!jail_enter(&jc, &code))
		return code;
	return run_vm(&cfg);
}

int main(int argc, char **argv)
{
	const char *self = argc > 0 ? invoked_as(argv[0]) : "cellvm";

	if (!strcmp(self, "firecracker"))
		return cmd_firecracker(argc - 1, argv + 1);
	if (!strcmp(self, "jailer"))
		return cmd_jailer(argc - 1, argv + 1);
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("cellvm %s\n", CELLVM_VERSION);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "disk"))
		return disk_main(argc - 2, argv + 2);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 2, argv + 2);
	if (!strcmp(argv[1], "jail"))
		return cmd_jail(argc - 2, argv + 2);
	if (!strcmp(argv[1], "firecracker"))
		return cmd_firecracker(argc - 2, argv + 2);
	if (!strcmp(argv[1], "jailer"))
		return cmd_jailer(argc - 2, argv + 2);
	if (manager_is_command(argv[1]))
		return manager_main(argv[1], argc - 2, argv + 2);
	if (!strcmp(argv[1], "switch"))
		return switch_main(argc - 2, argv + 2);
	cv_err("unknown command '%s' (try cellvm --help)", argv[1]);
	return EXIT_USAGE;
}
