/* The VM a Firecracker-style client describes resource by resource before
 * InstanceStart (or all at once in a --config-file), and its translation
 * to cellvm's struct vm_config. Every update is validated completely
 * before anything changes, so a refused request leaves no trace. */
#ifndef CELLVM_API_CONFIG_H
#define CELLVM_API_CONFIG_H

#include <jansson.h>

#include "arch/x86/cpu_template.h"
#include <stdbool.h>
#include <stdint.h>

#include "vmm/config.h"

#define API_ID_MAX 64
#define API_DEFAULT_MEM_MIB 128 /* Firecracker's default */

/* Firecracker's token bucket: `size` tokens refilled every `refill_time` ms. */
struct api_bucket {
	bool set;
	uint64_t size, one_time_burst, refill_time;
};

struct api_limiter {
	struct api_bucket bandwidth, ops;
};

struct api_drive {
	char id[CV_DISK_ID_MAX + 1];
	char *path, *partuuid;
	bool root, ro;
	bool writeback; /* cache_type "Writeback": the guest is offered flushes */
	bool async;     /* io_engine "Async"; cellvm always uses io_uring */
	bool has_limit;
	struct api_limiter limit;
	bool qcow2; /* cellvm's own "format": "qcow2" (Firecracker drives are raw) */
};

struct api_nic {
	char id[API_ID_MAX + 1];
	char tap[16];
	uint8_t mac[6];
	bool mac_set, has_rx, has_tx;
	struct api_limiter rx, tx;
};

enum api_log_level { API_LOG_OFF, API_LOG_ERROR, API_LOG_WARNING, API_LOG_INFO, API_LOG_DEBUG, API_LOG_TRACE };

struct api_logger {
	bool set;
	char *path, *module;
	enum api_log_level level;
	bool show_level, show_origin;
};

struct api_metrics {
	bool set;
	char *path;
};

struct api_config {
	bool boot_set;
	char *kernel, *initrd, *boot_args;
	unsigned vcpus, mem_mib;
	bool smt; /* two threads per core */
	bool track_dirty_pages;
	/* How RAM is backed: Firecracker's huge_pages "2M", and cellvm's
	 * memory_options (those of --memory after the size, vmm/ram.h). */
	bool huge_2m;
	char mem_options[512];
	struct api_drive drives[CV_MAX_DISKS]; /* the root drive, if any, first */
	unsigned ndrives;
	struct api_nic nics[CV_MAX_NICS];
	unsigned nnics;
	struct balloon_config balloon;
	struct api_logger logger;
	struct api_metrics metrics;
	struct cpu_template tmpl; /* machine-config's cpu_template or PUT /cpu-config */
	struct vsock_config vsock;
	bool entropy_set, entropy_has_limit; /* PUT /entropy */
	struct api_limiter entropy;
	struct mmds_config mmds; /* PUT /mmds/config */
	/* The largest MMDS data store, in bytes of compact JSON (Firecracker's
	 * --mmds-size-limit; MMDS_DEFAULT_SIZE_LIMIT unless changed). */
	size_t mmds_size_limit;
	char cmdline[4096]; /* boot_args plus root=, built by api_config_to_vm */
};

void api_config_init(struct api_config *c);
void api_config_free(struct api_config *c);

/* Resource updates: 0, or CV_EINPUT with a one-line reason (nothing
 * changed), or CV_EFAIL when out of memory. `id` is the path's ID (NULL
 * for a config file, where the body's ID is taken). */
int api_put_machine(struct api_config *c, json_t *body, bool patch, char *err, size_t errlen);
int api_put_boot(struct api_config *c, json_t *body, char *err, size_t errlen);
int api_put_drive(struct api_config *c, const char *id, json_t *body, char *err, size_t errlen);
int api_put_nic(struct api_config *c, const char *id, json_t *body, char *err, size_t errlen);
/* PUT /vsock: guest_cid (3 and up), uds_path, the deprecated vsock_id. */
int api_put_vsock(struct api_config *c, json_t *body, char *err, size_t errlen);
/* After boot a drive's path and the rate limiters may change. A PATCH is
 * validated and returned as what changes; the VMM applies it to the device
 * and then commits it (api_commit_limit, the drive's path). */
struct api_limit_patch {
	unsigned which;            /* RATELIMIT_BYTES/OPS: the buckets named (0: no change) */
	struct api_limiter merged; /* the limiter afterwards */
	struct ratelimit_config cfg; /* the same for the device */
};

struct api_drive_patch {
	int index;
	const char *path; /* a new path_on_host (in the body), or NULL */
	struct api_limit_patch limit;
};

struct api_nic_patch {
	int index;
	struct api_limit_patch rx, tx;
};

int api_patch_drive(const struct api_config *c, const char *id, json_t *body, struct api_drive_patch *out,
		    char *err, size_t errlen);
int api_patch_nic(const struct api_config *c, const char *id, json_t *body, struct api_nic_patch *out, char *err,
		  size_t errlen);
/* Records an applied limiter patch in the configuration's limiter. */
void api_commit_limit(bool *has, struct api_limiter *l, const struct api_limit_patch *p);
/* PUT /entropy: its optional rate_limiter (before boot). */
int api_put_entropy(struct api_config *c, json_t *body, char *err, size_t errlen);
/* Parse only: the caller opens the files before committing with
 * api_logger_set / api_metrics_set (which take ownership). */
int api_parse_logger(json_t *body, struct api_logger *out, char *err, size_t errlen);
int api_parse_metrics(json_t *body, struct api_metrics *out, char *err, size_t errlen);
void api_logger_set(struct api_config *c, struct api_logger *l);
void api_metrics_set(struct api_config *c, struct api_metrics *m);

/* PUT /balloon (src/api/balloon.c) and its description. */
int api_put_balloon(struct api_config *c, json_t *body, char *err, size_t errlen);
json_t *api_balloon_json(const struct balloon_config *b);

/* PUT /mmds/config (src/api/mmds.c), against the NICs configured so
 * far, and its description. */
int api_put_mmds_config(struct api_config *c, json_t *body, char *err, size_t errlen);
json_t *api_mmds_json(const struct api_config *c);

/* "The ID cannot be empty." / only [A-Za-z0-9_]: Firecracker's rule. */
int api_check_id(const char *id, char *err, size_t errlen);

/* The other way: c describes a VM built from the command line or a
 * snapshot, for GET /vm/config and later PATCHes. 0 or CV_EFAIL. */
int api_config_describe(struct api_config *c, const struct vm_config *vm);

/* Fills vm (whose strings point into c) for vm_create. */
int api_config_to_vm(struct api_config *c, struct vm_config *vm, char *err, size_t errlen);

/* GET /machine-config and GET /vm/config bodies (NULL when out of memory). */
json_t *api_machine_json(const struct api_config *c);
json_t *api_config_json(const struct api_config *c);

#endif
