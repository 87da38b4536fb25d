/* The snapshot state file: a header (magic, format version, section
 * count), then sections, each with an id, its own version, a length and a
 * CRC-32 of its payload. Parsing validates every byte before anything is
 * used; sections are found by id, so the order of writing does not
 * matter and a reader can tell which sections nobody consumed. */
#ifndef CELLVM_SNAPSHOT_FILE_H
#define CELLVM_SNAPSHOT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot/stream.h"

#define SNAP_MAGIC "CELLVMST"
#define SNAP_FORMAT_VERSION 1
#define SNAP_ID_MAX 32
#define SNAP_MAX_SECTIONS 512
#define SNAP_FILE_MAX (64u << 20) /* far above any real VM's state */

struct snap_section {
	char id[SNAP_ID_MAX];
	uint32_t version;
	const uint8_t *data;
	size_t len;
	bool used;
};

struct snap_file {
	uint8_t *buf; /* owned when read from a file */
	struct snap_section *sec;
	unsigned n;
};

/* Validates buf (not copied: it must outlive f). 0 or CV_EINPUT with the
 * reason in err. */
int snap_file_parse(const uint8_t *buf, size_t len, struct snap_file *f, char *err, size_t errlen);
int snap_file_read(const char *path, struct snap_file *f, char *err, size_t errlen);
void snap_file_free(struct snap_file *f);
/* The section with this id (marked used), or NULL. */
struct snap_section *snap_file_get(struct snap_file *f, const char *id);

struct snap_file_writer {
	struct snap_writer out;
	unsigned n;
};

void snap_file_start(struct snap_file_writer *w);
void snap_file_add(struct snap_file_writer *w, const char *id, uint32_t version, const struct snap_writer *payload);
/* Completes the header; w->out then holds the whole file. */
void snap_file_finish(struct snap_file_writer *w);
/* Finishes and writes to a temporary file beside path, syncs and renames it into place:
 * a crash leaves the old file or the new one, never half of one. */
int snap_file_write(struct snap_file_writer *w, const char *path);
void snap_file_writer_free(struct snap_file_writer *w);

#endif
