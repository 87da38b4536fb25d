/* Byte streams of saved state: explicit little-endian fields, so a state
 * file does not depend on how cellvm lays out its structs in memory. The
 * reader is bounded and its error is sticky: a caller reads every field,
 * then checks snap_reader_ok() once. */
#ifndef CELLVM_SNAPSHOT_STREAM_H
#define CELLVM_SNAPSHOT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/file_id.h"

struct snap_writer {
	uint8_t *buf;
	size_t len, cap;
	bool oom;
};

void snap_writer_init(struct snap_writer *w);
void snap_writer_free(struct snap_writer *w);
void snap_put_bytes(struct snap_writer *w, const void *p, size_t n);
void snap_put_u8(struct snap_writer *w, uint8_t v);
void snap_put_u16(struct snap_writer *w, uint16_t v);
void snap_put_u32(struct snap_writer *w, uint32_t v);
void snap_put_u64(struct snap_writer *w, uint64_t v);
/* A string as a u32 length and its bytes (NULL: length 0xffffffff). */
void snap_put_str(struct snap_writer *w, const char *s);
void snap_put_file_id(struct snap_writer *w, const struct file_id *id);

struct snap_reader {
	const uint8_t *p;
	size_t len, off;
	const char *bad; /* first problem, or NULL */
	/* The version of the section read (state_load_all); 0 otherwise. */
	uint32_t version;
};

void snap_reader_init(struct snap_reader *r, const void *p, size_t len);
bool snap_reader_ok(const struct snap_reader *r);
/* Marks the stream bad (keeps the first reason). */
void snap_reader_fail(struct snap_reader *r, const char *why);
void snap_get_bytes(struct snap_reader *r, void *p, size_t n);
uint8_t snap_get_u8(struct snap_reader *r);
uint16_t snap_get_u16(struct snap_reader *r);
uint32_t snap_get_u32(struct snap_reader *r);
uint64_t snap_get_u64(struct snap_reader *r);
bool snap_get_bool(struct snap_reader *r);
/* Copies a string of at most cap-1 bytes into buf (NULL strings read as
 * ""; *is_null says which when given). */
void snap_get_str(struct snap_reader *r, char *buf, size_t cap, bool *is_null);
void snap_get_file_id(struct snap_reader *r, struct file_id *id);
/* The next n bytes in place (valid while the stream's buffer is), or NULL
 * with the stream marked bad. */
const uint8_t *snap_get_view(struct snap_reader *r, size_t n);
/* Bytes left unread. */
size_t snap_reader_left(const struct snap_reader *r);

#endif
