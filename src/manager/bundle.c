#include "manager/bundle.h"

#include <errno.h>
#include <stdarg.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/config.h"
#include "block/image.h"
#include "block/nbd.h"
#include "manager/copy.h"
#include "util/err.h"

int path_fmt(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap) {
		cv_err("path too long: '%.80s...'", buf);
		return CV_EINPUT;
	}
	return 0;
}

int bundle_root(char *buf, size_t cap)
{
	const char *home = getenv("CELLVM_HOME"), *user = getenv("HOME");
	int n;

	if (home && *home)
		n = snprintf(buf, cap, "%s/vms", home);
	else if (user && *user)
		n = snprintf(buf, cap, "%s/.local/share/cellvm/vms", user);
	else {
		cv_err("set CELLVM_HOME (or HOME): where VM bundles are kept");
		return CV_EINPUT;
	}
	if (n < 0 || (size_t)n >= cap) {
		cv_err("invalid CELLVM_HOME: path too long");
		return CV_EINPUT;
	}
	return 0;
}

int bundle_check_name(const char *name)
{
	size_t len = strlen(name);

	if (!len || len > BUNDLE_NAME_MAX || name[0] == '.' || name[0] == '-' ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != len) {
		cv_err("invalid VM name '%s': use 1 to %d letters, digits, '_', '.', '-', starting with a letter or digit",
		       name, BUNDLE_NAME_MAX);
		return CV_EINPUT;
	}
	return 0;
}

int bundle_dir(const char *name, char *buf, size_t cap)
{
	char root[PATH_MAX];
	int rc;

	if ((rc = bundle_check_name(name)) || (rc = bundle_root(root, sizeof(root))))
		return rc;
	if ((size_t)snprintf(buf, cap, "%s/%s", root, name) >= cap) {
		cv_err("invalid CELLVM_HOME: path too long");
		return CV_EINPUT;
	}
	return 0;
}

int bundle_file(const char *name, const char *file, char *buf, size_t cap)
{
	char dir[PATH_MAX];
	int rc;

	if ((rc = bundle_dir(name, dir, sizeof(dir))))
		return rc;
	if ((size_t)snprintf(buf, cap, "%s/%s", dir, file) >= cap) {
		cv_err("invalid CELLVM_HOME: path too long");
		return CV_EINPUT;
	}
	return 0;
}

int bundle_require(const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;

	if ((rc = bundle_file(name, BUNDLE_CONFIG, path, sizeof(path))))
		return rc;
	if (stat(path, &st) < 0) {
		cv_err("no VM named '%s' (see cellvm list)", name);
		return CV_EINPUT;
	}
	return 0;
}

int bundle_load(const char *name, json_t **doc)
{
	char path[PATH_MAX];
	json_error_t e;
	int rc;

	if ((rc = bundle_file(name, BUNDLE_CONFIG, path, sizeof(path))))
		return rc;
	*doc = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
	if (!*doc || !json_is_object(*doc)) {
		cv_err("VM '%s': broken %s: %s", name, BUNDLE_CONFIG, *doc ? "not an object" : e.text);
		json_decref(*doc);
		*doc = NULL;
		return CV_EFAIL;
	}
	return 0;
}

int bundle_read_info(const char *name, struct bundle_info *info)
{
	json_t *doc, *drives, *d, *storage;
	size_t i, used = 0;
	int rc;

	memset(info, 0, sizeof(*info));
	if ((rc = bundle_load(name, &doc)))
		return rc;
	info->vcpus = (unsigned)json_integer_value(json_object_get(json_object_get(doc, "machine-config"), "vcpu_count"));
	info->mem_mib =
		(unsigned)json_integer_value(json_object_get(json_object_get(doc, "machine-config"), "mem_size_mib"));
	if (!info->vcpus)
		info->vcpus = 1;
	if (!info->mem_mib)
		info->mem_mib = API_DEFAULT_MEM_MIB;
	drives = json_object_get(doc, "drives");
	storage = json_object_get(json_object_get(doc, "cellvm"), "drives");
	json_array_foreach(drives, i, d)
	{
		const char *id = json_string_value(json_object_get(d, "drive_id"));
		const char *how = json_string_value(json_object_get(storage, id ? id : ""));
		int n;

		if (!how)
			how = "copied";
		info->ndrives++;
		info->referenced += !strcmp(how, "referenced");
		n = snprintf(info->drives + used, sizeof(info->drives) - used, "%s%s:%s", used ? "," : "",
			     id ? id : "?", how);
		if (n > 0 && used + (size_t)n < sizeof(info->drives))
			used += (size_t)n;
	}
	json_decref(doc);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT) {
		cv_err("cannot remove '%s': %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int remove_tree(const char *dir)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) ? CV_EFAIL : 0;
}

/* ------------------------------------------------------------- create */

/* The bundle's vm.json for cfg: disks as `files[i]` name them. */
static json_t *make_config(const struct vm_config *cfg, char files[][PATH_MAX], const bool *qcow2, bool referenced)
{
	json_t *drives = json_array(), *nics = json_array(), *storage = json_object(), *boot;

	for (unsigned i = 0; i < cfg->ndisks; i++) {
		/* The format is fixed now: never guessed from what a guest wrote. */
		/* Writeback: the disk flushes as a --disk does (Firecracker's default, Unsafe, offers none). */
		json_array_append_new(drives, json_pack("{s:s, s:b, s:b, s:s, s:s, s:s}", "drive_id", cfg->disks[i].id,
							"is_root_device", 0, "is_read_only", cfg->disks[i].readonly,
							"path_on_host", files[i], "format", qcow2[i] ? "qcow2" : "raw",
							"cache_type", "Writeback"));
		json_object_set_new(storage, cfg->disks[i].id, json_string(referenced ? "referenced" : "copied"));
	}
	for (unsigned i = 0; i < cfg->nnics; i++) {
		const uint8_t *m = cfg->nics[i].mac;
		char id[16], mac[18];
		json_t *nic;

		snprintf(id, sizeof(id), "net%u", i);
		nic = json_pack("{s:s, s:s}", "iface_id", id, "host_dev_name", cfg->nics[i].tap);
		if (cfg->nics[i].mac_set) {
			snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
			json_object_set_new(nic, "guest_mac", json_string(mac));
		}
		json_array_append_new(nics, nic);
	}
	boot = json_pack("{s:s, s:s}", "kernel_image_path", "kernel", "boot_args", cfg->cmdline);
	if (cfg->initrd)
		json_object_set_new(boot, "initrd_path", json_string("initrd"));
	return json_pack("{s:o, s:{s:I, s:I}, s:o, s:o, s:{s:o}, s:o?}", "boot-source", boot, "machine-config",
			 "vcpu_count", (json_int_t)cfg->cpus, "mem_size_mib", (json_int_t)(cfg->memory >> 20), "drives",
			 drives, "network-interfaces", nics, "cellvm", "drives", storage, "balloon",
			 cfg->balloon.on ? api_balloon_json(&cfg->balloon) : NULL);
}

/* What a bundle can hold: Firecracker's config has no place for the rest. */
static int check_storable(const struct vm_config *cfg)
{
	char err[160];

	if (cfg->memory & ((1 << 20) - 1)) {
		cv_err("invalid --memory: a bundle stores whole MiB (mem_size_mib)");
		return CV_EINPUT;
	}
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		const struct ratelimit_config *l = &cfg->disks[i].limit;

		if (api_check_id(cfg->disks[i].id, err, sizeof(err))) {
			cv_err("invalid --disk id '%s': %s", cfg->disks[i].id, err);
			return CV_EINPUT;
		}
		if (cfg->disks[i].format == DISK_FORMAT_QCOW2 || l->bps || l->ops) {
			cv_err("invalid --disk '%s': a bundle holds raw drives without rate limits", cfg->disks[i].path);
			return CV_EINPUT;
		}
		/* Copies, exports and snapshots of a bundle are of files. */
		if (nbd_image_is_uri(cfg->disks[i].path)) {
			cv_err("invalid --disk '%s': a bundle holds disk files, not NBD exports (use cellvm run)",
			       cfg->disks[i].path);
			return CV_EINPUT;
		}
	}
	for (unsigned i = 0; i < cfg->nnics; i++) {
		if (cfg->nics[i].mode != NET_TAP || cfg->nics[i].rx.bps || cfg->nics[i].tx.bps) {
			cv_err("invalid --net: a bundle holds tap=NAME[,mac=MAC] interfaces only");
			return CV_EINPUT;
		}
	}
	return 0;
}

static int copy_in(const char *src, const char *dir, const char *name)
{
	char dst[PATH_MAX];

	if ((size_t)snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= sizeof(dst))
		return CV_EINPUT;
	return copy_sparse(src, dst);
}

int bundle_mktemp(const char *name, char *tmp, size_t cap)
{
	char root[PATH_MAX], final[PATH_MAX];
	struct stat st;
	int rc;

	if ((rc = bundle_root(root, sizeof(root))) || (rc = bundle_dir(name, final, sizeof(final))))
		return rc;
	if (stat(final, &st) == 0) {
		cv_err("a VM named '%s' already exists", name);
		return CV_EINPUT;
	}
	/* mkdir -p the root, then a hidden directory in it. */
	for (char *p = strchr(root + 1, '/');; p = strchr(p + 1, '/')) {
		if (p)
			*p = 0;
		if (mkdir(root, 0755) < 0 && errno != EEXIST) {
			cv_err("cannot create '%s': %s", root, strerror(errno));
			return CV_EFAIL;
		}
		if (!p)
			break;
		*p = '/';
	}
	if ((size_t)snprintf(tmp, cap, "%s/.%s.XXXXXX", root, name) >= cap || !mkdtemp(tmp)) {
		cv_err("cannot create a directory in '%s': %s", root, strerror(errno));
		return CV_EFAIL;
	}
	chmod(tmp, 0755);
	return 0;
}

int bundle_create(const char *name, const struct vm_config *cfg, bool referenced)
{
	char final[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
	static char files[CV_MAX_DISKS][PATH_MAX];
	bool qcow2[CV_MAX_DISKS];
	json_t *doc = NULL;
	int rc;

	if ((rc = check_storable(cfg)) || (rc = bundle_dir(name, final, sizeof(final))) ||
	    (rc = bundle_mktemp(name, tmp, sizeof(tmp))))
		return rc;
	rc = copy_in(cfg->kernel, tmp, "kernel");
	if (!rc && cfg->initrd)
		rc = copy_in(cfg->initrd, tmp, "initrd");
	for (unsigned i = 0; !rc && i < cfg->ndisks; i++) {
		enum block_format f = cfg->disks[i].format == DISK_FORMAT_QCOW2 ? BLOCK_FORMAT_QCOW2 : BLOCK_FORMAT_RAW;

		if (cfg->disks[i].format == DISK_FORMAT_AUTO && (rc = image_probe(cfg->disks[i].path, &f)))
			break;
		qcow2[i] = f == BLOCK_FORMAT_QCOW2;
		if (referenced) {
			if (!realpath(cfg->disks[i].path, files[i])) {
				cv_err("invalid --disk '%s': %s", cfg->disks[i].path, strerror(errno));
				rc = CV_EINPUT;
			}
		} else {
			snprintf(files[i], sizeof(files[i]), "%s.img", cfg->disks[i].id);
			rc = copy_in(cfg->disks[i].path, tmp, files[i]);
		}
	}
	if (!rc && !(doc = make_config(cfg, files, qcow2, referenced)))
		rc = CV_EFAIL;
	if (!rc) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", tmp, BUNDLE_CONFIG) >= sizeof(path) ||
		    json_dump_file(doc, path, JSON_INDENT(2) | JSON_SORT_KEYS) < 0) {
			cv_err("cannot write '%s'", path);
			rc = CV_EFAIL;
		}
	}
	json_decref(doc);
	if (!rc && rename(tmp, final) < 0) {
		cv_err(errno == EEXIST || errno == ENOTEMPTY ? "a VM named '%s' already exists" : "cannot create VM '%s'",
		       name);
		rc = errno == EEXIST || errno == ENOTEMPTY ? CV_EINPUT : CV_EFAIL;
	}
	if (rc)
		remove_tree(tmp);
	return rc;
}
