/* libFuzzer target: the Firecracker API (src/api/firecracker.c) as its
 * socket feeds it, with stand-in VM operations (no VM is built). The
 * input's first byte picks the mode: a --config-file document, or a
 * stream of pipelined HTTP requests, each parsed by src/api/http.c and
 * handed to the real dispatcher, so a sequence reaches the post-boot
 * handlers after an InstanceStart. Files the API would create (log_path,
 * metrics_path) are redirected: the metrics to the fuzzer's directory,
 * the log to this process's own stderr (the logger moves stderr there,
 * and a crash report must still be seen). */
#include <fcntl.h>
#include <jansson.h>

#include "api/firecracker.h"
#include "api/http.h"
#include "fuzz.h"

static int ok(void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	return 0;
}

static int s_start(void *ctx, struct vm_config *vm, char *err, size_t errlen)
{
	(void)vm;
	return ok(ctx, err, errlen);
}

static int s_pause(void *ctx, bool pause, char *err, size_t errlen)
{
	(void)pause;
	return ok(ctx, err, errlen);
}

static int s_snapshot_create(void *ctx, const char *state_path, const char *mem_path, bool diff,
			     const char *disk_layer, char *err, size_t errlen)
{
	(void)state_path;
	(void)mem_path;
	(void)diff;
	(void)disk_layer;
	return ok(ctx, err, errlen);
}

static int s_snapshot_load(void *ctx, const struct fc_snapshot_load *l, char *err, size_t errlen)
{
	(void)l;
	return ok(ctx, err, errlen);
}

static int s_drive_path(void *ctx, unsigned index, const char *path, char *err, size_t errlen)
{
	(void)index;
	(void)path;
	return ok(ctx, err, errlen);
}

static int s_migrate(void *ctx, const struct mig_params *p, char *err, size_t errlen)
{
	(void)p;
	return ok(ctx, err, errlen);
}

static json_t *s_migrate_status(void *ctx)
{
	(void)ctx;
	return json_pack("{s:s}", "state", "Active");
}

static int s_drive_limit(void *ctx, unsigned index, const struct ratelimit_config *c, unsigned which, char *err,
			 size_t errlen)
{
	(void)index;
	(void)c;
	(void)which;
	return ok(ctx, err, errlen);
}

static int s_nic_limit(void *ctx, unsigned index, const struct ratelimit_config *rx, unsigned rx_which,
		       const struct ratelimit_config *tx, unsigned tx_which, char *err, size_t errlen)
{
	(void)index;
	(void)rx;
	(void)rx_which;
	(void)tx;
	(void)tx_which;
	return ok(ctx, err, errlen);
}

static const struct fc_ops stand_in = {
	.start = s_start,
	.pause = s_pause,
	.ctrl_alt_del = ok,
	.snapshot_create = s_snapshot_create,
	.snapshot_load = s_snapshot_load,
	.drive_path = s_drive_path,
	.drive_limit = s_drive_limit,
	.nic_limit = s_nic_limit,
	.migrate = s_migrate,
	.migrate_status = s_migrate_status,
	.migrate_cancel = ok,
};

static int saved_stderr = -1;
static char log_path[64], metrics_path[128];

/* Replaces every log_path / metrics_path string in doc; true if any. */
static bool redirect(json_t *doc)
{
	const char *key;
	json_t *v;
	size_t i;
	bool any = false;

	if (json_is_array(doc))
		json_array_foreach(doc, i, v) any |= redirect(v);
	if (!json_is_object(doc))
		return any;
	json_object_foreach(doc, key, v)
	{
		if (json_is_string(v) && (!strcmp(key, "log_path") || !strcmp(key, "metrics_path"))) {
			json_string_set(v, !strcmp(key, "log_path") ? log_path : metrics_path);
			any = true;
		} else {
			any |= redirect(v);
		}
	}
	return any;
}

/* The body as the handler gets it: the input's, unless it names files. */
static char *safe_body(const char *body, size_t len, size_t *out_len)
{
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	char *copy = NULL;

	if (doc && redirect(doc) && (copy = json_dumps(doc, JSON_COMPACT)))
		*out_len = strlen(copy);
	json_decref(doc);
	if (!copy && (copy = malloc(len + 1))) {
		memcpy(copy, body, len);
		*out_len = len;
	}
	return copy;
}

static void requests(struct fc_api *a, const char *buf, size_t len)
{
	struct http_request req;
	struct fc_reply r;

	while (len && http_parse_request(buf, len, &req) == HTTP_COMPLETE) {
		size_t blen = 0;
		char *body = req.body_len ? safe_body(req.body, req.body_len, &blen) : NULL;

		fc_api_handle(a, req.method, req.path, body, blen, &r);
		free(r.body);
		free(body);
		buf += req.total_len;
		len -= req.total_len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fc_api a;
	char err[256];

	if (saved_stderr < 0) {
		saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
		snprintf(log_path, sizeof(log_path), "/proc/self/fd/%d", saved_stderr);
		snprintf(metrics_path, sizeof(metrics_path), "%s/metrics", fuzz_dir("api"));
	}
	if (!size)
		return 0;
	fc_api_init(&a, &stand_in, NULL, "fuzz");
	if (data[0] & 1) {
		size_t blen;
		char *doc = safe_body((const char *)data + 1, size - 1, &blen);

		if (doc)
			fc_api_load_config(&a, doc, blen, err, sizeof(err));
		free(doc);
	} else {
		char *buf = malloc(size - 1 + 1);

		memcpy(buf, data + 1, size - 1);
		requests(&a, buf, size - 1);
		free(buf);
	}
	fc_api_destroy(&a);
	dup2(saved_stderr, STDERR_FILENO);
	unlink(metrics_path);
	return 0;
}
