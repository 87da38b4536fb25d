/* Dirty-page tracking for diff snapshots: which pages of RAM changed since
 * the last snapshot. The guest's writes come from KVM's dirty log of the
 * RAM slots, the VMM's own (virtqueue buffers and rings, the VM generation
 * ID) from guest_mem_mark_dirty(); both are gathered into one bitmap that
 * is cleared only once a snapshot holding those pages is on disk. */
#ifndef CELLVM_VMM_DIRTY_LOG_H
#define CELLVM_VMM_DIRTY_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/memory.h"

struct dirty_log {
	bool on;
	uint64_t *pending; /* one bit per page of RAM, in RAM order */
	uint64_t *scratch; /* KVM_GET_DIRTY_LOG's buffer */
};

/* Starts tracking from now on. 0 or CV_EFAIL, reported. */
int dirty_log_start(struct dirty_log *d, struct guest_mem *m);
/* Adds what was written since the last call to d->pending. */
int dirty_log_collect(struct dirty_log *d, struct guest_mem *m);
/* Forgets the pending pages (they are in a snapshot now). */
void dirty_log_clear(struct dirty_log *d, const struct guest_mem *m);
void dirty_log_free(struct dirty_log *d);
/* Ends tracking started by dirty_log_start (main thread). */
void dirty_log_stop(struct dirty_log *d, struct guest_mem *m);
/* Every page pending: after the pending set was lost (a migration that
 * failed), the next diff holds everything. */
void dirty_log_mark_all(struct dirty_log *d, const struct guest_mem *m);

#endif
