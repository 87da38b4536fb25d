/* cellvm: command dispatch. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "util/err.h"
#include "vmm/console.h"
#include "vmm/kvm.h"
#include "vmm/options.h"
#include "vmm/run.h"
#include "vmm/vm.h"

#ifndef CELLVM_VERSION
#define CELLVM_VERSION "0.0.0-dev"
#endif

enum { EXIT_OK = 0, EXIT_VM_FAILED = 1, EXIT_USAGE = 2 };

static const char usage[] =
	"usage: cellvm COMMAND [options]\n"
	"commands:\n"
	"  run        boot a VM (cellvm run --help)\n"
	"  --version  print the version\n";

static int exit_code(int rc)
{
	return rc == CV_EINPUT ? EXIT_USAGE : EXIT_VM_FAILED;
}

/* Stop signals are taken synchronously through a signalfd, so every
 * thread (vCPUs included) keeps them blocked. */
static int stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1); /* the vCPU kick: only vCPU threads take it */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -1;
	sigdelset(&set, SIGUSR1);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int cmd_run(int argc, char **argv)
{
	struct vm_config cfg;
	struct kvm kvm;
	struct vm vm;
	struct console con = { .in_fd = -1 };
	char err[256];
	int rc, sig_fd, code = EXIT_OK;
	enum vm_exit why;

	rc = options_parse_run(argc, argv, &cfg, err, sizeof(err));
	if (rc == 1) {
		fputs(options_run_usage, stdout);
		return EXIT_OK;
	}
	if (rc) {
		cv_err("%s", err);
		return EXIT_USAGE;
	}
	if ((sig_fd = stop_signals()) < 0 || vcpu_signals_init()) {
		cv_err("cannot set up signal handling");
		return EXIT_VM_FAILED;
	}
	if ((rc = kvm_open(&kvm)))
		return exit_code(rc);
	rc = vm_create(&vm, &kvm, &cfg, STDOUT_FILENO);
	if (!rc && (rc = console_open(&con, STDIN_FILENO)))
		vm_destroy(&vm);
	while (!rc) {
		why = vm_run(&vm, &con, sig_fd);
		vm_destroy(&vm);
		if (why == VM_EXIT_FAILED)
			code = EXIT_VM_FAILED;
		if (why != VM_EXIT_RESET || cfg.reboot != REBOOT_RESTART)
			break;
		rc = vm_create(&vm, &kvm, &cfg, STDOUT_FILENO);
	}
	if (rc)
		code = exit_code(rc);
	console_restore(&con);
	kvm_close(&kvm);
	close(sig_fd);
	return code;
}

int main(int argc, char **argv)
{
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
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 2, argv + 2);
	cv_err("unknown command '%s' (try cellvm --help)", argv[1]);
	return EXIT_USAGE;
}
