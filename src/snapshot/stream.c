#include "snapshot/stream.h"

#include <stdlib.h>
#include <string.h>

void snap_writer_init(struct snap_writer *w)
{
	memset(w, 0, sizeof(*w));
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void snap_put_bytes(struct snap_writer *w, const void *p, size_t n)
{
	if (w->oom || !n)
		return;
	if (n > w->cap - w->len) {
		size_t cap = w->cap ? w->cap : 256;
		uint8_t *b;

		while (cap - w->len < n) {
			if (cap > SIZE_MAX / 2) {
				w->oom = true;
				return;
			}
			cap *= 2;
		}
		if (!(b = realloc(w->buf, cap))) {
			w->oom = true;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void put_le(struct snap_writer *w, uint64_t v, unsigned n)
{
	uint8_t b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	snap_put_bytes(w, b, n);
}

void snap_put_u8(struct snap_writer *w, uint8_t v)
{
	put_le(w, v, 1);
}

void snap_put_u16(struct snap_writer *w, uint16_t v)
{
	put_le(w, v, 2);
}

void snap_put_u32(struct snap_writer *w, uint32_t v)
{
	put_le(w, v, 4);
}

void snap_put_u64(struct snap_writer *w, uint64_t v)
{
	put_le(w, v, 8);
}

void snap_put_str(struct snap_writer *w, const char *s)
{
	if (!s) {
		snap_put_u32(w, UINT32_MAX);
		return;
	}
	snap_put_u32(w, (uint32_t)strlen(s));
	snap_put_bytes(w, s, strlen(s));
}

void snap_reader_init(struct snap_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->bad = NULL;
	r->version = 0;
}

bool snap_reader_ok(const struct snap_reader *r)
{
	return !r->bad;
}

void snap_reader_fail(struct snap_reader *r, const char *why)
{
	if (!r->bad)
		r->bad = why;
}

size_t snap_reader_left(const struct snap_reader *r)
{
	return r->len - r->off;
}

void snap_get_bytes(struct snap_reader *r, void *p, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		snap_reader_fail(r, "truncated");
		memset(p, 0, n);
		return;
	}
	memcpy(p, r->p + r->off, n);
	r->off += n;
}

const uint8_t *snap_get_view(struct snap_reader *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || n > r->len - r->off) {
		snap_reader_fail(r, "truncated");
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

static uint64_t get_le(struct snap_reader *r, unsigned n)
{
	uint8_t b[8];
	uint64_t v = 0;

	snap_get_bytes(r, b, n);
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

uint8_t snap_get_u8(struct snap_reader *r)
{
	return (uint8_t)get_le(r, 1);
}

uint16_t snap_get_u16(struct snap_reader *r)
{
	return (uint16_t)get_le(r, 2);
}

uint32_t snap_get_u32(struct snap_reader *r)
{
	return (uint32_t)get_le(r, 4);
}

uint64_t snap_get_u64(struct snap_reader *r)
{
	return get_le(r, 8);
}

bool snap_get_bool(struct snap_reader *r)
{
	uint8_t v = snap_get_u8(r);

	if (v > 1)
		snap_reader_fail(r, "a flag is neither 0 nor 1");
	return v == 1;
}

void snap_get_str(struct snap_reader *r, char *buf, size_t cap, bool *is_null)
{
	uint32_t n = snap_get_u32(r);

	buf[0] = 0;
	if (is_null)
		*is_null = n == UINT32_MAX && !r->bad;
	if (r->bad || n == UINT32_MAX)
		return;
	if (n >= cap) {
		snap_reader_fail(r, "a string is too long");
		return;
	}
	snap_get_bytes(r, buf, n);
	buf[r->bad ? 0 : n] = 0;
	if (!r->bad && memchr(buf, 0, n))
		snap_reader_fail(r, "a string holds a NUL byte");
}

void snap_put_file_id(struct snap_writer *w, const struct file_id *id)
{
	snap_put_u64(w, id->ino);
	snap_put_u64(w, id->size);
	snap_put_u64(w, id->mtime_sec);
	snap_put_u64(w, id->mtime_nsec);
}

void snap_get_file_id(struct snap_reader *r, struct file_id *id)
{
	id->ino = snap_get_u64(r);
	id->size = snap_get_u64(r);
	id->mtime_sec = snap_get_u64(r);
	id->mtime_nsec = snap_get_u64(r);
}
