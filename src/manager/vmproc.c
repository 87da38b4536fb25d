#include "manager/vmproc.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "manager/bundle.h"
#include "manager/client.h"
#include "manager/pidfile.h"
#include "util/err.h"

#define START_TIMEOUT_S 30
#define TERM_TIMEOUT_S 10

static const char *const state_names[] = {
	[VMS_STOPPED] = "stopped", [VMS_CRASHED] = "crashed", [VMS_STARTING] = "starting",
	[VMS_RUNNING] = "running", [VMS_PAUSED] = "paused",   [VMS_UNRESPONSIVE] = "unresponsive",
};

const char *vm_state_name(enum vm_state s)
{
	return state_names[s];
}

static void sleep_ms(long ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

/* Seconds since pid started, from /proc (-1 if unknown). */
static long process_uptime(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	double up = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	/* Field 22, counted after the ")" that closes the command name. */
	if (!p || !(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &start) != 1)
		return -1;
	if (!(f = fopen("/proc/uptime", "re")))
		return -1;
	if (fscanf(f, "%lf", &up) != 1)
		up = -1;
	fclose(f);
	return up < 0 ? -1 : (long)(up - (double)start / (double)sysconf(_SC_CLK_TCK));
}

static int api_sock_path(const char *name, char *buf, size_t cap)
{
	return bundle_file(name, BUNDLE_API, buf, cap);
}

/* VmRSS of pid in KiB, or -1. */
static long process_rss(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* The balloon's size and the guest's free memory, where it has them. */
static void balloon_status(const char *sock, struct vm_status *st)
{
	char *reply = NULL;
	int status;

	if (api_call(sock, "GET", "/balloon/statistics", NULL, VMPROC_API_TIMEOUT_MS, &status, &reply) == 0 &&
	    status == 200) {
		json_t *doc = json_loads(reply, 0, NULL);
		json_t *free_b = json_object_get(doc, "free_memory");

		st->balloon_mib = (long)json_integer_value(json_object_get(doc, "actual_mib"));
		if (free_b)
			st->guest_free_mib = (long)(json_integer_value(free_b) >> 20);
		json_decref(doc);
	}
	free(reply);
}

int vmproc_status(const char *name, struct vm_status *st)
{
	char pidfile[PATH_MAX], sock[PATH_MAX], *reply = NULL;
	struct stat sb;
	int rc, status;

	st->pid = 0;
	st->uptime = -1;
	st->migration[0] = 0;
	st->rss_kib = st->balloon_mib = st->guest_free_mib = -1;
	if ((rc = bundle_file(name, BUNDLE_PIDFILE, pidfile, sizeof(pidfile))) ||
	    (rc = api_sock_path(name, sock, sizeof(sock))))
		return rc;
	st->pid = pidfile_owner(pidfile);
	if (st->pid < 0) {
		st->pid = 0;
		st->state = VMS_STARTING;
		return 0;
	}
	if (!st->pid) {
		/* A clean exit empties the file; a killed process leaves its PID. */
		st->state = stat(pidfile, &sb) == 0 && sb.st_size > 0 ? VMS_CRASHED : VMS_STOPPED;
		return 0;
	}
	st->uptime = process_uptime(st->pid);
	st->rss_kib = process_rss(st->pid);
	st->state = VMS_UNRESPONSIVE;
	if (api_call(sock, "GET", "/", NULL, VMPROC_API_TIMEOUT_MS, &status, &reply) == 0 && status == 200) {
		st->state = strstr(reply, "\"Paused\"")	 ? VMS_PAUSED
			    : strstr(reply, "\"Running\"") ? VMS_RUNNING
							   : VMS_STARTING;
	}
	free(reply);
	reply = NULL;
	if (st->state != VMS_UNRESPONSIVE &&
	    api_call(sock, "GET", "/migrate", NULL, VMPROC_API_TIMEOUT_MS, &status, &reply) == 0 && status == 200) {
		json_t *doc = json_loads(reply, 0, NULL);
		const char *m = json_string_value(json_object_get(doc, "state"));

		if (m && strcmp(m, "none"))
			snprintf(st->migration, sizeof(st->migration), "%s", m);
		json_decref(doc);
	}
	free(reply);
	if (st->state != VMS_UNRESPONSIVE)
		balloon_status(sock, st);
	return 0;
}

int vmproc_api(const char *name, const char *method, const char *path, const char *body, int timeout_ms)
{
	char sock[PATH_MAX], *reply = NULL, msg[512];
	int rc, status;

	if ((rc = api_sock_path(name, sock, sizeof(sock))))
		return rc;
	if (api_call(sock, method, path, body, timeout_ms, &status, &reply)) {
		cv_err("VM '%s' does not answer on its API socket", name);
		return CV_EFAIL;
	}
	rc = status / 100 == 2 ? 0 : CV_EINPUT;
	if (rc)
		cv_err("VM '%s': %s", name, api_fault(reply, msg, sizeof(msg)));
	free(reply);
	return rc;
}

static int require_running(const char *name, struct vm_status *st)
{
	int rc;

	if ((rc = bundle_require(name)) || (rc = vmproc_status(name, st)))
		return rc;
	if (!st->pid) {
		cv_err("VM '%s' is not running (%s)", name, vm_state_name(st->state));
		return CV_EINPUT;
	}
	return 0;
}

int vmproc_pause(const char *name, bool pause)
{
	struct vm_status st;
	int rc;

	if ((rc = require_running(name, &st)))
		return rc;
	return vmproc_api(name, "PATCH", "/vm", pause ? "{\"state\":\"Paused\"}" : "{\"state\":\"Resumed\"}", VMPROC_API_TIMEOUT_MS);
}

void vmproc_last_log(const char *name, char *buf, size_t cap)
{
	char dir[PATH_MAX];

	snprintf(buf, cap, "see %s", BUNDLE_LOG);
	if (!bundle_dir(name, dir, sizeof(dir)))
		vmproc_last_log_in(dir, buf, cap);
}

void vmproc_last_log_in(const char *dir, char *buf, size_t cap)
{
	char path[PATH_MAX], line[512];
	FILE *f;

	snprintf(buf, cap, "see %s", BUNDLE_LOG);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, BUNDLE_LOG) >= sizeof(path) || !(f = fopen(path, "re")))
		return;
	while (fgets(line, sizeof(line), f))
		if (*line != '\n')
			snprintf(buf, cap, "%s", line);
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

static void child(const char *dir, const char *name, const char *const *how)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	const char *argv[24] = { "cellvm", "run" };
	unsigned n = 2;
	int log;

	setsid();
	if (chdir(dir) < 0)
		_exit(127);
	log = open(BUNDLE_LOG, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (null < 0 || log < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
		_exit(127);
	while (*how && n < 12)
		argv[n++] = *how++;
	/* Paths relative to the bundle: vm.json's own, and the sockets (whose
	 * absolute paths could exceed sun_path's 108 bytes). */
	memcpy(argv + n,
	       (const char *[]){ "--api-sock", BUNDLE_API, "--console-sock", BUNDLE_CONSOLE, "--pid-file", BUNDLE_PIDFILE,
				 "--name", name, NULL },
	       9 * sizeof(*argv));
	execv("/proc/self/exe", (char *const *)argv);
	_exit(127);
}

pid_t vmproc_spawn(const char *dir, const char *name, const char *const *how)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		cv_err("fork: %s", strerror(errno));
	else if (pid == 0)
		child(dir, name, how);
	return pid;
}

int vmproc_start(const char *name, const char *restore)
{
	char dir[PATH_MAX], why[512];
	struct vm_status st;
	pid_t pid;
	int rc, wst;

	if ((rc = bundle_require(name)) || (rc = bundle_dir(name, dir, sizeof(dir))) ||
	    (rc = vmproc_status(name, &st)))
		return rc;
	if (st.pid) {
		cv_err("VM '%s' is already running (pid %ld)", name, (long)st.pid);
		return CV_EINPUT;
	}
	pid = vmproc_spawn(dir, name,
			   restore ? (const char *const[]){ "--restore", restore, NULL }
				   : (const char *const[]){ "--config-file", BUNDLE_CONFIG, NULL });
	if (pid < 0)
		return CV_EFAIL;
	for (int i = 0; i < START_TIMEOUT_S * 50; i++) {
		if (waitpid(pid, &wst, WNOHANG) == pid) {
			vmproc_last_log(name, why, sizeof(why));
			cv_err("VM '%s' did not start: %s", name, why);
			return WIFEXITED(wst) && WEXITSTATUS(wst) == 2 ? CV_EINPUT : CV_EFAIL;
		}
		if (vmproc_status(name, &st) == 0 && (st.state == VMS_RUNNING || st.state == VMS_PAUSED)) {
			if (restore)
				printf("restored VM %s from %s (pid %ld)\n", name, restore, (long)st.pid);
			else
				printf("started VM %s (pid %ld)\n", name, (long)st.pid);
			return 0;
		}
		sleep_ms(20);
	}
	cv_err("VM '%s' (pid %ld) did not become ready within %d s; see %s/%s", name, (long)pid, START_TIMEOUT_S,
	       dir, BUNDLE_LOG);
	return CV_EFAIL;
}

/* Waits until the process holding the pid file is gone (and no other
 * holds it: a transient -1 is a process finishing its cleanup). */
static bool wait_gone(const char *name, pid_t pid, int seconds)
{
	char pidfile[PATH_MAX];

	if (bundle_file(name, BUNDLE_PIDFILE, pidfile, sizeof(pidfile)))
		return false;
	for (int i = 0; i < seconds * 50; i++) {
		pid_t now = pidfile_owner(pidfile);

		if (now == 0 || (now > 0 && now != pid))
			return true;
		sleep_ms(20);
	}
	return false;
}

int vmproc_stop(const char *name, int timeout_s, bool force)
{
	struct vm_status st;
	int rc;

	if ((rc = require_running(name, &st)))
		return rc;
	if (!force) {
		/* A paused guest cannot act on Ctrl+Alt+Del. */
		if (st.state == VMS_PAUSED)
			vmproc_api(name, "PATCH", "/vm", "{\"state\":\"Resumed\"}", VMPROC_API_TIMEOUT_MS);
		if (vmproc_api(name, "PUT", "/actions", "{\"action_type\":\"SendCtrlAltDel\"}", VMPROC_API_TIMEOUT_MS) == 0) {
			if (wait_gone(name, st.pid, timeout_s)) {
				printf("stopped VM %s (the guest shut down)\n", name);
				return 0;
			}
			cv_warn("VM '%s' did not shut down within %d s; stopping it", name, timeout_s);
		}
	}
	/* cellvm ends the VM cleanly on SIGTERM; SIGKILL only if it hangs. */
	if (kill(st.pid, SIGTERM) < 0 && errno != ESRCH) {
		cv_err("cannot signal VM '%s' (pid %ld): %s", name, (long)st.pid, strerror(errno));
		return CV_EFAIL;
	}
	if (!wait_gone(name, st.pid, TERM_TIMEOUT_S)) {
		cv_warn("VM '%s' (pid %ld) ignored SIGTERM for %d s; killing it", name, (long)st.pid, TERM_TIMEOUT_S);
		kill(st.pid, SIGKILL);
		if (!wait_gone(name, st.pid, TERM_TIMEOUT_S)) {
			cv_err("VM '%s' (pid %ld) does not die", name, (long)st.pid);
			return CV_EFAIL;
		}
	}
	printf("stopped VM %s\n", name);
	return 0;
}
