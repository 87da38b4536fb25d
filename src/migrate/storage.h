/* Copying a VM's files along with a migration (copy_storage), for VMs
 * whose files the destination cannot reach: its disks, and its kernel and
 * initrd (read again when the guest reboots). Like RAM, pre-copied: the
 * source sends every chunk of data its disks hold (zero ranges are not
 * sent: the destination's copy starts empty), then, round after round,
 * the chunks the guest wrote meanwhile (block/dirty.h), and the last ones
 * once the VM is paused and its requests are done. The destination writes
 * them into new images of the same format (a backing chain arrives
 * flattened into one), under temporary names renamed into place at the
 * end; a migration that fails leaves nothing of them behind. */
#ifndef CELLVM_MIGRATE_STORAGE_H
#define CELLVM_MIGRATE_STORAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/dirty.h"
#include "vmm/config.h"

struct block;
struct image;

/* ---- source */

/* Sends one record (type, then a's and b's bytes) on the caller's
 * connection: 0 or -errno. */
typedef int (*mig_out_fn)(void *ctx, uint32_t type, const void *a, size_t alen, const void *b, size_t blen);

enum storage_role { STORAGE_DISK, STORAGE_KERNEL, STORAGE_INITRD };
#define STORAGE_MAX (CV_MAX_DISKS + 2)

/* What a source sends: an open disk (its writes tracked), or a boot file
 * opened for the migration (owned: closed at the end). */
struct storage_src {
	struct block *b;
	const char *path, *id; /* as the VM's configuration names it */
	enum storage_role role;
	unsigned drive; /* a disk: its index in the configuration */
	bool owned;
};

struct storage_out {
	unsigned n;
	struct storage_disk {
		struct storage_src src;
		struct block_dirty dirty;
		uint64_t *send; /* this round's chunks */
	} disk[STORAGE_MAX];
	uint8_t *buf; /* a BLOCKS record */
	bool first;   /* the next round is the first: everything with data */
	uint64_t todo;         /* bytes this round looks at */
	_Atomic uint64_t done; /* of which it has (progress, read by any thread) */
};

/* Main thread, VM running: the writes of every disk are tracked from now
 * on. s takes the owned files (closed by storage_out_stop, or here on
 * failure). */
int storage_out_start(struct storage_out *s, const struct storage_src *src, unsigned n);
/* Main thread: tracking ends, everything is freed. */
void storage_out_stop(struct storage_out *s);
/* The DISKS record. */
int storage_out_announce(struct storage_out *s, mig_out_fn out, void *ctx);
/* Takes the chunks written since the last round (todo for the next):
 * how many bytes they are. */
uint64_t storage_out_dirty(struct storage_out *s);
/* Sends this round's chunks. 0 or -errno (of the link, or of a disk read). */
int storage_out_round(struct storage_out *s, mig_out_fn out, void *ctx);

/* ---- destination */

/* Where the disks of an incoming VM may go: `--receive-dir DIR` (each
 * under its source file's name there) and `--disk-override DRIVE=PATH`
 * (DRIVE: vda, vdb, ... or the drive's id). A destination given neither
 * refuses disks: a source must not create files where it likes. */
struct storage_dest {
	const char *dir;
	const struct disk_override *ov;
	unsigned nov;
};

struct storage_in {
	unsigned n;
	struct storage_target {
		char path[PATH_MAX]; /* where it goes */
		char tmp[PATH_MAX];  /* where it is written */
		struct image *img;
		uint64_t size;
		enum disk_format format;
		enum storage_role role;
		unsigned drive;
		bool published;
	} disk[STORAGE_MAX];
};

/* The DISKS record: creates each target under its temporary name. A
 * target that exists already is refused. 0, or CV_EINPUT / CV_EFAIL with
 * *why set (and reported). */
int storage_in_disks(struct storage_in *s, const uint8_t *rec, size_t len, const struct storage_dest *dest,
		     const char **why);
/* One BLOCKS record, every field checked against its disk. */
int storage_in_blocks(struct storage_in *s, const uint8_t *rec, size_t len, const char **why);
/* At the end of the stream: writes each image back and renames it into
 * place. */
int storage_in_finish(struct storage_in *s, const char **why);
/* The migration failed: removes every target made (published or not). */
void storage_in_discard(struct storage_in *s);

#endif
