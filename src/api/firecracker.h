/* Firecracker's API resources over cellvm: routes each request (method,
 * path, JSON body) to the pre-boot configuration or the running VM, with
 * Firecracker's status codes, pre-/post-boot rules and
 * {"fault_message": ...} errors. Transport-free, so unit tests drive it
 * without sockets or KVM; src/api/server.c carries it over HTTP. */
#ifndef CELLVM_API_FIRECRACKER_H
#define CELLVM_API_FIRECRACKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/config.h"
#include "migrate/migrate.h"
#include "mmds/store.h"
#include "vmm/config.h"

/* The Firecracker release whose API and flags cellvm follows: what
 * GET /version and `cellvm firecracker --version` report to tools that
 * check it (cellvm's own version is GET /'s vmm_version). */
#define FC_COMPAT_VERSION "1.10.1"

#define FC_NOT_BEFORE "The requested operation is not supported before starting the microVM."
#define FC_NOT_AFTER "The requested operation is not supported after starting the microVM."
/* A request handler's code for Firecracker's 413 (the MMDS size limit). */
#define FC_ETOOLARGE (-413)

struct balloon_info;

enum fc_state { FC_NOT_STARTED, FC_RUNNING, FC_PAUSED };

/* What the API asks of the process that owns the VM. Each returns 0, or
 * an error code with a one-line reason in err. */
/* PUT /snapshot/load: the files, whether to resume and track dirty pages,
 * and new taps for NICs (network_overrides). */
struct fc_snapshot_load {
	const char *state_path, *mem_path;
	bool resume, track;
	struct net_override overrides[CV_MAX_NICS];
	unsigned noverrides;
};

struct fc_ops {
	/* Builds and starts the VM described by vm (InstanceStart); vm stays
	 * valid for the VM's lifetime. */
	int (*start)(void *ctx, struct vm_config *vm, char *err, size_t errlen);
	int (*pause)(void *ctx, bool pause, char *err, size_t errlen);
	int (*ctrl_alt_del)(void *ctx, char *err, size_t errlen);
	/* Snapshots (PUT /snapshot/create while paused, PUT /snapshot/load
	 * before anything booted; the loaded VM is left paused unless
	 * resume; `track` starts dirty-page tracking for Diff snapshots;
	 * `disk_layer`, if not NULL, freezes the qcow2 disks as IMG.NAME). */
	int (*snapshot_create)(void *ctx, const char *state_path, const char *mem_path, bool diff,
			       const char *disk_layer, char *err, size_t errlen);
	int (*snapshot_load)(void *ctx, const struct fc_snapshot_load *l, char *err, size_t errlen);
	/* PATCH /drives/ID with a new path_on_host: drive `index` (in the
	 * configuration's order) continues on the file at path, which stays
	 * valid as long as the VM. */
	int (*drive_path)(void *ctx, unsigned index, const char *path, char *err, size_t errlen);
	/* PATCH of a running drive's or NIC's rate limiters: the buckets in
	 * `which` (RATELIMIT_BYTES/OPS; 0: that direction stays) become c's. */
	int (*drive_limit)(void *ctx, unsigned index, const struct ratelimit_config *c, unsigned which, char *err,
			   size_t errlen);
	int (*nic_limit)(void *ctx, unsigned index, const struct ratelimit_config *rx, unsigned rx_which,
			 const struct ratelimit_config *tx, unsigned tx_which, char *err, size_t errlen);
	/* cellvm's own PUT /migrate (start moving the running VM to dest) and
	 * GET /migrate (how it goes: a JSON object). */
	int (*migrate)(void *ctx, const struct mig_params *p, char *err, size_t errlen);
	json_t *(*migrate_status)(void *ctx);
	/* PATCH /migrate {"state": "Cancelled"}. */
	int (*migrate_cancel)(void *ctx, char *err, size_t errlen);
	/* The balloon: a new target, a new statistics interval, what it
	 * holds and the guest's statistics. */
	int (*balloon_update)(void *ctx, uint32_t mib, char *err, size_t errlen);
	int (*balloon_interval)(void *ctx, unsigned s, char *err, size_t errlen);
	int (*balloon_info)(void *ctx, struct balloon_info *out, char *err, size_t errlen);
	/* Adds the VMM's own counters to a metrics line (may be NULL). */
	void (*metrics)(void *ctx, json_t *line);
};

struct fc_counts {
	unsigned long requests, fails;
};

struct fc_api {
	struct api_config cfg;
	struct vm_config vm; /* built at InstanceStart */
	enum fc_state state;
	const struct fc_ops *ops;
	void *ctx;
	const char *id;
	int log_fd, metrics_fd;
	struct fc_counts get, put, patch;
	uint64_t started_ms; /* when the API object was made (monotonic) */
	struct mmds_store mmds; /* made on first use (mmds_on) */
	bool mmds_on;
};

struct fc_reply {
	int status;
	char *body; /* malloc'ed JSON, or NULL for 204 */
	size_t len;
};

void fc_api_init(struct fc_api *a, const struct fc_ops *ops, void *ctx, const char *id);
void fc_api_destroy(struct fc_api *a);

/* Answers one request; body may be NULL (no body). r->body must be freed. */
void fc_api_handle(struct fc_api *a, const char *method, const char *path, const char *body, size_t len,
		   struct fc_reply *r);

/* Applies a --config-file document (Firecracker's format: boot-source,
 * drives, machine-config, network-interfaces, logger, metrics) as if each
 * section had been PUT. Does not start the VM. */
int fc_api_load_config(struct fc_api *a, const char *buf, size_t len, char *err, size_t errlen);

/* PUT /snapshot/create and /snapshot/load (src/api/snapshot.c). */
int fc_snapshot_put(struct fc_api *a, const char *op, json_t *body, char *err, size_t errlen);

/* /balloon and /balloon/statistics (src/api/balloon.c); sub is the
 * path's second part ("" for none). The GET answers NULL with err set. */
int fc_balloon_modify(struct fc_api *a, bool patch, const char *sub, json_t *body, char *err, size_t errlen);
json_t *fc_balloon_get(struct fc_api *a, const char *sub, char *err, size_t errlen);

/* /mmds and /mmds/config (src/api/mmds.c); sub is the path's second
 * part. A store over its limit is FC_ETOOLARGE. The GET answers NULL
 * with err set. */
int fc_mmds_modify(struct fc_api *a, bool patch, const char *sub, json_t *body, char *err, size_t errlen);
json_t *fc_mmds_get(struct fc_api *a, char *err, size_t errlen);
/* The data store, made if there is none yet (NULL with err set when it
 * cannot be). */
struct mmds_store *fc_mmds_store(struct fc_api *a, char *err, size_t errlen);

/* Writes one metrics line now (also done every 60 s once metrics are set). */
int fc_api_flush_metrics(struct fc_api *a, char *err, size_t errlen);

#endif
