/* Whole-VM snapshots: a paused VM's every piece of state into a state
 * file (src/snapshot/file.h) and its RAM into a memory file; and a VM
 * built from them that continues where the snapshot was taken. */
#ifndef CELLVM_VMM_SNAPSHOT_H
#define CELLVM_VMM_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "snapshot/config.h"
#include "snapshot/file.h"
#include "snapshot/memchain.h"
#include "vmm/disks.h"

struct vm;

struct vm_snapshot_stats {
	uint64_t state_bytes, mem_bytes_written;
	double pause_to_done_ms;
};

/* The VM must be paused. Writes mem_path, then state_path (so a state
 * file always has its memory file). A diff snapshot (the VM tracks dirty
 * pages and has been snapshotted or restored before) writes only the
 * pages changed since, and its state file names the earlier layers. 0,
 * CV_EINPUT (bad path, no diff possible) or CV_EFAIL, reported; on failure
 * neither file is left half-written and the changed pages stay pending.
 * With a disk_layer NAME the writable qcow2 disks are frozen as IMG.NAME
 * at the same instant (src/vmm/disks.h); a failure thaws them again. */
int vm_snapshot_create(struct vm *vm, const char *state_path, const char *mem_path, bool diff,
		       const char *disk_layer, struct vm_snapshot_stats *st);

/* What vm_create restores from: an opened state file, its configuration,
 * and the memory file's path. */
struct vm_restore {
	struct snap_file file;
	struct snap_config config;
	struct mem_chain chain; /* its last layer is mem_path's */
	const char *mem_path;
	void *ram; /* or: the RAM arrived with the state (migration), here */
	bool migrated;
};

/* Reads and validates the state file and decodes its configuration.
 * 0 or CV_EINPUT, reported with the path. */
int vm_restore_open(struct vm_restore *rs, const char *state_path, const char *mem_path);
void vm_restore_close(struct vm_restore *rs);
/* The same from a state that came over a migration stream, with the RAM
 * already received into the anonymous mapping ram (ram_size bytes, laid
 * out like guest_mem's host mapping), which the VM then takes over. */
int vm_restore_open_buf(struct vm_restore *rs, const uint8_t *buf, size_t len, void *ram, uint64_t ram_size);
/* Lets a paused VM's in-flight device requests finish (they would still
 * write RAM). 0 or CV_EFAIL after a timeout, reported. */
int vm_drain(struct vm *vm);
/* Every section of a paused, drained VM but its memory chain. */
int vm_state_build(struct vm *vm, const struct disk_layers *dl, struct snap_file_writer *w);

/* For vm_create: registers the VM-wide sections (machine, irqchip, PIT,
 * kvmclock); the kvmclock is registered last so it is loaded after the
 * vCPUs. */
int vm_state_register_platform(struct vm *vm);
int vm_state_register_clock(struct vm *vm);
/* For vm_create with a restore: maps RAM from the memory file, or from
 * the full layer of a diff chain with the later layers read over it. */
int vm_restore_memory(struct vm *vm, struct vm_restore *rs);
/* For vm_create, once every device and vCPU exists: loads every section
 * (refusing one this VM has no use for) and restarts the virtio devices. */
int vm_restore_state(struct vm *vm, struct vm_restore *rs);

#endif
