/* Guest memory in a snapshot: one file, RAM in guest order (low part,
 * then what lies above 4 GiB), written sparse so never-touched and zero
 * pages are holes, and mapped copy-on-write on restore so pages load on
 * first touch and VMs restored from one file share its page cache. */
#ifndef CELLVM_SNAPSHOT_MEMFILE_H
#define CELLVM_SNAPSHOT_MEMFILE_H

#include <stdint.h>

#include "vmm/memory.h"

/* Writes RAM to path (through a temporary file and a rename): all of it,
 * or for a diff file only the pages set in `pages` (one bit per page).
 * *written counts the bytes of data pages. */
int memfile_save(const struct guest_mem *m, const char *path, const uint64_t *pages, uint64_t *written);
/* Replaces RAM with a private mapping of the file; the file must be
 * exactly the size of RAM. 0, CV_EINPUT (named in the message) or
 * CV_EFAIL. */
int memfile_map(struct guest_mem *m, const char *path);
/* Reads the pages set in `pages` from a diff file over RAM (a diff
 * chain's later layers). Same returns. */
int memfile_apply(struct guest_mem *m, const char *path, const uint64_t *pages);

#endif
