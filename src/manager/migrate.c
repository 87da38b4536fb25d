#include "manager/migrate.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "manager/bundle.h"
#include "manager/client.h"
#include "manager/vmproc.h"
#include "util/err.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void sleep_ms(long ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

/* GET /migrate: the status object, or NULL once the VM process is gone. */
static json_t *status(const char *name)
{
	char sock[PATH_MAX], *reply = NULL;
	json_t *doc = NULL;
	int code;

	if (!bundle_file(name, BUNDLE_API, sock, sizeof(sock)) &&
	    !api_call(sock, "GET", "/migrate", NULL, VMPROC_API_TIMEOUT_MS, &code, &reply) && code == 200)
		doc = json_loads(reply, 0, NULL);
	free(reply);
	return doc;
}

static double num(json_t *st, const char *key)
{
	return json_number_value(json_object_get(st, key));
}

/* One line, redrawn: the round's progress as a bar, then the figures. */
static void progress(json_t *st)
{
	double todo = num(st, "round_todo"), done = num(st, "round_done"), part = todo > 0 ? done / todo : 0;
	char bar[21];
	int fill;

	if (part > 1)
		part = 1;
	fill = (int)(part * 20);
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(20 - fill));
	bar[20] = 0;
	printf("\r\033[K[%s] %3.0f%% round %.0f, %.1f MiB sent, dirty %.1f MiB/s, link %.1f MiB/s, downtime ~%.0f ms",
	       bar, part * 100, num(st, "round"), num(st, "bytes_sent") / (1 << 20), num(st, "dirty_rate_bps") / (1 << 20),
	       num(st, "bandwidth_bps") / (1 << 20), num(st, "expected_downtime_ms"));
	if (num(st, "throttle_pct") > 0)
		printf(", throttled %.0f%%", num(st, "throttle_pct"));
	fflush(stdout);
}

static int follow(const char *name, const char *dest)
{
	bool tty = isatty(STDOUT_FILENO), cancelled = false;

	for (;;) {
		json_t *st = status(name);
		const char *state = json_string_value(json_object_get(st, "state"));
		struct vm_status vs;
		char summary[512];

		if (interrupted && !cancelled) {
			cancelled = true;
			vmproc_api(name, "PATCH", "/migrate", "{\"state\":\"Cancelled\"}", VMPROC_API_TIMEOUT_MS);
		}
		if (!st && !vmproc_status(name, &vs) && !vs.pid) {
			/* The VM ended here: the destination runs it. Its last words
			 * are the figures. */
			vmproc_last_log(name, summary, sizeof(summary));
			printf("%smigrated VM %s to %s (%s)\n", tty ? "\r\033[K" : "", name, dest,
			       strstr(summary, "migrated: ") ? strstr(summary, "migrated: ") + 10 : summary);
			return 0;
		}
		if (state && (!strcmp(state, "failed") || !strcmp(state, "unknown"))) {
			if (tty)
				printf("\r\033[K");
			cv_err("migration of VM '%s' %s: %s", name,
			       !strcmp(state, "failed") ? "failed, it goes on here" : "ended in doubt",
			       json_string_value(json_object_get(st, "error")));
			json_decref(st);
			return 1;
		}
		if (tty && state && !strcmp(state, "active"))
			progress(st);
		json_decref(st);
		sleep_ms(100);
	}
}

/* copy_drives: the drives that live in NAME's bundle. */
static int bundle_own_drives(const char *name, json_t *req)
{
	json_t *doc, *kinds, *kind, *list = json_array();
	const char *id;
	int rc;

	if ((rc = bundle_load(name, &doc))) {
		json_decref(list);
		return rc;
	}
	kinds = json_object_get(json_object_get(doc, "cellvm"), "drives");
	json_object_foreach(kinds, id, kind)
		if (!strcmp(json_string_value(kind) ? json_string_value(kind) : "", "copied"))
			json_array_append_new(list, json_string(id));
	json_decref(doc);
	json_object_set_new(req, "copy_drives", list);
	return 0;
}

static int parse_long(const char *opt, const char *v, long lo, long hi, const char *what, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(v, &end, 10);
	if (!*v || *end || errno || *out < lo || *out > hi) {
		cv_err("invalid %s '%s': %s", opt, v, what);
		return 2;
	}
	return 0;
}

#define MIGRATE_USAGE                                                                                             \
	"cellvm migrate NAME tcp:HOST:PORT --token T [--downtime-ms N] [--max-time S] [--bandwidth MIB] "           \
	"[--copy-storage] [--no-auto-converge] [--tls] | cellvm migrate NAME --cancel"

int migrate_main(int argc, char **argv)
{
	const char *name = NULL, *dest = NULL, *token = NULL, *down = "50", *max = "0", *bw = NULL;
	struct sigaction sa = { .sa_handler = on_sigint };
	bool cancel = false, copy = false, no_converge = false, tls = false;
	long ms, secs, mib = 0;
	char *body;
	json_t *req;
	int rc;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--cancel"))
			cancel = true;
		else if (!strcmp(argv[i], "--copy-storage"))
			copy = true;
		else if (!strcmp(argv[i], "--no-auto-converge"))
			no_converge = true;
		else if (!strcmp(argv[i], "--tls"))
			tls = true;
		else if (!strcmp(argv[i], "--token") && i + 1 < argc)
			token = argv[++i];
		else if (!strcmp(argv[i], "--downtime-ms") && i + 1 < argc)
			down = argv[++i];
		else if (!strcmp(argv[i], "--max-time") && i + 1 < argc)
			max = argv[++i];
		else if (!strcmp(argv[i], "--bandwidth") && i + 1 < argc)
			bw = argv[++i];
		else if (argv[i][0] == '-' || (name && dest)) {
			cv_err("migrate: unexpected argument '%s' (" MIGRATE_USAGE ")", argv[i]);
			return 2;
		} else if (!name)
			name = argv[i];
		else
			dest = argv[i];
	}
	if (!name || (!cancel && (!dest || !token)) || (cancel && (dest || token))) {
		cv_err("usage: " MIGRATE_USAGE);
		return 2;
	}
	if (parse_long("--downtime-ms", down, 1, 60000, "1 to 60000", &ms) ||
	    parse_long("--max-time", max, 0, 86400, "seconds, 0 (none) to 86400", &secs) ||
	    (bw && parse_long("--bandwidth", bw, 1, 1000000, "MiB per second, 1 to 1000000", &mib)))
		return 2;
	if ((rc = bundle_require(name)))
		return 2;
	if (cancel)
		return vmproc_api(name, "PATCH", "/migrate", "{\"state\":\"Cancelled\"}", VMPROC_API_TIMEOUT_MS) ? 2 : 0;
	req = json_pack("{sssssIsbsb}", "destination", dest, "token", token, "downtime_ms", (json_int_t)ms,
			"auto_converge", !no_converge, "tls", tls);
	/* The bundle's own files go along: its kernel, initrd and the disks
	 * copied into it; referenced disks only with --copy-storage. */
	if (req && copy)
		json_object_set_new(req, "copy_storage", json_true());
	else if (req && (rc = bundle_own_drives(name, req)))
		return 2;
	if (req && secs)
		json_object_set_new(req, "max_time_ms", json_integer((json_int_t)secs * 1000));
	if (req && mib)
		json_object_set_new(req, "max_bandwidth_mib", json_integer(mib));
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body)
		return 1;
	rc = vmproc_api(name, "PUT", "/migrate", body, VMPROC_API_TIMEOUT_MS);
	free(body);
	if (rc)
		return rc == CV_EINPUT ? 2 : 1;
	sigaction(SIGINT, &sa, NULL);
	return follow(name, dest);
}
