/* Which state sections a VM has: every stateful device registers its save
 * and load hooks under a section id, naming the objects it answers for
 * (what it registered on the I/O buses or in a PCI slot). Before a
 * snapshot is written, every bus range and PCI slot must be answered for,
 * so a device added without state fails loudly instead of being left out. */
#ifndef CELLVM_VMM_STATE_H
#define CELLVM_VMM_STATE_H

#include "hw/pci.h"
#include "snapshot/fields.h"
#include "snapshot/file.h"
#include "vmm/bus.h"

#define STATE_MAX_ENTRIES 48
#define STATE_MAX_COVERS 2

struct state_entry {
	char id[SNAP_ID_MAX];
	uint32_t min_version, version; /* what loads; what is saved */
	snap_save_fn save;
	snap_load_fn load;
	void *dev;
	const void *covers[STATE_MAX_COVERS];
};

struct state_registry {
	struct state_entry e[STATE_MAX_ENTRIES];
	unsigned n;
};

/* cover0/cover1: the bus opaques or PCI devices this entry answers for
 * (NULL for none). Returns CV_EFAIL when full or the id is taken. */
int state_register(struct state_registry *s, const char *id, uint32_t version, snap_save_fn save,
		   snap_load_fn load, void *dev, const void *cover0, const void *cover1);
/* Also loads sections of versions min_version.. (older snapshots): the
 * loader finds the version in its reader. */
int state_register_versions(struct state_registry *s, const char *id, uint32_t min_version, uint32_t version,
			    snap_save_fn save, snap_load_fn load, void *dev, const void *cover0, const void *cover1);
/* 0, or CV_EFAIL naming the first bus range or PCI slot nobody saves. */
int state_check_coverage(const struct state_registry *s, const struct bus *pio, const struct bus *mmio,
			 const struct pci_host *pci);
/* Adds every entry's section to the file. */
int state_save_all(const struct state_registry *s, struct snap_file_writer *w);
/* Loads every entry from its section; a missing, newer or malformed
 * section is CV_EINPUT with the reason reported. */
int state_load_all(const struct state_registry *s, struct snap_file *f);

#endif
