/* `cellvm export` / `cellvm import`: a whole VM as one tar file (pax, with
 * sparse disks kept sparse), and back. The archive holds NAME/vm.json and
 * the files it names, all as plain names inside the bundle; disks a bundle
 * only references are copied in on export, so the file is complete on any
 * host. Import trusts nothing in the archive: one top directory, regular
 * files with plain names only, and a vm.json that points only inside.
 * libarchive is the module "archive" (util/module.h), which only these
 * two commands load. */
#ifndef CELLVM_MANAGER_ARCHIVE_H
#define CELLVM_MANAGER_ARCHIVE_H

struct archive_module {
	int (*export_bundle)(const char *name, const char *file);
	/* name NULL: the archive's own top directory name. */
	int (*import_bundle)(const char *file, const char *name);
};

/* In the module; the rest of cellvm reaches it through module_get(). */
extern const struct archive_module cellvm_module_archive;

#endif
