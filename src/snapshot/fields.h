/* Declarative device state, in the spirit of QEMU's VMState descriptions:
 * a device lists the members of its struct that are guest-visible state,
 * and the same table saves and loads them, field by field, with explicit
 * widths. Runtime handles (fds, locks, threads, callbacks) are simply not
 * listed. A loader checks ranges the table cannot know (FIFO indices...)
 * in the device's own load hook. */
#ifndef CELLVM_SNAPSHOT_FIELDS_H
#define CELLVM_SNAPSHOT_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

#include "snapshot/stream.h"

/* Save and load hooks every stateful device provides. */
typedef int (*snap_save_fn)(void *dev, struct snap_writer *w);
typedef int (*snap_load_fn)(void *dev, struct snap_reader *r);

enum snap_kind { SNAP_INT, SNAP_BOOL };

struct snap_field {
	size_t offset;
	unsigned char kind, size; /* size of one element: 1, 2, 4 or 8 */
	unsigned count;           /* elements (arrays) */
};

#define SNAP_MEMBER_SIZE(type, m) sizeof(((type *)0)->m)
/* An integer member (any width: uint8_t .. uint64_t, size_t, int64_t). */
#define SNAP_FIELD(type, m) { offsetof(type, m), SNAP_INT, SNAP_MEMBER_SIZE(type, m), 1 }
#define SNAP_FLAG(type, m) { offsetof(type, m), SNAP_BOOL, sizeof(bool), 1 }
/* An array of integers. */
#define SNAP_ARRAY(type, m) \
	{ offsetof(type, m), SNAP_INT, SNAP_MEMBER_SIZE(type, m[0]), \
	  SNAP_MEMBER_SIZE(type, m) / SNAP_MEMBER_SIZE(type, m[0]) }
#define SNAP_FLAGS(type, m) \
	{ offsetof(type, m), SNAP_BOOL, sizeof(bool), SNAP_MEMBER_SIZE(type, m) / sizeof(bool) }
#define SNAP_NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

void snap_put_fields(struct snap_writer *w, const void *obj, const struct snap_field *f, size_t n);
/* Reads into obj; on a short or malformed stream obj may be half-written,
 * so callers load into a copy and commit only when the reader is ok. */
void snap_get_fields(struct snap_reader *r, void *obj, const struct snap_field *f, size_t n);

#endif

/* Reads the listed fields into a scratch copy of obj (objsize bytes),
 * lets `valid` (may be NULL) check the copy, and only then copies the
 * listed fields into obj. 0, or CV_EINPUT with r marked bad (obj
 * unchanged). */
int snap_load_fields(struct snap_reader *r, void *obj, size_t objsize, const struct snap_field *f, size_t n,
		     bool (*valid)(const void *copy));
