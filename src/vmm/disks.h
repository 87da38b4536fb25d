/* The VM's disks in a snapshot. The guest's memory holds what it believes
 * is on its disks (page cache, filesystem state), so a snapshot records
 * each disk and a restore refuses one that changed since:
 *
 * - a disk is recorded by identity (size, modification time);
 * - with a disk layer NAME, each writable qcow2 disk is frozen at the
 *   instant of the snapshot: its file becomes IMG.NAME (never written
 *   again) and IMG a new empty delta on it, on which the running VM goes
 *   on. The snapshot records the layer, and a restore wants IMG to be an
 *   empty delta on that unchanged layer (`cellvm snapshot restore` makes
 *   one), so the same snapshot restores any number of times;
 * - an NBD disk is recorded by its URI alone: its content is the
 *   server's, which nothing here can check, and it is never frozen. */
#ifndef CELLVM_VMM_DISKS_H
#define CELLVM_VMM_DISKS_H

#include <stdbool.h>
#include <stdint.h>

#include "snapshot/stream.h"
#include "vmm/config.h"

struct vm;

#define DISKS_SECTION "disks"
#define DISKS_VERSION 2

/* Which disks a snapshot froze into layers. */
struct disk_layers {
	const char *name; /* NULL: none */
	bool frozen[CV_MAX_DISKS];
	/* Sent along with a migration: the destination checks its own copy,
	 * not this file. */
	bool copied[CV_MAX_DISKS];
};

/* The VM is paused and its disks idle. Freezes every writable qcow2 disk
 * as IMG.NAME; on failure the disks frozen so far are thawed again. */
int vm_disks_freeze(struct vm *vm, struct disk_layers *dl);
/* Undoes vm_disks_freeze (the new deltas are still empty). */
void vm_disks_thaw(struct vm *vm, struct disk_layers *dl);

/* Disk i continues on the file at path (PATCH /drives path_on_host): the
 * guest is told if its size changed. The caller then points the
 * configuration's path at it. 0 or CV_E*, reported; on failure the disk is
 * unchanged. */
int vm_disk_replace(struct vm *vm, unsigned i, const char *path);

/* Migration: the source closes its disks (writing their metadata back;
 * all but those in `keep`, bit i: disk i) before the destination opens
 * them, and opens them again if the destination fails. The VM is paused
 * and its disks idle. */
void vm_disks_release(struct vm *vm, uint32_t keep);
int vm_disks_reacquire(struct vm *vm);

void vm_disks_encode(struct vm *vm, const struct disk_layers *dl, struct snap_writer *w);

/* Each disk's queues and polling, in a section of their own (the
 * configuration section's layout is left alone): a snapshot without it
 * is from before queues=, when every disk had one queue. */
#define DISK_QUEUES_SECTION "disk-queues"
#define DISK_QUEUES_VERSION 1
void vm_disks_encode_queues(const struct vm_config *cfg, struct snap_writer *w);
/* Sets cfg's queues= and poll_us= from the section (r NULL: absent): 0,
 * or CV_EINPUT with r marked bad. */
int vm_disks_decode_queues(struct vm_config *cfg, struct snap_reader *r);
/* Checks each disk of cfg (not opened yet) against the section: 0, or
 * CV_EINPUT reported naming the disk and what differs. Disks copied by a
 * migration are accepted only when `migrated`. */
int vm_disks_check(const struct vm_config *cfg, bool migrated, struct snap_reader *r);

#endif
