#include "manager/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/archive.h"
#include "manager/attach.h"
#include "manager/bundle.h"
#include "manager/list.h"
#include "manager/migrate.h"
#include "manager/receive.h"
#include "manager/snapshot.h"
#include "manager/vmproc.h"
#include "util/err.h"
#include "util/module.h"
#include "vmm/balloon_opt.h"
#include "vmm/options.h"

#define DEFAULT_STOP_TIMEOUT 30

static const char usage[] =
	"usage:\n"
	"  cellvm create NAME --kernel PATH [--initrd PATH] [--cmdline STR] [--cpus N] [--memory SIZE]\n"
	"                [--disk PATH[,ro][,id=ID]]... [--net tap=NAME[,mac=MAC]]... [--reference-disks]\n"
	"      a bundle in $CELLVM_HOME/vms/NAME (default ~/.local/share/cellvm/vms/NAME) with copies of\n"
	"      the kernel, initrd and disks; --reference-disks keeps the disks where they are instead\n"
	"  cellvm start NAME            run it in the background\n"
	"  cellvm console NAME          attach this terminal to its serial console (Ctrl-A x detaches)\n"
	"  cellvm list [--json]         every VM: state, vCPUs, memory, RSS, balloon, guest free memory,\n"
	"                               PID, uptime, disks\n"
	"  cellvm balloon NAME SIZE     set the running VM's balloon to SIZE (MiB, or 256M, 1G; the VM was\n"
	"                               created with --balloon)\n"
	"  cellvm pause NAME | resume NAME\n"
	"  cellvm stop NAME [--timeout SECONDS] [--force]\n"
	"      asks the guest to shut down (Ctrl+Alt+Del), stops it after the timeout (default 30);\n"
	"      --force stops it at once\n"
	"  cellvm delete NAME           remove a stopped VM's bundle (referenced disks stay)\n"
	"  cellvm export NAME FILE.tar  the whole VM as one file\n"
	"  cellvm import FILE.tar [NAME]\n"
	"  cellvm snapshot create NAME [SNAP]   save the running VM (memory, devices, and its qcow2 disks\n"
	"                                       frozen as IMG.SNAP at the same instant) in its bundle\n"
	"  cellvm snapshot list NAME\n"
	"  cellvm snapshot restore NAME SNAP    continue the stopped VM from SNAP (its disks go back too)\n"
	"  cellvm snapshot delete NAME SNAP     (a disk layer stays while the disk is built on it)\n"
	"  cellvm migrate NAME tcp:HOST:PORT --token T [--downtime-ms N] [--max-time S] [--bandwidth MIB]\n"
	"                 [--copy-storage] [--no-auto-converge] [--tls]\n"
	"      move the running VM to `cellvm receive` (or `cellvm run --incoming`) there; disks kept in\n"
	"      the bundle go along; Ctrl-C (or cellvm migrate NAME --cancel) gives up, the VM stays here\n"
	"  cellvm receive NAME --listen tcp:ADDR:PORT --token T [--tls]\n"
	"      wait for a VM migrating here and keep it as managed VM NAME\n";

static const char *const commands[] = { "create", "start", "stop",   "list",   "console",
					"pause",  "resume", "delete", "export", "import", "snapshot", "migrate", "receive", "balloon" };

bool manager_is_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i]))
			return true;
	return false;
}

static int status(int rc)
{
	return rc == 0 ? 0 : rc == CV_EINPUT ? 2 : 1;
}

static int bad(const char *fmt, const char *arg)
{
	cv_err(fmt, arg);
	return 2;
}

/* Options that belong to `cellvm run` but have no place in a bundle. */
static const char *const run_only[] = { "--reboot",      "--transport",   "--console", "--name",
					"--api-sock",    "--config-file", "--console-sock", "--pid-file" };

static int cmd_create(int argc, char **argv)
{
	static struct vm_config cfg;
	char err[256], **rest;
	bool referenced = false;
	int n = 0, rc;

	if (argc < 1 || argv[0][0] == '-')
		return bad("%s", "create needs a NAME first (cellvm create NAME --kernel PATH ...)");
	if (!(rest = calloc((size_t)argc, sizeof(*rest))))
		return 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--reference-disks")) {
			referenced = true;
			continue;
		}
		for (size_t j = 0; j < sizeof(run_only) / sizeof(run_only[0]); j++) {
			size_t len = strlen(run_only[j]);

			if (!strncmp(argv[i], run_only[j], len) && (!argv[i][len] || argv[i][len] == '=')) {
				free(rest);
				return bad("option '%s' is not stored in a bundle (see cellvm create --help)", run_only[j]);
			}
		}
		rest[n++] = argv[i];
	}
	rc = options_parse_run(n, rest, &cfg, err, sizeof(err));
	free(rest);
	if (rc) {
		cv_err("%s", err);
		return 2;
	}
	if ((rc = bundle_create(argv[0], &cfg, referenced)))
		return status(rc);
	printf("created VM %s (%u vCPU%s, %llu MiB, %u disk%s %s)\n", argv[0], cfg.cpus, cfg.cpus == 1 ? "" : "s",
	       (unsigned long long)(cfg.memory >> 20), cfg.ndisks, cfg.ndisks == 1 ? "" : "s",
	       referenced ? "referenced" : "copied");
	return 0;
}

static int parse_timeout(const char *v, int *out)
{
	char *end;
	long t;

	errno = 0;
	t = strtol(v, &end, 10);
	if (!*v || *end || errno || t < 0 || t > 86400)
		return bad("invalid --timeout '%s': seconds, 0 to 86400", v);
	*out = (int)t;
	return 0;
}

static int cmd_stop(int argc, char **argv)
{
	int timeout = DEFAULT_STOP_TIMEOUT;
	const char *name = NULL;
	bool force = false;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--force"))
			force = true;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (parse_timeout(argv[++i], &timeout))
				return 2;
		} else if (!strncmp(argv[i], "--timeout=", 10)) {
			if (parse_timeout(argv[i] + 10, &timeout))
				return 2;
		} else if (argv[i][0] == '-' || name)
			return bad("stop: unexpected argument '%s' (cellvm stop NAME [--timeout S] [--force])", argv[i]);
		else
			name = argv[i];
	}
	if (!name)
		return bad("%s", "stop needs a NAME");
	return status(vmproc_stop(name, timeout, force));
}

/* For commands taking min to max plain arguments and no options. */
static int positional(const char *cmd, int argc, char **argv, int min, int max, const char *shape)
{
	for (int i = 0; i < argc; i++) {
		if (argv[i][0] == '-') {
			cv_err("%s: unknown option '%s' (cellvm %s %s)", cmd, argv[i], cmd, shape);
			return 2;
		}
	}
	if (argc < min || argc > max) {
		cv_err("usage: cellvm %s %s", cmd, shape);
		return 2;
	}
	return 0;
}

static int cmd_delete(const char *name)
{
	char dir[4096];
	struct vm_status st;
	int rc;

	if ((rc = bundle_require(name)) || (rc = bundle_dir(name, dir, sizeof(dir))) ||
	    (rc = vmproc_status(name, &st)))
		return status(rc);
	if (st.pid || st.state == VMS_STARTING)
		return bad("VM '%s' is running: stop it first", name);
	if ((rc = remove_tree(dir)))
		return status(rc);
	printf("deleted VM %s\n", name);
	return 0;
}

static int cmd_balloon(const char *name, const char *size)
{
	char body[64];
	uint32_t mib;
	int rc;

	if (!balloon_parse_mib(size, &mib))
		return bad("invalid balloon size '%s': MiB (e.g. 256) or a size (256M, 1G)", size);
	if ((rc = bundle_require(name)))
		return status(rc);
	snprintf(body, sizeof(body), "{\"amount_mib\": %u}", mib);
	if ((rc = vmproc_api(name, "PATCH", "/balloon", body, VMPROC_API_TIMEOUT_MS)))
		return status(rc);
	printf("balloon of VM %s set to %u MiB\n", name, mib);
	return 0;
}

static int cmd_archive(const char *cmd, int argc, char **argv)
{
	bool out = !strcmp(cmd, "export");
	const struct archive_module *ar;
	int rc;

	if ((rc = out ? positional(cmd, argc, argv, 2, 2, "NAME FILE.tar")
		      : positional(cmd, argc, argv, 1, 2, "FILE.tar [NAME]")))
		return rc;
	if (!(ar = module_get("archive")))
		return 1;
	return status(out ? ar->export_bundle(argv[0], argv[1])
			  : ar->import_bundle(argv[0], argc == 2 ? argv[1] : NULL));
}

int manager_main(const char *cmd, int argc, char **argv)
{
	int rc;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		}
	}
	if (!strcmp(cmd, "create"))
		return cmd_create(argc, argv);
	if (!strcmp(cmd, "stop"))
		return cmd_stop(argc, argv);
	if (!strcmp(cmd, "list")) {
		if (argc > 1 || (argc == 1 && strcmp(argv[0], "--json")))
			return bad("list: unexpected argument '%s' (cellvm list [--json])", argv[argc > 1 ? 1 : 0]);
		return status(manager_list(argc == 1));
	}
	if (!strcmp(cmd, "snapshot"))
		return snapshot_main(argc, argv);
	if (!strcmp(cmd, "migrate"))
		return migrate_main(argc, argv);
	if (!strcmp(cmd, "receive"))
		return receive_main(argc, argv);
	if (!strcmp(cmd, "export") || !strcmp(cmd, "import"))
		return cmd_archive(cmd, argc, argv);
	if (!strcmp(cmd, "balloon"))
		return (rc = positional(cmd, argc, argv, 2, 2, "NAME SIZE")) ? rc : cmd_balloon(argv[0], argv[1]);
	if ((rc = positional(cmd, argc, argv, 1, 1, "NAME")))
		return rc;
	if (!strcmp(cmd, "start"))
		return status(vmproc_start(argv[0], NULL));
	if (!strcmp(cmd, "console"))
		return status(console_attach(argv[0]));
	if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
		if ((rc = vmproc_pause(argv[0], !strcmp(cmd, "pause"))))
			return status(rc);
		printf("%s VM %s\n", !strcmp(cmd, "pause") ? "paused" : "resumed", argv[0]);
		return 0;
	}
	return cmd_delete(argv[0]);
}
