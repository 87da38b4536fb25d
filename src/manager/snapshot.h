/* `cellvm snapshot create|list|restore|delete`: whole-VM snapshots of a
 * managed VM, kept in its bundle:
 *
 *   snapshots/SNAP/state, memory  the VM at that instant (PUT /snapshot/create)
 *   snapshots/SNAP/meta.json      {"created": UNIX time}; a directory
 *                                 without it is a deleted (or unfinished)
 *                                 snapshot whose disk layers something
 *                                 still needs
 *   IMG.SNAP                      beside each writable qcow2 disk IMG: the
 *                                 disk at the same instant (src/vmm/disks.h)
 *
 * Restoring puts a new empty delta on IMG.SNAP at IMG and continues the VM
 * from the state; the disk's previous content is kept until the restored
 * VM runs, so a failed restore changes nothing. A layer goes with the last
 * snapshot or image that needs it. */
#ifndef CELLVM_MANAGER_SNAPSHOT_H
#define CELLVM_MANAGER_SNAPSHOT_H

#include <jansson.h>

#define BUNDLE_SNAPSHOTS "snapshots"
#define SNAPSHOT_META "meta.json"

/* argv: what follows `cellvm snapshot`. Returns the exit status. */
int snapshot_main(int argc, char **argv);

/* The names of NAME's snapshots, oldest first (a JSON array of strings,
 * the caller json_decref()s it). */
int snapshot_names(const char *name, json_t **names);

#endif
