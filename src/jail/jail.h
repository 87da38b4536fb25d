/* `cellvm jail`: runs `cellvm run` confined, in the manner of Firecracker's
 * jailer. The VMM sees only a root directory prepared for it
 * (CHROOT_BASE/cellvm/ID/root, made if missing, with /dev holding kvm,
 * net/tun, urandom and null), in its own mount, IPC and UTS namespaces and
 * optionally its own PID and network namespaces, as an unprivileged user
 * with no capabilities, no_new_privs and resource limits. The VM's paths are
 * inside that root. */
#ifndef CELLVM_JAIL_JAIL_H
#define CELLVM_JAIL_JAIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "jail/cgroup.h"

#define JAIL_ID_MAX 64

struct jail_config {
	char id[JAIL_ID_MAX + 1];
	const char *base; /* --chroot-base-dir */
	const char *exec_name; /* the layout's middle part: BASE/EXEC_NAME/ID/root ("cellvm") */
	bool daemonize;        /* the jailer's --daemonize: detach, stdio on /dev/null */
	uid_t uid;
	gid_t gid;
	const char *netns; /* a network namespace to join, e.g. /var/run/netns/NAME */
	bool new_pid_ns;
	uint64_t max_files; /* RLIMIT_NOFILE */
	uint64_t max_fsize; /* RLIMIT_FSIZE, 0: unlimited */
	struct cgroup_plan cg;
	int run_argc;	    /* what follows `--`: cellvm run's options */
	char **run_argv;
};

extern const char jail_usage[];

/* Parses `cellvm jail` options up to `--`. 1 for --help; CV_EINPUT with a
 * one-line message naming the bad value. */
int jail_parse(int argc, char **argv, struct jail_config *cfg, char *err, size_t errlen);

/* Builds the jail and enters it. Returns true when the caller is the
 * process that goes on to run the VM inside; false when it must exit with
 * *code (a failure, or the outside parent of a new PID namespace whose
 * child ended with *code). */
bool jail_enter(const struct jail_config *cfg, int *code);

#endif
