#include "api/firecracker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api/cpu_config.h"
#include "api/json.h"
#include "util/err.h"

#ifndef CELLVM_VERSION
#define CELLVM_VERSION "0.0.0-dev"
#endif


/* Firecracker resources this build does not have: asked for, they are
 * refused with a reason, never accepted and ignored. */
static const char *const unsupported[] = { "hotplug", "pmem", "serial" };

enum when { ANY_TIME, PRE_BOOT, POST_BOOT };

static uint64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

void fc_api_init(struct fc_api *a, const struct fc_ops *ops, void *ctx, const char *id)
{
	memset(a, 0, sizeof(*a));
	api_config_init(&a->cfg);
	a->ops = ops;
	a->ctx = ctx;
	a->id = id;
	a->log_fd = a->metrics_fd = -1;
	a->started_ms = mono_ms();
}

void fc_api_destroy(struct fc_api *a)
{
	api_config_free(&a->cfg);
	if (a->mmds_on)
		mmds_store_destroy(&a->mmds);
	a->mmds_on = false;
	if (a->metrics_fd >= 0)
		close(a->metrics_fd);
	if (a->log_fd >= 0)
		close(a->log_fd);
	a->metrics_fd = a->log_fd = -1;
}

/* An Info line for the logger, in Firecracker's shape when asked:
 * "[id:INFO:api] message". Errors still go through cv_err to stderr, which
 * PUT /logger points at the log file. */
static void log_info(struct fc_api *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_info(struct fc_api *a, const char *fmt, ...)
{
	const struct api_logger *l = &a->cfg.logger;
	char msg[512];
	va_list ap;

	if (a->log_fd < 0 || l->level < API_LOG_INFO || (l->module && strncmp(l->module, "api", 3)))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(a->log_fd, "[%s%s%s] %s\n", a->id, l->show_level ? ":INFO" : "", l->show_origin ? ":api" : "", msg);
}

static void reply_json(struct fc_reply *r, int status, json_t *obj)
{
	r->status = status;
	r->body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (!r->body) {
		static const char oom[] = "{\"fault_message\":\"out of memory\"}";

		r->status = 500;
		r->body = strdup(oom);
	}
	r->len = r->body ? strlen(r->body) : 0;
}

static void reply_fault(struct fc_reply *r, const char *msg)
{
	reply_json(r, 400, json_pack("{s:s}", "fault_message", msg));
}

static void reply_json_or_fault(struct fc_reply *r, json_t *obj, const char *err)
{
	if (obj)
		reply_json(r, 200, obj);
	else
		reply_fault(r, err);
}

static const char *state_name(enum fc_state s)
{
	return s == FC_NOT_STARTED ? "Not started" : s == FC_RUNNING ? "Running" : "Paused";
}

static int check_when(struct fc_api *a, enum when w, char *err, size_t errlen)
{
	if (w == PRE_BOOT && a->state != FC_NOT_STARTED)
		return cv_fmt(err, errlen, FC_NOT_AFTER);
	if (w == POST_BOOT && a->state == FC_NOT_STARTED)
		return cv_fmt(err, errlen, FC_NOT_BEFORE);
	return 0;
}

/* Opens a log or metrics destination: usually a named pipe or a file,
 * never blocking the VMM when nobody reads the pipe. */
static int open_sink(const char *path, const char *what, char *err, size_t errlen)
{
	struct stat st;
	/* A FIFO opens read-write, as Firecracker does: write-only would fail
	 * (ENXIO) until its reader is there, and tools open theirs later. */
	int mode = stat(path, &st) == 0 && S_ISFIFO(st.st_mode) ? O_RDWR : O_WRONLY;
	int fd = open(path, mode | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);

	if (fd < 0)
		cv_fmt(err, errlen, "cannot open %s '%.200s': %s", what, path, strerror(errno));
	return fd;
}

static int put_logger(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	struct api_logger l;
	int rc = api_parse_logger(body, &l, err, errlen), fd = -1;

	if (rc)
		return rc;
	if (l.path && (fd = open_sink(l.path, "log_path", err, errlen)) < 0) {
		free(l.path);
		free(l.module);
		return CV_EINPUT;
	}
	if (fd >= 0) {
		/* cellvm's own error lines follow the log too. */
		dup2(fd, STDERR_FILENO);
		if (a->log_fd >= 0)
			close(a->log_fd);
		a->log_fd = fd;
	}
	api_logger_set(&a->cfg, &l);
	return 0;
}

static int put_metrics(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	struct api_metrics m;
	int rc = api_parse_metrics(body, &m, err, errlen), fd;

	if (rc)
		return rc;
	if (a->cfg.metrics.set) {
		free(m.path);
		return cv_fmt(err, errlen, "Reinitialization of metrics not allowed.");
	}
	if ((fd = open_sink(m.path, "metrics_path", err, errlen)) < 0) {
		free(m.path);
		return CV_EINPUT;
	}
	a->metrics_fd = fd;
	api_metrics_set(&a->cfg, &m);
	return 0;
}

static json_t *counts_json(const struct fc_counts *c)
{
	return json_pack("{s:I, s:I}", "requests", (json_int_t)c->requests, "fails", (json_int_t)c->fails);
}

int fc_api_flush_metrics(struct fc_api *a, char *err, size_t errlen)
{
	struct timeval tv;
	json_t *line;
	char *text;
	int rc = 0;

	if (a->metrics_fd < 0)
		return cv_fmt(err, errlen, "FlushMetrics needs the metrics system: PUT /metrics first");
	gettimeofday(&tv, NULL);
	line = json_pack("{s:I, s:I, s:s, s:o, s:o, s:o}", "utc_timestamp_ms",
			 (json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, "uptime_ms",
			 (json_int_t)(mono_ms() - a->started_ms), "state", state_name(a->state), "get_api_requests",
			 counts_json(&a->get), "put_api_requests", counts_json(&a->put), "patch_api_requests",
			 counts_json(&a->patch));
	if (line && a->ops->metrics)
		a->ops->metrics(a->ctx, line);
	text = line ? json_dumps(line, JSON_COMPACT) : NULL;
	json_decref(line);
	if (!text)
		return cv_fmt(err, errlen, "out of memory");
	if (dprintf(a->metrics_fd, "%s\n", text) < 0)
		rc = cv_fmt(err, errlen, "cannot write metrics: %s", strerror(errno));
	free(text);
	return rc;
}

static int action(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	json_t *type;
	const char *t;
	int rc = json_fields(body, "action", (const struct jfield[]){ { "action_type", JF_STRING, true, &type } }, 1,
			     err, errlen);

	if (rc)
		return rc;
	t = json_string_value(type);
	if (!strcmp(t, "InstanceStart")) {
		if ((rc = check_when(a, PRE_BOOT, err, errlen)) ||
		    (rc = api_config_to_vm(&a->cfg, &a->vm, err, errlen)))
			return rc;
		if ((rc = a->ops->start(a->ctx, &a->vm, err, errlen)))
			return rc;
		a->state = FC_RUNNING;
		return 0;
	}
	if (!strcmp(t, "SendCtrlAltDel"))
		return (rc = check_when(a, POST_BOOT, err, errlen)) ? rc : a->ops->ctrl_alt_del(a->ctx, err, errlen);
	if (!strcmp(t, "FlushMetrics"))
		return (rc = check_when(a, POST_BOOT, err, errlen)) ? rc : fc_api_flush_metrics(a, err, errlen);
	return cv_fmt(err, errlen, "invalid action_type '%.32s': use InstanceStart, SendCtrlAltDel or FlushMetrics", t);
}

static int patch_vm(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	json_t *state;
	bool pause;
	int rc = json_fields(body, "vm", (const struct jfield[]){ { "state", JF_STRING, true, &state } }, 1, err,
			     errlen);

	if (rc || (rc = check_when(a, POST_BOOT, err, errlen)))
		return rc;
	if (!strcmp(json_string_value(state), "Paused"))
		pause = true;
	else if (!strcmp(json_string_value(state), "Resumed"))
		pause = false;
	else
		return cv_fmt(err, errlen, "invalid state '%.32s': use Paused or Resumed", json_string_value(state));
	if ((pause ? FC_PAUSED : FC_RUNNING) == a->state)
		return 0;
	if ((rc = a->ops->pause(a->ctx, pause, err, errlen)))
		return rc;
	a->state = pause ? FC_PAUSED : FC_RUNNING;
	return 0;
}

/* Path tokens: "/drives/root" -> {"drives", "root"}; a trailing '/' is
 * ignored, as Firecracker does. Returns the count, or -1 for too many. */
static int split_path(const char *path, char *buf, size_t cap, const char *tok[3])
{
	int n = 0;

	snprintf(buf, cap, "%s", path + (*path == '/'));
	for (char *p = buf, *slash; *p; p = slash + 1) {
		if (n == 3)
			return -1;
		tok[n++] = p;
		if (!(slash = strchr(p, '/')))
			break;
		*slash = 0;
	}
	return n;
}

static bool is_unsupported(const char *name)
{
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
		if (!strcmp(name, unsupported[i]))
			return true;
	return false;
}

static int patch_drive(struct fc_api *a, const char *id, json_t *body, char *err, size_t errlen)
{
	struct api_drive_patch p;
	struct api_drive *d;
	char *copy = NULL;
	int rc;

	if ((rc = api_patch_drive(&a->cfg, id, body, &p, err, errlen)))
		return rc;
	d = &a->cfg.drives[p.index];
	if (p.path && !a->ops->drive_path)
		return cv_fmt(err, errlen, "changing path_on_host is not supported by this VMM");
	if (p.limit.which && !a->ops->drive_limit)
		return cv_fmt(err, errlen, "changing rate_limiter is not supported by this VMM");
	if (p.path && !(copy = strdup(p.path)))
		return cv_fmt(err, errlen, "out of memory");
	/* The path first: opening it is what may fail (locks, formats); a
	 * limiter fails only when no timer can be made. */
	if (copy && (rc = a->ops->drive_path(a->ctx, (unsigned)p.index, copy, err, errlen))) {
		free(copy);
		return rc;
	}
	if (copy) {
		free(d->path);
		d->path = copy;
	}
	if (p.limit.which &&
	    (rc = a->ops->drive_limit(a->ctx, (unsigned)p.index, &p.limit.cfg, p.limit.which, err, errlen)))
		return rc;
	api_commit_limit(&d->has_limit, &d->limit, &p.limit);
	return 0;
}

static int patch_nic(struct fc_api *a, const char *id, json_t *body, char *err, size_t errlen)
{
	struct api_nic_patch p;
	struct api_nic *n;
	int rc;

	if ((rc = api_patch_nic(&a->cfg, id, body, &p, err, errlen)) || !(p.rx.which | p.tx.which))
		return rc;
	if (!a->ops->nic_limit)
		return cv_fmt(err, errlen, "changing rate limiters is not supported by this VMM");
	if ((rc = a->ops->nic_limit(a->ctx, (unsigned)p.index, &p.rx.cfg, p.rx.which, &p.tx.cfg, p.tx.which, err,
				    errlen)))
		return rc;
	n = &a->cfg.nics[p.index];
	api_commit_limit(&n->has_rx, &n->rx, &p.rx);
	api_commit_limit(&n->has_tx, &n->tx, &p.tx);
	return 0;
}

static int put_migrate(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	json_t *dest, *token, *down, *max, *bw, *conv, *copy, *drives, *id, *tls;
	uint64_t ms = MIG_DEFAULT_DOWNTIME_MS, max_ms = 0, mib = 0;
	struct mig_params p;
	int rc = json_fields(body, "migrate",
			     (const struct jfield[]){ { "destination", JF_STRING, true, &dest },
						      { "token", JF_STRING, true, &token },
						      { "downtime_ms", JF_UINT, false, &down },
						      { "max_time_ms", JF_UINT, false, &max },
						      { "max_bandwidth_mib", JF_UINT, false, &bw },
						      { "auto_converge", JF_BOOL, false, &conv },
						      { "copy_storage", JF_BOOL, false, &copy },
						      { "copy_drives", JF_ARRAY, false, &drives },
						      { "tls", JF_BOOL, false, &tls } },
			     9, err, errlen);
	uint32_t mask = 0;
	size_t k;

	if (rc || (down && (rc = json_uint_range(down, "downtime_ms", 1, 60000, &ms, err, errlen))) ||
	    (max && (rc = json_uint_range(max, "max_time_ms", 1, 86400000, &max_ms, err, errlen))) ||
	    (bw && (rc = json_uint_range(bw, "max_bandwidth_mib", 1, 1000000, &mib, err, errlen))))
		return rc;
	if (!json_string_length(token) || json_string_length(token) > MIG_MAX_TOKEN)
		return cv_fmt(err, errlen, "invalid token: 1 to %u characters", MIG_MAX_TOKEN);
	if (copy && drives)
		return cv_fmt(err, errlen, "copy_storage and copy_drives exclude each other: copy_storage sends every drive");
	json_array_foreach(drives, k, id) {
		unsigned i = 0;

		while (i < a->cfg.ndrives && (!json_is_string(id) || strcmp(a->cfg.drives[i].id, json_string_value(id))))
			i++;
		if (i == a->cfg.ndrives)
			return cv_fmt(err, errlen, "invalid copy_drives: no drive '%.64s'",
				      json_is_string(id) ? json_string_value(id) : "(not a string)");
		mask |= 1u << i;
	}
	if (copy && json_is_true(copy))
		mask = (1u << a->cfg.ndrives) - 1;
	if (!a->ops->migrate)
		return cv_fmt(err, errlen, "migration is not supported by this VMM");
	p = (struct mig_params){ .dest = json_string_value(dest),
				 .token = json_string_value(token),
				 .downtime_ms = (unsigned)ms,
				 .max_time_ms = (unsigned)max_ms,
				 .max_bandwidth = mib << 20,
				 .auto_converge = !conv || json_is_true(conv),
				 .copy_storage = (copy && json_is_true(copy)) || drives,
				 .copy_disks = mask,
				 .tls = tls && json_is_true(tls) };
	return a->ops->migrate(a->ctx, &p, err, errlen);
}

static int patch_migrate(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	json_t *state;
	int rc = json_fields(body, "migrate", (const struct jfield[]){ { "state", JF_STRING, true, &state } }, 1, err,
			     errlen);

	if (rc)
		return rc;
	if (strcmp(json_string_value(state), "Cancelled"))
		return cv_fmt(err, errlen, "invalid state '%.32s': a migration can only be Cancelled",
			      json_string_value(state));
	if (!a->ops->migrate_cancel)
		return cv_fmt(err, errlen, "migration is not supported by this VMM");
	return a->ops->migrate_cancel(a->ctx, err, errlen);
}

/* A PUT or PATCH with a parsed body. Returns 0 or CV_E* with err set. */
static int modify(struct fc_api *a, bool patch, const char **tok, int n, json_t *body, char *err, size_t errlen)
{
	const char *res = tok[0], *id = n > 1 ? tok[1] : "";
	bool with_id = !strcmp(res, "drives") || !strcmp(res, "network-interfaces");
	int rc;

	if (!strcmp(res, "balloon") && n <= 2)
		return fc_balloon_modify(a, patch, id, body, err, errlen);
	/* Firecracker ignores what follows /mmds in a PATCH. */
	if (!strcmp(res, "mmds"))
		return fc_mmds_modify(a, patch, patch ? "" : id, body, err, errlen);
	if (!patch && n == 2 && !strcmp(res, "snapshot"))
		return fc_snapshot_put(a, tok[1], body, err, errlen);
	if (n > (with_id ? 2 : 1))
		return cv_fmt(err, errlen, "Invalid request method and/or path: %s /%s.", patch ? "PATCH" : "PUT", res);
	if (with_id && (rc = api_check_id(id, err, errlen)))
		return rc;
	if (!strcmp(res, "machine-config"))
		return (rc = check_when(a, PRE_BOOT, err, errlen)) ? rc : api_put_machine(&a->cfg, body, patch, err, errlen);
	if (!patch && !strcmp(res, "actions"))
		return action(a, body, err, errlen);
	if (!patch && !strcmp(res, "boot-source"))
		return (rc = check_when(a, PRE_BOOT, err, errlen)) ? rc : api_put_boot(&a->cfg, body, err, errlen);
	if (!patch && !strcmp(res, "logger"))
		return (rc = check_when(a, PRE_BOOT, err, errlen)) ? rc : put_logger(a, body, err, errlen);
	if (!patch && !strcmp(res, "metrics"))
		return (rc = check_when(a, PRE_BOOT, err, errlen)) ? rc : put_metrics(a, body, err, errlen);
	if (!patch && !strcmp(res, "cpu-config"))
		return (rc = check_when(a, PRE_BOOT, err, errlen)) ? rc : api_cpu_config_parse(body, &a->cfg.tmpl, err, errlen);
	if (!patch && !strcmp(res, "entropy"))
		return (rc = check_when(a, PRE_BOOT, err, errlen)) ? rc : api_put_entropy(&a->cfg, body, err, errlen);
	if (!patch && !strcmp(res, "vsock"))
		return (rc = check_when(a, PRE_BOOT, err, errlen)) ? rc : api_put_vsock(&a->cfg, body, err, errlen);
	if (!strcmp(res, "drives"))
		return patch ? ((rc = check_when(a, POST_BOOT, err, errlen)) ? rc : patch_drive(a, id, body, err, errlen))
			     : ((rc = check_when(a, PRE_BOOT, err, errlen)) ? rc : api_put_drive(&a->cfg, id, body, err, errlen));
	if (!strcmp(res, "network-interfaces"))
		return patch ? ((rc = check_when(a, POST_BOOT, err, errlen)) ? rc : patch_nic(a, id, body, err, errlen))
			     : ((rc = check_when(a, PRE_BOOT, err, errlen)) ? rc : api_put_nic(&a->cfg, id, body, err, errlen));
	if (patch && !strcmp(res, "vm"))
		return patch_vm(a, body, err, errlen);
	if (!strcmp(res, "migrate") && (rc = check_when(a, POST_BOOT, err, errlen)))
		return rc;
	if (!strcmp(res, "migrate"))
		return patch ? patch_migrate(a, body, err, errlen) : put_migrate(a, body, err, errlen);
	if (is_unsupported(res))
		return cv_fmt(err, errlen, "/%s is not supported by this build of cellvm", res);
	return cv_fmt(err, errlen, "Invalid request method and/or path: %s /%s.", patch ? "PATCH" : "PUT", res);
}

static json_t *instance_info(struct fc_api *a)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "id", a->id, "state", state_name(a->state), "vmm_version",
			 CELLVM_VERSION, "app_name", "cellvm");
}

static void get(struct fc_api *a, const char **tok, int n, struct fc_reply *r, char *err, size_t errlen)
{
	if (n == 0)
		reply_json(r, 200, instance_info(a));
	else if (n == 1 && !strcmp(tok[0], "version"))
		reply_json(r, 200, json_pack("{s:s}", "firecracker_version", FC_COMPAT_VERSION));
	else if (n == 1 && !strcmp(tok[0], "machine-config"))
		reply_json(r, 200, api_machine_json(&a->cfg));
	else if (n == 2 && !strcmp(tok[0], "vm") && !strcmp(tok[1], "config"))
		reply_json(r, 200, api_config_json(&a->cfg));
	else if (n == 1 && !strcmp(tok[0], "migrate") && a->ops->migrate_status)
		reply_json(r, 200, a->ops->migrate_status(a->ctx));
	else if (!strcmp(tok[0], "mmds"))
		reply_json_or_fault(r, fc_mmds_get(a, err, errlen), err);
	else if (n <= 2 && !strcmp(tok[0], "balloon"))
		reply_json_or_fault(r, fc_balloon_get(a, n == 2 ? tok[1] : "", err, errlen), err);
	else if (is_unsupported(tok[0]))
		reply_fault(r, (cv_fmt(err, errlen, "/%s is not supported by this build of cellvm", tok[0]), err));
	else
		reply_fault(r, (cv_fmt(err, errlen, "Invalid request method and/or path: GET /%s.", tok[0]), err));
}

void fc_api_handle(struct fc_api *a, const char *method, const char *path, const char *body, size_t len,
		   struct fc_reply *r)
{
	char buf[256], err[512];
	const char *tok[3] = { "", "", "" };
	struct fc_counts *count = NULL;
	bool patch = !strcmp(method, "PATCH");
	int n = split_path(path, buf, sizeof(buf), tok), rc;
	json_t *doc;

	*r = (struct fc_reply){ 0 };
	log_info(a, "The API server received a %s request on \"%s\".", method, path);
	if (!strcmp(method, "GET"))
		count = &a->get;
	else if (!strcmp(method, "PUT"))
		count = &a->put;
	else if (patch)
		count = &a->patch;
	if (count)
		count->requests++;
	if (n < 0) {
		reply_fault(r, (cv_fmt(err, sizeof(err), "Invalid request method and/or path: %s %s.", method, path), err));
	} else if (!strcmp(method, "GET")) {
		if (body)
			reply_fault(r, "GET request cannot have a body.");
		else
			get(a, tok, n, r, err, sizeof(err));
	} else if (!strcmp(method, "PUT") || patch) {
		if (!body) {
			reply_fault(r, patch ? "Empty PATCH request." : "Empty PUT request.");
		} else if (n == 0) {
			reply_fault(r, (cv_fmt(err, sizeof(err), "Invalid request method and/or path: %s /.", method), err));
		} else if (json_parse(body, len, &doc, err, sizeof(err))) {
			char msg[600];

			snprintf(msg, sizeof(msg), "An error occurred when deserializing the json body of a request: %s.",
				 err);
			reply_fault(r, msg);
		} else {
			rc = modify(a, patch, tok, n, doc, err, sizeof(err));
			json_decref(doc);
			if (rc == CV_EFAIL && !*err)
				snprintf(err, sizeof(err), "internal error (out of memory)");
			if (rc)
				reply_fault(r, err);
			else
				r->status = 204;
			if (rc == FC_ETOOLARGE)
				r->status = 413;
		}
	} else if (!strcmp(method, "DELETE") && n == 2 &&
		   (!strcmp(tok[0], "drives") || !strcmp(tok[0], "network-interfaces") || !strcmp(tok[0], "pmem"))) {
		reply_fault(r, "hot-unplugging devices is not supported by this build of cellvm");
	} else {
		reply_fault(r, (cv_fmt(err, sizeof(err), "Invalid request method and/or path: %s %s.", method, path), err));
	}
	if (count && r->status >= 400)
		count->fails++;
	if (r->status >= 400)
		log_info(a, "Received Error. Status code: %d. Message: %.*s", r->status, (int)r->len, r->body);
}

int fc_api_load_config(struct fc_api *a, const char *buf, size_t len, char *err, size_t errlen)
{
	json_t *doc, *boot, *drives, *machine, *nics, *logger, *metrics, *balloon, *vsock, *cpu, *entropy, *mmds, *other[3];
	struct jfield f[] = {
		{ "boot-source", JF_OBJECT, true, &boot },	  { "drives", JF_ARRAY, false, &drives },
		{ "machine-config", JF_OBJECT, false, &machine }, { "network-interfaces", JF_ARRAY, false, &nics },
		{ "logger", JF_OBJECT, false, &logger },	  { "metrics", JF_OBJECT, false, &metrics },
		{ "balloon", JF_OBJECT, false, &balloon },	  { "cpu-config", JF_OBJECT, false, &cpu },
		{ "vsock", JF_OBJECT, false, &vsock },		  { "entropy", JF_OBJECT, false, &entropy },
		{ "mmds-config", JF_OBJECT, false, &mmds },
		/* refused: the loop below */
		{ "pmem", JF_ARRAY, false, &other[0] },		  { "memory-hotplug", JF_OBJECT, false, &other[1] },
		/* cellvm's own notes in a bundle's vm.json (see src/manager/bundle.c) */
		{ "cellvm", JF_OBJECT, false, &other[2] },
	};
	size_t i;
	json_t *v;
	int rc;

	if ((rc = json_parse(buf, len, &doc, err, errlen)))
		return rc;
	rc = json_fields(doc, "the configuration file", f, sizeof(f) / sizeof(f[0]), err, errlen);
	if (!rc && cpu)
		rc = api_cpu_config_parse(cpu, &a->cfg.tmpl, err, errlen);
	for (i = 0; !rc && i < 2; i++)
		if (*f[11 + i].out && !(json_is_array(*f[11 + i].out) && !json_array_size(*f[11 + i].out)))
			rc = cv_fmt(err, errlen, "'%s' is not supported by this build of cellvm", f[11 + i].name);
	if (!rc && logger)
		rc = put_logger(a, logger, err, errlen);
	if (!rc && metrics)
		rc = put_metrics(a, metrics, err, errlen);
	if (!rc && machine)
		rc = api_put_machine(&a->cfg, machine, false, err, errlen);
	if (!rc && vsock)
		rc = api_put_vsock(&a->cfg, vsock, err, errlen);
	if (!rc && entropy)
		rc = api_put_entropy(&a->cfg, entropy, err, errlen);
	if (!rc)
		rc = api_put_boot(&a->cfg, boot, err, errlen);
	if (!rc && balloon)
		rc = api_put_balloon(&a->cfg, balloon, err, errlen);
	json_array_foreach(drives, i, v)
	{
		if (!rc)
			rc = api_put_drive(&a->cfg, NULL, v, err, errlen);
	}
	json_array_foreach(nics, i, v)
	{
		if (!rc)
			rc = api_put_nic(&a->cfg, NULL, v, err, errlen);
	}
	/* After the NICs it names. */
	if (!rc && mmds && !(rc = api_put_mmds_config(&a->cfg, mmds, err, errlen)) && !fc_mmds_store(a, err, errlen))
		rc = CV_EFAIL;
	json_decref(doc);
	return rc;
}
