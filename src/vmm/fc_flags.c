#include "vmm/fc_flags.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "util/err.h"
#include "vmm/seccomp.h"

#ifndef CELLVM_VERSION
#define CELLVM_VERSION "0.0.0-dev"
#endif

/* Up to what a request buffer per API connection may reasonably hold. */
#define MAX_PAYLOAD (16ULL << 20)

static const char usage[] =
	"usage: cellvm firecracker [Firecracker's flags]   (or this binary started as `firecracker`)\n"
	"  --api-sock PATH        the API socket (default " FC_DEFAULT_API_SOCK ")\n"
	"  --id ID                the microVM's id (default " FC_DEFAULT_ID ")\n"
	"  --config-file FILE     boot the microVM this JSON file describes\n"
	"  --no-api               no API socket (needs --config-file)\n"
	"  --level L, --log-path PATH, --show-level, --show-log-origin   the logger (PUT /logger)\n"
	"  --metrics-path PATH    the metrics (PUT /metrics)\n"
	"  --no-seccomp           no syscall filters; --seccomp-filter FILE keeps cellvm's own\n"
	"  --http-api-max-payload-size N, --mmds-size-limit N   bytes (default 51200)\n"
	"  --boot-timer, --start-time-us N, --start-time-cpu-us N, --parent-cpu-time-us N   accepted\n"
	"  --version\n";

static bool takes_value(const char *name)
{
	static const char *const with[] = { "--api-sock",	"--id",
					    "--config-file",	"--level",
					    "--log-path",	"--metrics-path",
					    "--seccomp-filter", "--http-api-max-payload-size",
					    "--mmds-size-limit", "--start-time-us",
					    "--start-time-cpu-us", "--parent-cpu-time-us",
					    "--module" };

	for (size_t i = 0; i < sizeof(with) / sizeof(with[0]); i++)
		if (!strcmp(name, with[i]))
			return true;
	return false;
}

static int parse_bytes(const char *name, const char *v, uint64_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (!*v || *end || errno || v[0] == '-' || !n || n > MAX_PAYLOAD)
		return cv_fmt(err, errlen, "invalid %s '%s': a number of bytes, 1 to %llu", name, v, MAX_PAYLOAD);
	*out = n;
	return 0;
}

static int parse_id(const char *v, struct fc_flags *f, char *err, size_t errlen)
{
	size_t n = strlen(v);

	if (!n || n >= sizeof(f->id) ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != n)
		return cv_fmt(err, errlen, "invalid --id '%s': letters, digits and '-', 1 to %zu of them", v,
			      sizeof(f->id) - 1);
	memcpy(f->id, v, n + 1);
	return 0;
}

/* Renders a JSON object into buf (the API parses and checks it later). */
static int render(json_t *obj, char *buf, size_t cap, char *err, size_t errlen)
{
	char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	int rc = 0;

	if (!s)
		rc = cv_fmt(err, errlen, "out of memory");
	else if (strlen(s) >= cap)
		rc = cv_fmt(err, errlen, "invalid --log-path/--metrics-path: too long");
	else
		strcpy(buf, s);
	free(s);
	json_decref(obj);
	return rc;
}

int fc_flags_parse(int argc, char **argv, struct vm_config *cfg, struct fc_flags *f, char *err, size_t errlen)
{
	const char *level = NULL, *log_path = NULL, *metrics = NULL, *module = NULL;
	bool no_api = false, show_level = false, show_origin = false, no_seccomp = false;
	int rc;

	vm_config_defaults(cfg);
	memset(f, 0, sizeof(*f));
	snprintf(f->id, sizeof(f->id), "%s", FC_DEFAULT_ID);
	if (seccomp_default_mode(&cfg->seccomp, err, errlen))
		return CV_EINPUT;
	cfg->api_sock = FC_DEFAULT_API_SOCK;
	for (int i = 0; i < argc; i++) {
		const char *name = argv[i], *v = NULL;
		char flag[40];
		const char *eq = strchr(name, '=');

		/* --flag value, or --flag=value */
		if (eq && (size_t)(eq - name) < sizeof(flag)) {
			memcpy(flag, name, (size_t)(eq - name));
			flag[eq - name] = 0;
			name = flag;
			v = eq + 1;
		}
		if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
			fputs(usage, stdout);
			return 1;
		}
		if (!strcmp(name, "--version")) {
			printf("Firecracker v%s\n(cellvm %s, following Firecracker's API and flags)\n", FC_COMPAT_VERSION,
			       CELLVM_VERSION);
			return 1;
		}
		if (takes_value(name) && !v) {
			if (i + 1 >= argc)
				return cv_fmt(err, errlen, "flag '%s' needs a value", name);
			v = argv[++i];
		} else if (!takes_value(name) && v) {
			return cv_fmt(err, errlen, "flag '%s' takes no value", name);
		}
		rc = 0;
		if (!strcmp(name, "--api-sock"))
			cfg->api_sock = v;
		else if (!strcmp(name, "--id"))
			rc = parse_id(v, f, err, errlen);
		else if (!strcmp(name, "--config-file"))
			cfg->config_file = v;
		else if (!strcmp(name, "--no-api"))
			no_api = true;
		else if (!strcmp(name, "--level"))
			level = v;
		else if (!strcmp(name, "--log-path"))
			log_path = v;
		else if (!strcmp(name, "--module"))
			module = v;
		else if (!strcmp(name, "--show-level"))
			show_level = true;
		else if (!strcmp(name, "--show-log-origin"))
			show_origin = true;
		else if (!strcmp(name, "--metrics-path"))
			metrics = v;
		else if (!strcmp(name, "--no-seccomp"))
			no_seccomp = true;
		else if (!strcmp(name, "--seccomp-filter"))
			cv_warn("--seccomp-filter '%s' not honoured: it is a BPF program for Firecracker's own threads and "
				"syscalls; cellvm keeps its own per-thread filters", v);
		else if (!strcmp(name, "--http-api-max-payload-size"))
			rc = parse_bytes(name, v, &f->max_payload, err, errlen);
		else if (!strcmp(name, "--mmds-size-limit"))
			rc = parse_bytes(name, v, &f->mmds_size_limit, err, errlen);
		else if (!strcmp(name, "--boot-timer"))
			cv_warn("--boot-timer not honoured: cellvm has no boot-timer device for the guest to write to");
		else if (strcmp(name, "--start-time-us") && strcmp(name, "--start-time-cpu-us") &&
			 strcmp(name, "--parent-cpu-time-us"))
			/* The jailer's start times feed Firecracker's boot metrics only. */
			return cv_fmt(err, errlen, "unknown flag '%s' (cellvm firecracker --help)", argv[i]);
		if (rc)
			return rc;
	}
	if (no_api && !cfg->config_file)
		return cv_fmt(err, errlen, "--no-api needs --config-file: without the API nothing could configure the VM");
	if (no_api)
		cfg->api_sock = NULL;
	if (no_seccomp)
		cfg->seccomp = SECCOMP_OFF;
	cfg->name = f->id;
	if ((level || log_path || show_level || show_origin || module) &&
	    (rc = render(json_pack("{s:s?, s:s?, s:b, s:b, s:s?}", "log_path", log_path, "level", level, "show_level",
				   show_level, "show_log_origin", show_origin, "module", module),
			 f->logger, sizeof(f->logger), err, errlen)))
		return rc;
	if (metrics && (rc = render(json_pack("{s:s}", "metrics_path", metrics), f->metrics, sizeof(f->metrics), err,
				    errlen)))
		return rc;
	cfg->fc = f;
	return 0;
}
