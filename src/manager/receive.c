/* cellvm receive NAME --listen tcp:ADDR:PORT --token T: a managed VM
 * migrating here. The VM process is started in a hidden bundle directory
 * and waits there for the VM (its disks, kernel and initrd, sent along
 * with copy_storage, land in the bundle); once it runs, the bundle gets
 * the vm.json that describes it and its name. Until then nothing of it
 * is listed, and a failed or cancelled receive leaves nothing behind. */
#include "manager/receive.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "manager/bundle.h"
#include "manager/client.h"
#include "manager/vmproc.h"
#include "util/err.h"

#define RECEIVE_USAGE "cellvm receive NAME --listen tcp:ADDR:PORT --token T [--tls]"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* "./x" as the VM names a file it received: "x", relative to the bundle. */
static void bundle_relative(json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));

	if (v && !strncmp(v, "./", 2))
		json_object_set_new(obj, key, json_string(v + 2));
}

/* The bundle's vm.json: the running VM's own description, its received
 * files named relative to the bundle, and which drives live in it. */
static json_t *bundle_config(const char *sock)
{
	char *reply = NULL;
	json_t *doc = NULL, *drives, *kinds, *d;
	size_t i;
	int code;

	if (api_call(sock, "GET", "/vm/config", NULL, VMPROC_API_TIMEOUT_MS, &code, &reply) || code != 200 ||
	    !(doc = json_loads(reply, 0, NULL))) {
		free(reply);
		return NULL;
	}
	free(reply);
	bundle_relative(json_object_get(doc, "boot-source"), "kernel_image_path");
	bundle_relative(json_object_get(doc, "boot-source"), "initrd_path");
	drives = json_object_get(doc, "drives");
	kinds = json_object();
	json_array_foreach(drives, i, d) {
		bundle_relative(d, "path_on_host");
		json_object_set_new(kinds, json_string_value(json_object_get(d, "drive_id")),
				    json_string(json_string_value(json_object_get(d, "path_on_host"))[0] == '/'
							? "referenced"
							: "copied"));
	}
	json_object_set_new(doc, "cellvm", json_pack("{s:o}", "drives", kinds));
	return doc;
}

/* Whether the VM process in dir says it listens (its log's last line). */
static bool listening(const char *dir)
{
	char line[512];

	vmproc_last_log_in(dir, line, sizeof(line));
	return strstr(line, "waiting for a migration") != NULL;
}

/* Waits until the VM runs in dir (0), its process ended (CV_E*, reported)
 * or the user gave up; says when it listens. */
static int await_vm(const char *name, const char *dir, const char *spec, pid_t pid)
{
	struct timespec tick = { .tv_nsec = 20000000 };
	char sock[PATH_MAX], why[512], *reply = NULL;
	bool said = false;
	int code, wst;

	if (path_fmt(sock, sizeof(sock), "%s/%s", dir, BUNDLE_API))
		return CV_EINPUT;
	for (;;) {
		if (interrupted) {
			kill(pid, SIGTERM);
			waitpid(pid, NULL, 0);
			cv_err("receive of VM '%s' cancelled", name);
			return CV_EFAIL;
		}
		if (waitpid(pid, &wst, WNOHANG) == pid) {
			vmproc_last_log_in(dir, why, sizeof(why));
			cv_err("VM '%s' was not received: %s", name, why);
			return WIFEXITED(wst) && WEXITSTATUS(wst) == 2 ? CV_EINPUT : CV_EFAIL;
		}
		if (!said && (said = listening(dir))) {
			printf("waiting for VM %s on %s\n", name, spec);
			fflush(stdout);
		}
		/* The API answers once the VM arrived and runs. */
		if (!api_call(sock, "GET", "/", NULL, VMPROC_API_TIMEOUT_MS, &code, &reply) && code == 200 &&
		    strstr(reply, "\"Running\"")) {
			free(reply);
			return 0;
		}
		free(reply);
		reply = NULL;
		nanosleep(&tick, NULL);
	}
}

static int receive(const char *name, const char *spec, const char *token, bool tls)
{
	struct sigaction sa = { .sa_handler = on_sigint }, old;
	char tmp[PATH_MAX], final[PATH_MAX], path[PATH_MAX], sock[PATH_MAX];
	json_t *doc;
	pid_t pid;
	int rc;

	if ((rc = bundle_dir(name, final, sizeof(final))) || (rc = bundle_mktemp(name, tmp, sizeof(tmp))))
		return rc;
	if ((rc = path_fmt(sock, sizeof(sock), "%s/%s", tmp, BUNDLE_API)) ||
	    (rc = path_fmt(path, sizeof(path), "%s/%s", tmp, BUNDLE_CONFIG))) {
		remove_tree(tmp);
		return rc;
	}
	sigaction(SIGINT, &sa, &old);
	pid = vmproc_spawn(tmp, name,
			   (const char *const[]){ "--incoming", spec, "--migrate-token", token, "--receive-dir", ".",
						  tls ? "--migrate-tls" : NULL, NULL });
	if (pid < 0) {
		remove_tree(tmp);
		return CV_EFAIL;
	}
	if ((rc = await_vm(name, tmp, spec, pid))) {
		remove_tree(tmp);
		return rc;
	}
	sigaction(SIGINT, &old, NULL);
	/* The VM runs here now: from here on it is never stopped, even if its
	 * bundle cannot be completed. */
	if (!(doc = bundle_config(sock)) || json_dump_file(doc, path, JSON_INDENT(2) | JSON_SORT_KEYS) < 0) {
		json_decref(doc);
		cv_err("VM '%s' runs (pid %ld) but its configuration could not be written to '%s'", name, (long)pid,
		       path);
		return CV_EFAIL;
	}
	json_decref(doc);
	if (rename(tmp, final) < 0) {
		cv_err("VM '%s' runs (pid %ld) in '%s', which cannot become '%s': %s", name, (long)pid, tmp, final,
		       strerror(errno));
		return CV_EFAIL;
	}
	printf("received VM %s (pid %ld)\n", name, (long)pid);
	return 0;
}

int receive_main(int argc, char **argv)
{
	const char *name = NULL, *spec = NULL, *token = NULL;
	bool tls = false;
	int rc;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < argc)
			spec = argv[++i];
		else if (!strcmp(argv[i], "--token") && i + 1 < argc)
			token = argv[++i];
		else if (!strcmp(argv[i], "--tls"))
			tls = true;
		else if (argv[i][0] == '-' || name) {
			cv_err("receive: unexpected argument '%s' (" RECEIVE_USAGE ")", argv[i]);
			return 2;
		} else
			name = argv[i];
	}
	if (!name || !spec || !token) {
		cv_err("usage: " RECEIVE_USAGE);
		return 2;
	}
	if (strncmp(spec, "tcp:", 4)) {
		cv_err("invalid --listen '%s': use tcp:ADDR:PORT", spec);
		return 2;
	}
	if ((rc = bundle_check_name(name)))
		return 2;
	rc = receive(name, spec, token, tls);
	return rc == CV_EINPUT ? 2 : rc ? 1 : 0;
}
