/* A jailed VMM's cgroup (`cellvm jail --cgroup FILE=VALUE`, Firecracker's
 * jailer's form): PARENT/ID in each controller a setting names, cgroup v1
 * (a hierarchy per controller) or v2 (one hierarchy). */
#ifndef CELLVM_JAIL_CGROUP_H
#define CELLVM_JAIL_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

#define CGROUP_MAX_SETTINGS 16

struct cgroup_setting {
	char file[64];	   /* e.g. cpu.max, cpu.cfs_quota_us, memory.max */
	const char *value; /* what is written to it */
};

struct cgroup_plan {
	int version; /* 1 or 2 */
	const char *parent;
	const char *id;
	struct cgroup_setting set[CGROUP_MAX_SETTINGS];
	unsigned n;
	/* Made by cgroup_join, removed by cgroup_remove. */
	char dirs[CGROUP_MAX_SETTINGS][256];
	unsigned ndirs;
};

/* "FILE=VALUE" into the next setting; CV_EINPUT naming v otherwise. */
int cgroup_parse(struct cgroup_plan *p, const char *v, char *err, size_t errlen);
/* Makes the cgroups, writes every setting and moves pid in. CV_EINPUT
 * when the kernel refuses a setting (named in the message), CV_EFAIL for
 * other failures; what was made is removed again on failure. */
int cgroup_join(struct cgroup_plan *p, pid_t pid);
/* Removes the cgroups once nothing runs in them. */
void cgroup_remove(struct cgroup_plan *p);

#endif
