#include "jail/jailer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/err.h"

static const char usage[] =
	"usage: cellvm jailer --id ID --exec-file FILE --uid UID --gid GID [options] [-- Firecracker flags]\n"
	"  (or this binary started as `jailer`)\n"
	"  --exec-file FILE     the VMM binary: its file name is the layout's middle part,\n"
	"                       CHROOT_BASE/<name>/ID/root; cellvm itself runs as the VMM there\n"
	"  --daemonize          detach: exit 0 at once, the VMM in a session of its own, stdio on /dev/null\n"
	"  --id, --uid, --gid, --chroot-base-dir, --netns, --new-pid-ns, --resource-limit, --cgroup,\n"
	"  --cgroup-version, --parent-cgroup   as cellvm jail (cellvm jail --help)\n";

void jailer_free(struct jailer_args *a)
{
	free(a->storage);
	a->storage = NULL;
}

/* The exec file must be a regular file; cellvm does not run it (it is the
 * VMM already) but names the layout after it, as the jailer does. */
static int exec_name(const char *v, const char **out, char *err, size_t errlen)
{
	struct stat st;
	const char *base = strrchr(v, '/');

	if (stat(v, &st) < 0)
		return cv_fmt(err, errlen, "invalid --exec-file '%s': %s", v, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return cv_fmt(err, errlen, "invalid --exec-file '%s': not a regular file", v);
	base = base ? base + 1 : v;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return cv_fmt(err, errlen, "invalid --exec-file '%s': no file name", v);
	*out = base;
	return 0;
}

int jailer_parse(int argc, char **argv, struct jailer_args *out, char *err, size_t errlen)
{
	const char *exec = NULL;
	bool daemon = false, dashes = false;
	char **jail_argv, **fc;
	int n = 0, rc, i;

	memset(out, 0, sizeof(*out));
	/* One array: cellvm jail's options (+ "--" and what follows), then
	 * the VMM's flags. */
	if (!(out->storage = calloc((size_t)argc * 2 + 8, sizeof(char *))))
		return cv_fmt(err, errlen, "out of memory");
	jail_argv = out->storage;
	for (i = 0; i < argc && !dashes; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			jailer_free(out);
			return 1;
		}
		if (!strcmp(argv[i], "--daemonize")) {
			daemon = true;
		} else if (!strcmp(argv[i], "--exec-file")) {
			if (i + 1 >= argc) {
				jailer_free(out);
				return cv_fmt(err, errlen, "option '--exec-file' needs a value");
			}
			exec = argv[++i];
		} else {
			dashes = !strcmp(argv[i], "--");
			jail_argv[n++] = argv[i];
		}
	}
	if (!dashes)
		jail_argv[n++] = "--";
	while (i < argc)
		jail_argv[n++] = argv[i++];
	if ((rc = jail_parse(n, jail_argv, &out->jail, err, errlen)) ||
	    (!exec && (rc = cv_fmt(err, errlen, "cellvm jailer needs --exec-file"))) ||
	    (rc = exec_name(exec, &out->jail.exec_name, err, errlen))) {
		jailer_free(out);
		return rc == 1 ? CV_EINPUT : rc;
	}
	out->jail.daemonize = daemon;
	/* As the jailer does: the VMM is told its id. */
	fc = jail_argv + n;
	fc[0] = "--id";
	fc[1] = out->jail.id;
	memcpy(fc + 2, out->jail.run_argv, (size_t)out->jail.run_argc * sizeof(char *));
	out->fc_argc = out->jail.run_argc + 2;
	out->fc_argv = fc;
	return 0;
}
