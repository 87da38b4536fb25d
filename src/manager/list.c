#include "manager/list.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/bundle.h"
#include "manager/vmproc.h"
#include "util/err.h"
#include "util/size.h"

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void format_uptime(long s, char *buf, size_t cap)
{
	if (s < 0)
		snprintf(buf, cap, "-");
	else if (s < 60)
		snprintf(buf, cap, "%lds", s);
	else if (s < 3600)
		snprintf(buf, cap, "%ldm%02lds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, cap, "%ldh%02ldm", s / 3600, s / 60 % 60);
	else
		snprintf(buf, cap, "%ldd%02ldh", s / 86400, s / 3600 % 24);
}

static json_t *known(long v)
{
	return v >= 0 ? json_integer(v) : json_null();
}

static void mib_or_dash(long mib, char *buf, size_t cap)
{
	if (mib < 0)
		snprintf(buf, cap, "-");
	else
		size_format((uint64_t)mib << 20, buf, cap);
}

/* The names of the bundles under the root, sorted (caller frees). */
static int bundle_names(char ***out, size_t *n)
{
	char root[4096], **names = NULL;
	struct dirent *e;
	size_t cap = 0;
	DIR *d;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = bundle_root(root, sizeof(root))))
		return rc;
	if (!(d = opendir(root))) {
		if (errno == ENOENT)
			return 0; /* no VM created yet */
		cv_err("cannot read '%s': %s", root, strerror(errno));
		return CV_EFAIL;
	}
	while ((e = readdir(d))) {
		char **more;

		/* Hidden entries are bundles being created or imported. */
		if (e->d_name[0] == '.' || bundle_check_name(e->d_name) || bundle_require(e->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			if (!(more = realloc(names, cap * sizeof(*names))))
				break;
			names = more;
		}
		if (!(names[*n] = strdup(e->d_name)))
			break;
		(*n)++;
	}
	closedir(d);
	qsort(names, *n, sizeof(*names), by_name);
	*out = names;
	return 0;
}

int manager_list(bool json)
{
	json_t *arr = json ? json_array() : NULL;
	char **names;
	size_t n;
	int rc;

	if ((rc = bundle_names(&names, &n)))
		return rc;
	if (!json)
		printf("%-20s %-12s %5s %8s %8s %8s %8s %8s %9s  %s\n", "NAME", "STATE", "VCPUS", "MEMORY", "RSS",
		       "BALLOON", "FREE", "PID", "UPTIME", "DISKS");
	for (size_t i = 0; i < n; i++) {
		struct bundle_info info;
		struct vm_status st;
		char mem[32], up[32], pid[16], rss[32], bal[32], freem[32];

		/* A bundle that cannot be read is listed as such, not skipped. */
		if (bundle_read_info(names[i], &info) || vmproc_status(names[i], &st)) {
			if (json)
				json_array_append_new(arr, json_pack("{s:s, s:s}", "name", names[i], "state", "broken"));
			else
				printf("%-20s %-12s\n", names[i], "broken");
			continue;
		}
		if (json) {
			json_array_append_new(
				arr, json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:s, s:s?, s:o, s:o, s:o}", "name", names[i],
					       "state", vm_state_name(st.state), "vcpus", (json_int_t)info.vcpus,
					       "memory_mib", (json_int_t)info.mem_mib, "pid",
					       st.pid ? json_integer(st.pid) : json_null(), "uptime_s",
					       st.uptime >= 0 ? json_integer(st.uptime) : json_null(), "drives", info.drives,
					       "migration", st.migration[0] ? st.migration : NULL, "rss_kib",
					       known(st.rss_kib), "balloon_mib", known(st.balloon_mib), "guest_free_mib",
					       known(st.guest_free_mib)));
			continue;
		}
		size_format((uint64_t)info.mem_mib << 20, mem, sizeof(mem));
		format_uptime(st.uptime, up, sizeof(up));
		snprintf(pid, sizeof(pid), "%ld", (long)st.pid);
		mib_or_dash(st.rss_kib < 0 ? -1 : st.rss_kib >> 10, rss, sizeof(rss));
		mib_or_dash(st.balloon_mib, bal, sizeof(bal));
		mib_or_dash(st.guest_free_mib, freem, sizeof(freem));
		/* A migration under way, or one that may have moved the VM, is
		 * what matters about it now. */
		printf("%-20s %-12s %5u %8s %8s %8s %8s %8s %9s  %s\n", names[i],
		       !strcmp(st.migration, "active")	  ? "migrating"
		       : !strcmp(st.migration, "unknown") ? "moved?"
							  : vm_state_name(st.state),
		       info.vcpus, mem, rss, bal, freem, st.pid ? pid : "-", up, info.ndrives ? info.drives : "-");
	}
	if (json) {
		char *text = json_dumps(arr, JSON_INDENT(2));

		if (text)
			puts(text);
		free(text);
		json_decref(arr);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return 0;
}
