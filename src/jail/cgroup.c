#include "jail/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/err.h"

int cgroup_parse(struct cgroup_plan *p, const char *v, char *err, size_t errlen)
{
	const char *eq = strchr(v, '=');
	size_t n = eq ? (size_t)(eq - v) : 0;
	struct cgroup_setting *s;

	if (p->n == CGROUP_MAX_SETTINGS)
		return cv_fmt(err, errlen, "invalid --cgroup '%s': more than %d settings", v, CGROUP_MAX_SETTINGS);
	/* A file of the cgroup itself: controller.name, nothing that walks. */
	if (!eq || !n || n >= sizeof(s->file) || !memchr(v, '.', n) || v[0] == '.' ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_.") != n || !eq[1])
		return cv_fmt(err, errlen, "invalid --cgroup '%s': use FILE=VALUE, e.g. cpu.max=50000", v);
	s = &p->set[p->n++];
	memcpy(s->file, v, n);
	s->file[n] = 0;
	s->value = eq + 1;
	return 0;
}

/* Where the hierarchy holding `controller` is mounted (v1), or the
 * unified hierarchy (v2, controller NULL). */
static int hierarchy(const char *controller, char *out, size_t cap)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *m;
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (rc && (m = getmntent(f))) {
		/* hasmntopt matches whole options: "cpu" is not "cpuset". */
		if (controller ? strcmp(m->mnt_type, "cgroup") || !hasmntopt(m, controller)
			       : strcmp(m->mnt_type, "cgroup2"))
			continue;
		rc = snprintf(out, cap, "%s", m->mnt_dir) >= (int)cap ? -ENAMETOOLONG : 0;
	}
	endmntent(f);
	return rc;
}

static int write_file(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;
	size_t len = strlen(value);

	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		rc = -errno;
	close(fd);
	return rc;
}

static int read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/* v1 cpuset: a new cgroup starts with no CPUs or memory nodes, and no task
 * may join it until they are given: take the parent's. */
static int inherit_cpuset(const char *dir)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };

	for (size_t i = 0; i < 2; i++) {
		char path[512], up[512], val[256];
		int rc;

		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (read_file(path, val, sizeof(val)) == 0 && val[0] && val[0] != '\n')
			continue;
		snprintf(up, sizeof(up), "%s/../%s", dir, files[i]);
		if ((rc = read_file(up, val, sizeof(val))) || (rc = write_file(path, val)))
			return rc;
	}
	return 0;
}

/* mkdir base/parent and base/parent/id; records the leaf for removal. */
static int make_dirs(struct cgroup_plan *p, const char *base, bool cpuset, char *leaf, size_t cap)
{
	char mid[256];
	int rc;

	if (snprintf(mid, sizeof(mid), "%s/%s", base, p->parent) >= (int)sizeof(mid) ||
	    snprintf(leaf, cap, "%s/%s", mid, p->id) >= (int)cap)
		return -ENAMETOOLONG;
	for (unsigned i = 0; i < p->ndirs; i++)
		if (!strcmp(p->dirs[i], leaf))
			return 0;
	if (mkdir(mid, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (cpuset && (rc = inherit_cpuset(mid)))
		return rc;
	if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(p->dirs[p->ndirs++], sizeof(p->dirs[0]), "%s", leaf);
	return cpuset ? inherit_cpuset(leaf) : 0;
}

/* v2: a controller works in a cgroup only once every ancestor passes it
 * down (cgroup.subtree_control of dir). */
static int enable_v2(const char *dir, const char *controller)
{
	char path[512], plus[72];

	snprintf(plus, sizeof(plus), "+%s", controller);
	if (snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	return write_file(path, plus);
}

int cgroup_join(struct cgroup_plan *p, pid_t pid)
{
	char pidbuf[24];

	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	p->ndirs = 0;
	for (unsigned i = 0; i < p->n; i++) {
		struct cgroup_setting *s = &p->set[i];
		char controller[64], base[256], leaf[256], path[512];
		int rc;

		snprintf(controller, sizeof(controller), "%.*s", (int)strcspn(s->file, "."), s->file);
		if ((rc = hierarchy(p->version == 1 ? controller : NULL, base, sizeof(base)))) {
			cv_err("invalid --cgroup '%s=%s': no cgroup v%d hierarchy%s%s on this host", s->file, s->value,
			       p->version, p->version == 1 ? " for " : "", p->version == 1 ? controller : "");
			cgroup_remove(p);
			return CV_EINPUT;
		}
		if (p->version == 2 && (rc = enable_v2(base, controller))) {
			cv_err("invalid --cgroup '%s=%s': cannot enable the %s controller: %s", s->file, s->value,
			       controller, strerror(-rc));
			cgroup_remove(p);
			return CV_EINPUT;
		}
		if ((rc = make_dirs(p, base, p->version == 1 && !strcmp(controller, "cpuset"), leaf, sizeof(leaf)))) {
			cv_err("jail: cannot make the cgroup under %s: %s", base, strerror(-rc));
			cgroup_remove(p);
			return CV_EFAIL;
		}
		if (p->version == 2) {
			snprintf(path, sizeof(path), "%s/%s", base, p->parent);
			if ((rc = enable_v2(path, controller))) {
				cv_err("jail: cannot enable the %s controller in %s: %s", controller, path, strerror(-rc));
				cgroup_remove(p);
				return CV_EFAIL;
			}
		}
		snprintf(path, sizeof(path), "%s/%s", leaf, s->file);
		if ((rc = write_file(path, s->value))) {
			cv_err("invalid --cgroup '%s=%s': %s", s->file, s->value,
			       rc == -ENOENT ? "no such file in that cgroup" : strerror(-rc));
			cgroup_remove(p);
			return CV_EINPUT;
		}
	}
	for (unsigned i = 0; i < p->ndirs; i++) {
		char path[512];
		int rc;

		snprintf(path, sizeof(path), "%s/cgroup.procs", p->dirs[i]);
		if ((rc = write_file(path, pidbuf))) {
			cv_err("jail: cannot move the VMM into %s: %s", p->dirs[i], strerror(-rc));
			cgroup_remove(p);
			return CV_EFAIL;
		}
	}
	return 0;
}

void cgroup_remove(struct cgroup_plan *p)
{
	/* A cgroup can go only once empty, and a task that was reaped still
	 * counts for a moment (EBUSY); the parent stays for the others. */
	for (unsigned i = 0; i < p->ndirs; i++) {
		int tries = 0;

		while (rmdir(p->dirs[i]) < 0 && errno == EBUSY && ++tries < 200)
			usleep(10000);
		if (access(p->dirs[i], F_OK) == 0)
			cv_warn("jail: cgroup %s stays: %s", p->dirs[i], strerror(errno));
	}
	p->ndirs = 0;
}
