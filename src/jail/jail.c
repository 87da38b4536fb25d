#include "jail/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/err.h"

#define DEFAULT_BASE "/srv/jailer"
#define DEFAULT_MAX_FILES 2048 /* Firecracker's jailer's default */

const char jail_usage[] =
	"usage: cellvm jail --id ID --uid UID --gid GID [options] -- [cellvm run options]\n"
	"  --id ID              the jail's name: letters, digits and '-', up to 64\n"
	"  --uid UID, --gid GID  the user and group the VMM runs as\n"
	"  --chroot-base-dir DIR  the VMM's root is DIR/cellvm/ID/root (default " DEFAULT_BASE ");\n"
	"                       put the kernel, initrd and disks there: the VM's paths are inside it\n"
	"  --netns PATH         join this network namespace (e.g. /var/run/netns/NAME)\n"
	"  --new-pid-ns         run the VMM as PID 1 of a new PID namespace\n"
	"  --resource-limit no-file=N|fsize=N  open files (default 2048), largest file written\n"
	"  --cgroup FILE=VALUE  the VMM in cgroup PARENT/ID with FILE set, e.g. cpu.max=50000 (v2) or\n"
	"                       cpu.cfs_quota_us=50000 (v1), memory.max=, pids.max=, cpuset.cpus= (repeatable)\n"
	"  --cgroup-version 1|2  the hierarchy (default: 2 where the host's controllers are there)\n"
	"  --parent-cgroup NAME  (default cellvm)\n"
	"The VMM gets its own mount, IPC and UTS namespaces, a /dev with only kvm, net/tun,\n"
	"urandom and null, no capabilities and no_new_privs.\n";

static int parse_u64(const char *opt, const char *v, uint64_t max, uint64_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (!*v || *end || errno || v[0] == '-' || n > max)
		return cv_fmt(err, errlen, "invalid %s '%s': must be a number up to %llu", opt, v,
			      (unsigned long long)max);
	*out = n;
	return 0;
}

static int parse_limit(const char *v, struct jail_config *cfg, char *err, size_t errlen)
{
	if (!strncmp(v, "no-file=", 8))
		return parse_u64("--resource-limit no-file", v + 8, 1U << 20, &cfg->max_files, err, errlen);
	if (!strncmp(v, "fsize=", 6))
		return parse_u64("--resource-limit fsize", v + 6, UINT64_MAX >> 1, &cfg->max_fsize, err, errlen);
	return cv_fmt(err, errlen, "invalid --resource-limit '%s': use no-file=N or fsize=N", v);
}

static int parse_id(const char *v, struct jail_config *cfg, char *err, size_t errlen)
{
	size_t n = strlen(v);

	if (!n || n > JAIL_ID_MAX || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != n)
		return cv_fmt(err, errlen, "invalid --id '%s': letters, digits and '-', 1 to %d of them", v,
			      JAIL_ID_MAX);
	memcpy(cfg->id, v, n + 1);
	return 0;
}

int jail_parse(int argc, char **argv, struct jail_config *cfg, char *err, size_t errlen)
{
	bool have_uid = false, have_gid = false;
	int i;

	*cfg = (struct jail_config){ .base = DEFAULT_BASE, .exec_name = "cellvm", .max_files = DEFAULT_MAX_FILES };
	cfg->cg.version = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? 2 : 1;
	cfg->cg.parent = "cellvm";
	for (i = 0; i < argc && strcmp(argv[i], "--"); i++) {
		const char *name = argv[i];
		uint64_t n;
		int rc = 0;

		if (!strcmp(name, "--help") || !strcmp(name, "-h"))
			return 1;
		if (!strcmp(name, "--new-pid-ns")) {
			cfg->new_pid_ns = true;
			continue;
		}
		if (strcmp(name, "--id") && strcmp(name, "--uid") && strcmp(name, "--gid") &&
		    strcmp(name, "--chroot-base-dir") && strcmp(name, "--netns") && strcmp(name, "--resource-limit") &&
		    strcmp(name, "--cgroup") && strcmp(name, "--cgroup-version") && strcmp(name, "--parent-cgroup"))
			return cv_fmt(err, errlen, "unknown option '%s' (cellvm jail --help)", name);
		if (i + 1 >= argc)
			return cv_fmt(err, errlen, "option '%s' needs a value", name);
		const char *v = argv[++i];

		if (!strcmp(name, "--id")) {
			rc = parse_id(v, cfg, err, errlen);
		} else if (!strcmp(name, "--uid") || !strcmp(name, "--gid")) {
			rc = parse_u64(name, v, UINT32_MAX - 1, &n, err, errlen);
			if (!rc && name[2] == 'u') {
				cfg->uid = (uid_t)n;
				have_uid = true;
			} else if (!rc) {
				cfg->gid = (gid_t)n;
				have_gid = true;
			}
		} else if (!strcmp(name, "--chroot-base-dir")) {
			if (v[0] != '/')
				return cv_fmt(err, errlen, "invalid --chroot-base-dir '%s': must be an absolute path", v);
			cfg->base = v;
		} else if (!strcmp(name, "--netns")) {
			cfg->netns = v;
		} else if (!strcmp(name, "--cgroup")) {
			rc = cgroup_parse(&cfg->cg, v, err, errlen);
		} else if (!strcmp(name, "--cgroup-version")) {
			if (strcmp(v, "1") && strcmp(v, "2"))
				return cv_fmt(err, errlen, "invalid --cgroup-version '%s': use 1 or 2", v);
			cfg->cg.version = v[0] - '0';
		} else if (!strcmp(name, "--parent-cgroup")) {
			if (!*v || strlen(v) > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(v))
				return cv_fmt(err, errlen, "invalid --parent-cgroup '%s': letters, digits, '_' and '-'", v);
			cfg->cg.parent = v;
		} else {
			rc = parse_limit(v, cfg, err, errlen);
		}
		if (rc)
			return rc;
	}
	if (!cfg->id[0] || !have_uid || !have_gid)
		return cv_fmt(err, errlen, "cellvm jail needs --id, --uid and --gid");
	if (i == argc)
		return cv_fmt(err, errlen, "cellvm jail needs '--' before the VM's options (cellvm run's)");
	cfg->cg.id = cfg->id;
	cfg->run_argc = argc - i - 1;
	cfg->run_argv = argv + i + 1;
	return 0;
}

static int mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, mode) < 0 && errno != EEXIST ? -errno : 0;
}

/* The host's node for `host` made again at `at`, owned by the VMM's user:
 * the device numbers come from the host rather than a table. */
static int make_node(const struct jail_config *cfg, const char *host, const char *at, mode_t mode)
{
	struct stat st;

	if (stat(host, &st) < 0 || !S_ISCHR(st.st_mode)) {
		cv_err("jail: %s: %s", host, errno ? strerror(errno) : "not a character device");
		return CV_EFAIL;
	}
	if ((unlink(at) < 0 && errno != ENOENT) || mknod(at, S_IFCHR | mode, st.st_rdev) < 0 ||
	    chown(at, cfg->uid, cfg->gid) < 0 || chmod(at, mode) < 0) {
		cv_err("jail: cannot make %s: %s", at, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

static int build_root(const struct jail_config *cfg, const char *root)
{
	static const struct {
		const char *host, *in;
		mode_t mode;
	} nodes[] = {
		{ "/dev/kvm", "dev/kvm", 0600 },
		{ "/dev/net/tun", "dev/net/tun", 0600 },
		{ "/dev/urandom", "dev/urandom", 0666 },
		{ "/dev/null", "dev/null", 0666 },
	};
	char path[PATH_MAX];
	int rc;

	if ((rc = mkdirs(root, 0700)) || chown(root, cfg->uid, cfg->gid) < 0) {
		cv_err("jail: cannot make %s: %s", root, strerror(rc ? -rc : errno));
		return CV_EFAIL;
	}
	/* A mount point of its own, so that pivot_root can make it "/". */
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0) {
		cv_err("jail: cannot bind-mount %s: %s", root, strerror(errno));
		return CV_EFAIL;
	}
	if (snprintf(path, sizeof(path), "%s/dev/net/tun", root) >= (int)sizeof(path)) {
		cv_err("jail: %s: path too long", root);
		return CV_EFAIL;
	}
	*strrchr(path, '/') = 0;
	if ((rc = mkdirs(path, 0755))) {
		cv_err("jail: cannot make %s: %s", path, strerror(-rc));
		return CV_EFAIL;
	}
	/* Where Firecracker's API socket goes by default (/run/firecracker.socket). */
	/* Fits: shorter than dev/net/tun, checked above. */
	if (snprintf(path, sizeof(path), "%s/run", root) >= (int)sizeof(path))
		return CV_EFAIL;
	if ((rc = mkdirs(path, 0755)) || chown(path, cfg->uid, cfg->gid) < 0) {
		cv_err("jail: cannot make %s: %s", path, strerror(rc ? -rc : errno));
		return CV_EFAIL;
	}
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		/* Fits: the longest of them was checked above. */
		if (snprintf(path, sizeof(path), "%s/%s", root, nodes[i].in) >= (int)sizeof(path) ||
		    make_node(cfg, nodes[i].host, path, nodes[i].mode))
			return CV_EFAIL;
	}
	return 0;
}

static int enter_root(const char *root)
{
	/* pivot_root(".", ".") stacks the old root under the new one; detaching
	 * it leaves nothing of the host's tree reachable. */
	if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0) {
		cv_err("jail: cannot make %s the root: %s", root, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

static int limit(int resource, uint64_t n, const char *name)
{
	struct rlimit r = { .rlim_cur = n, .rlim_max = n };

	if (setrlimit(resource, &r) < 0) {
		cv_err("jail: cannot limit %s to %llu: %s", name, (unsigned long long)n, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

/* Every capability gone (bounding set, ambient, then the user's own), so
 * nothing the VMM runs can regain them. */
static int drop_privileges(const struct jail_config *cfg)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = { { 0 } };

	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			cv_err("jail: cannot drop capability %d: %s", cap, strerror(errno));
			return CV_EFAIL;
		}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
	    setresgid(cfg->gid, cfg->gid, cfg->gid) < 0 || setresuid(cfg->uid, cfg->uid, cfg->uid) < 0 ||
	    syscall(SYS_capset, &hdr, none) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		cv_err("jail: cannot become %u:%u without privileges: %s", (unsigned)cfg->uid, (unsigned)cfg->gid,
		       strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

static volatile pid_t inside = -1;

static void forward(int sig)
{
	if (inside > 0)
		kill(inside, sig);
}

/* The outside parent of a new PID namespace: passes stop signals in and
 * ends as the VMM ended. */
static int wait_inside(pid_t pid)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = forward };
	int status;

	inside = pid;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Forks. The child waits until its parent has put it in its cgroups, then
 * returns true to go on into the jail; the parent returns false with the
 * child's exit code once it ended, having removed the cgroups. */
static bool supervise(const struct jail_config *cfg, int *code)
{
	struct cgroup_plan cg = cfg->cg;
	int go[2], rc;
	pid_t pid;
	char byte = 0;

	if (pipe2(go, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		cv_err("jail: fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &byte, 1) != 1)
			_exit(1);
		close(go[0]);
		return true;
	}
	close(go[0]);
	if (cg.n && (rc = cgroup_join(&cg, pid))) {
		close(go[1]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		*code = rc == CV_EINPUT ? 2 : 1;
		return false;
	}
	if (write(go[1], &byte, 1) != 1) {
		cv_err("jail: cannot start the VMM: %s", strerror(errno));
		kill(pid, SIGKILL);
	}
	close(go[1]);
	*code = wait_inside(pid);
	cgroup_remove(&cg);
	return false;
}

/* The jailer's --daemonize: whoever started it sees exit status 0 at once;
 * the VMM goes on in a session of its own with stdio on /dev/null. */
static bool daemonize(int *code)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	pid_t pid = fd < 0 ? -1 : fork();

	if (pid < 0) {
		cv_err("jail: cannot daemonize: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (pid > 0) {
		close(fd);
		*code = 0;
		return false;
	}
	/* A second fork, as the jailer does: not a session leader, the VMM can
	 * never gain a controlling terminal. */
	if (setsid() < 0 || (pid = fork()) < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	if (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(1);
	close(fd);
	return true;
}

static int join_netns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		cv_err("invalid --netns '%s': %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CV_EINPUT;
	}
	close(fd);
	return 0;
}

bool jail_enter(const struct jail_config *cfg, int *code)
{
	char root[PATH_MAX];
	int rc;

	*code = 1;
	if (snprintf(root, sizeof(root), "%s/%s/%s/root", cfg->base, cfg->exec_name, cfg->id) >= (int)sizeof(root)) {
		cv_err("invalid --chroot-base-dir '%s': too long", cfg->base);
		*code = 2;
		return false;
	}
	if (geteuid() != 0) {
		cv_err("cellvm jail must start as root: it makes namespaces and device nodes, then drops to %u:%u",
		       (unsigned)cfg->uid, (unsigned)cfg->gid);
		return false;
	}
	if (cfg->netns && (rc = join_netns(cfg->netns))) {
		*code = 2;
		return false;
	}
	if (cfg->daemonize && !daemonize(code))
		return false;
	if (cfg->new_pid_ns && unshare(CLONE_NEWPID) < 0) {
		cv_err("jail: cannot make a PID namespace: %s", strerror(errno));
		return false;
	}
	/* A process stays outside when there is a PID namespace to be the
	 * parent of, or cgroups to put the VMM in and remove afterwards. */
	if ((cfg->new_pid_ns || cfg->cg.n) && !supervise(cfg, code))
		return false;
	/* Only the VMM's side: pivot_root moves every process of the mount
	 * namespace, and the supervisor must keep the host's view. */
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || sethostname(cfg->id, strlen(cfg->id)) < 0) {
		cv_err("jail: cannot make namespaces: %s", strerror(errno));
		if (cfg->new_pid_ns || cfg->cg.n)
			_exit(1);
		return false;
	}
	if (build_root(cfg, root) || enter_root(root) || limit(RLIMIT_NOFILE, cfg->max_files, "open files") ||
	    (cfg->max_fsize && limit(RLIMIT_FSIZE, cfg->max_fsize, "file size")) || drop_privileges(cfg)) {
		/* A supervised child: its parent reports the exit. */
		if (cfg->new_pid_ns || cfg->cg.n)
			_exit(1);
		return false;
	}
	return true;
}
