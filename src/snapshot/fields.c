#include "snapshot/fields.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static uint64_t load_int(const uint8_t *p, unsigned size)
{
	uint8_t v8;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;

	switch (size) {
	case 1:
		memcpy(&v8, p, 1);
		return v8;
	case 2:
		memcpy(&v16, p, 2);
		return v16;
	case 4:
		memcpy(&v32, p, 4);
		return v32;
	default:
		memcpy(&v64, p, 8);
		return v64;
	}
}

static void store_int(uint8_t *p, unsigned size, uint64_t v)
{
	uint8_t v8 = (uint8_t)v;
	uint16_t v16 = (uint16_t)v;
	uint32_t v32 = (uint32_t)v;

	switch (size) {
	case 1:
		memcpy(p, &v8, 1);
		break;
	case 2:
		memcpy(p, &v16, 2);
		break;
	case 4:
		memcpy(p, &v32, 4);
		break;
	default:
		memcpy(p, &v, 8);
		break;
	}
}

void snap_put_fields(struct snap_writer *w, const void *obj, const struct snap_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = (const uint8_t *)obj + f[i].offset;

		for (unsigned k = 0; k < f[i].count; k++, p += f[i].size) {
			uint64_t v = f[i].kind == SNAP_BOOL ? *(const bool *)p : load_int(p, f[i].size);

			switch (f[i].size) {
			case 1:
				snap_put_u8(w, (uint8_t)v);
				break;
			case 2:
				snap_put_u16(w, (uint16_t)v);
				break;
			case 4:
				snap_put_u32(w, (uint32_t)v);
				break;
			default:
				snap_put_u64(w, v);
				break;
			}
		}
	}
}

void snap_get_fields(struct snap_reader *r, void *obj, const struct snap_field *f, size_t n)
{
	for (size_t i = 0; i < n && snap_reader_ok(r); i++) {
		uint8_t *p = (uint8_t *)obj + f[i].offset;

		for (unsigned k = 0; k < f[i].count; k++, p += f[i].size) {
			if (f[i].kind == SNAP_BOOL) {
				*(bool *)p = snap_get_bool(r);
				continue;
			}
			switch (f[i].size) {
			case 1:
				store_int(p, 1, snap_get_u8(r));
				break;
			case 2:
				store_int(p, 2, snap_get_u16(r));
				break;
			case 4:
				store_int(p, 4, snap_get_u32(r));
				break;
			default:
				store_int(p, 8, snap_get_u64(r));
				break;
			}
		}
	}
}

int snap_load_fields(struct snap_reader *r, void *obj, size_t objsize, const struct snap_field *f, size_t n,
		     bool (*valid)(const void *copy))
{
	uint8_t *copy = malloc(objsize);

	if (!copy) {
		snap_reader_fail(r, "out of memory");
		return CV_EINPUT;
	}
	memcpy(copy, obj, objsize);
	snap_get_fields(r, copy, f, n);
	if (snap_reader_ok(r) && valid && !valid(copy))
		snap_reader_fail(r, "a value is out of range");
	if (snap_reader_ok(r))
		for (size_t i = 0; i < n; i++)
			memcpy((uint8_t *)obj + f[i].offset, copy + f[i].offset, (size_t)f[i].size * f[i].count);
	free(copy);
	return snap_reader_ok(r) ? 0 : CV_EINPUT;
}
