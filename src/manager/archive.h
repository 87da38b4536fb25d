/* `cellvm export` / `cellvm import`: a whole VM as one tar file (pax, with
 * sparse disks kept sparse), and back. The archive holds NAME/vm.json and
 * the files it names, all as plain names inside the bundle; disks a bundle
 * only references are copied in on export, so the file is complete on any
 * host. Import trusts nothing in the archive: one top directory, regular
 * files with plain names only, and a vm.json that points only inside. */
#ifndef CELLVM_MANAGER_ARCHIVE_H
#define CELLVM_MANAGER_ARCHIVE_H

int bundle_export(const char *name, const char *file);
/* name NULL: the archive's own top directory name. */
int bundle_import(const char *file, const char *name);

#endif
