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

static int follow(const char *name, const char *dest)
{
	bool tty = isatty(STDOUT_FILENO), cancelled = false;

	for (;;) {
		json_t *st = status(name);
		const char *state = json_string_value(json_object_get(st, "state"));
		struct vm_status vs;

		if (interrupted && !cancelled) {
			cancelled = true;
			vmproc_api(name, "PATCH", "/migrate", "{\"state\":\"Cancelled\"}", VMPROC_API_TIMEOUT_MS);
		}
		if (!st && !vmproc_status(name, &vs) && !vs.pid) {
			/* The VM ended here: the destination runs it. */
			printf("%smigrated VM %s to %s\n", tty ? "\r\033[K" : "", name, dest);
			return 0;
		}
		if (state && !strcmp(state, "failed")) {
			if (tty)
				printf("\r\033[K");
			cv_err("migration of VM '%s' failed, it goes on here: %s", name,
			       json_string_value(json_object_get(st, "error")));
			json_decref(st);
			return 1;
		}
		if (tty && state && !strcmp(state, "active"))
			printf("\r\033[Kround %lld, %.1f MiB sent, %lld pages dirty, %.0f ms",
			       (long long)json_integer_value(json_object_get(st, "round")),
			       (double)json_integer_value(json_object_get(st, "bytes_sent")) / (1 << 20),
			       (long long)json_integer_value(json_object_get(st, "dirty_pages")),
			       json_real_value(json_object_get(st, "total_ms")));
		fflush(stdout);
		json_decref(st);
		sleep_ms(100);
	}
}

int migrate_main(int argc, char **argv)
{
	const char *name = NULL, *dest = NULL, *token = NULL, *down = "50", *max = "0";
	struct sigaction sa = { .sa_handler = on_sigint };
	bool cancel = false;
	char *body, *end;
	json_t *req;
	long ms, secs;
	int rc;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--cancel"))
			cancel = true;
		else if (!strcmp(argv[i], "--token") && i + 1 < argc)
			token = argv[++i];
		else if (!strcmp(argv[i], "--downtime-ms") && i + 1 < argc)
			down = argv[++i];
		else if (!strcmp(argv[i], "--max-time") && i + 1 < argc)
			max = argv[++i];
		else if (argv[i][0] == '-' || (name && dest)) {
			cv_err("migrate: unexpected argument '%s' (cellvm migrate NAME tcp:HOST:PORT --token T "
			       "[--downtime-ms N] [--max-time S] | cellvm migrate NAME --cancel)",
			       argv[i]);
			return 2;
		} else if (!name)
			name = argv[i];
		else
			dest = argv[i];
	}
	if (!name || (!cancel && (!dest || !token)) || (cancel && (dest || token))) {
		cv_err("usage: cellvm migrate NAME tcp:HOST:PORT --token T [--downtime-ms N] [--max-time S] | cellvm migrate "
		       "NAME --cancel");
		return 2;
	}
	errno = 0;
	ms = strtol(down, &end, 10);
	if (!*down || *end || errno || ms < 1 || ms > 60000) {
		cv_err("invalid --downtime-ms '%s': 1 to 60000", down);
		return 2;
	}
	errno = 0;
	secs = strtol(max, &end, 10);
	if (!*max || *end || errno || secs < 0 || secs > 86400) {
		cv_err("invalid --max-time '%s': seconds, 0 (none) to 86400", max);
		return 2;
	}
	if ((rc = bundle_require(name)))
		return 2;
	if (cancel)
		return vmproc_api(name, "PATCH", "/migrate", "{\"state\":\"Cancelled\"}", VMPROC_API_TIMEOUT_MS) ? 2 : 0;
	req = json_pack("{sssssI}", "destination", dest, "token", token, "downtime_ms", (json_int_t)ms);
	if (req && secs)
		json_object_set_new(req, "max_time_ms", json_integer((json_int_t)secs * 1000));
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
