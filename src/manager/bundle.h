/* A VM bundle: everything one managed VM is, in one directory that can be
 * moved, archived and imported elsewhere:
 *
 *   $CELLVM_HOME/vms/NAME/      ($CELLVM_HOME defaults to ~/.local/share/cellvm)
 *     vm.json     the VM in Firecracker's config-file format; paths relative
 *                 to the bundle, plus "cellvm": {"drives": {ID: "copied" |
 *                 "referenced"}} saying which disks live in the bundle
 *     kernel, initrd, ID.img   copies made by `cellvm create`
 *     vm.pid, api.sock, console.sock, vm.log   while (and after) it runs
 *
 * The directory's name is the VM's name. */
#ifndef CELLVM_MANAGER_BUNDLE_H
#define CELLVM_MANAGER_BUNDLE_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/config.h"

#define BUNDLE_NAME_MAX 64
#define BUNDLE_CONFIG "vm.json"
#define BUNDLE_PIDFILE "vm.pid"
#define BUNDLE_API "api.sock"
#define BUNDLE_CONSOLE "console.sock"
#define BUNDLE_LOG "vm.log"

/* Where bundles live: $CELLVM_HOME/vms. */
int bundle_root(char *buf, size_t cap);
/* [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64: safe as a directory name. */
int bundle_check_name(const char *name);
/* The bundle directory of NAME, and a file inside it. */
int bundle_dir(const char *name, char *buf, size_t cap);
int bundle_file(const char *name, const char *file, char *buf, size_t cap);
/* CV_EINPUT ("no VM named ...") unless NAME's bundle exists. */
int bundle_require(const char *name);

/* What `cellvm list` shows of a bundle's vm.json. */
struct bundle_info {
	unsigned vcpus, mem_mib;
	unsigned ndrives, referenced; /* drives, and how many live outside */
	char drives[256];             /* "rootfs:copied,data:referenced" */
};
int bundle_read_info(const char *name, struct bundle_info *info);
/* Loads NAME's vm.json (the caller json_decref()s it). */
int bundle_load(const char *name, json_t **doc);

/* Builds a new bundle from `cellvm create` options; referenced: disks
 * stay where they are instead of being copied in. Nothing is left behind
 * on failure. */
int bundle_create(const char *name, const struct vm_config *cfg, bool referenced);

/* A new hidden directory in the bundle root (made if missing) to build
 * NAME's bundle in, renamed to bundle_dir(NAME) once complete; refused
 * when NAME exists. */
int bundle_mktemp(const char *name, char *tmp, size_t cap);

/* snprintf for paths: CV_EINPUT (reported) when the result is too long. */
int path_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Removes a directory tree (not following symlinks). */
int remove_tree(const char *dir);

#endif
