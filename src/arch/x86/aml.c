#include "arch/x86/aml.h"

#include <string.h>

#define OP_ZERO 0x00
#define OP_ONE 0x01
#define OP_NAME 0x08
#define OP_STRING 0x0d
#define OP_METHOD 0x14
#define OP_DUAL_NAME 0x2e
#define OP_NOTIFY 0x86
#define OP_BYTE 0x0a
#define OP_WORD 0x0b
#define OP_DWORD 0x0c
#define OP_QWORD 0x0e
#define OP_SCOPE 0x10
#define OP_BUFFER 0x11
#define OP_PACKAGE 0x12
#define OP_EXT 0x5b
#define OP_EXT_DEVICE 0x82
#define PKG_RESERVE 4 /* PkgLength takes at most 4 bytes */

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > AML_MAX - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void le(struct aml *a, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		byte(a, (uint8_t)(v >> (8 * i)));
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v <= 1) {
		byte(a, v ? OP_ONE : OP_ZERO);
	} else if (v <= 0xff) {
		byte(a, OP_BYTE);
		le(a, v, 1);
	} else if (v <= 0xffff) {
		byte(a, OP_WORD);
		le(a, v, 2);
	} else if (v <= 0xffffffff) {
		byte(a, OP_DWORD);
		le(a, v, 4);
	} else {
		byte(a, OP_QWORD);
		le(a, v, 8);
	}
}

void aml_name_string(struct aml *a, const char *name)
{
	if (*name == '\\')
		byte(a, (uint8_t)*name++);
	if (strlen(name) == 9 && name[4] == '.') {
		byte(a, OP_DUAL_NAME);
		aml_bytes(a, name, 4);
		aml_bytes(a, name + 5, 4);
		return;
	}
	aml_bytes(a, name, 4);
}

void aml_name_str(struct aml *a, const char *name, const char *text)
{
	aml_name(a, name);
	byte(a, OP_STRING);
	aml_bytes(a, text, strlen(text) + 1);
}

void aml_notify(struct aml *a, const char *path, uint8_t value)
{
	byte(a, OP_NOTIFY);
	aml_name_string(a, path);
	aml_integer(a, value);
}

void aml_name(struct aml *a, const char *name)
{
	byte(a, OP_NAME);
	aml_name_string(a, name);
}

void aml_name_int(struct aml *a, const char *name, uint64_t v)
{
	aml_name(a, name);
	aml_integer(a, v);
}

static unsigned hex(char c)
{
	return (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
}

uint32_t aml_eisaid(const char *id)
{
	uint32_t v = (uint32_t)(id[0] - '@') << 26 | (uint32_t)(id[1] - '@') << 21 | (uint32_t)(id[2] - '@') << 16 |
		     hex(id[3]) << 12 | hex(id[4]) << 8 | hex(id[5]) << 4 | hex(id[6]);

	return __builtin_bswap32(v);
}

void aml_name_eisaid(struct aml *a, const char *name, const char *id)
{
	aml_name(a, name);
	byte(a, OP_DWORD);
	le(a, aml_eisaid(id), 4);
}

/* Leaves room for the PkgLength; aml_end() shrinks it to its real size. */
static size_t open_pkg(struct aml *a)
{
	size_t mark = a->len;

	le(a, 0, PKG_RESERVE);
	return mark;
}

void aml_end(struct aml *a, size_t mark)
{
	size_t body, total, n;
	uint8_t enc[PKG_RESERVE];

	if (a->overflow)
		return;
	body = a->len - mark - PKG_RESERVE;
	/* The length counts its own bytes. */
	if (body + 1 < 0x40) {
		n = 1;
		enc[0] = (uint8_t)(body + 1);
	} else {
		n = body + 2 < 0x1000 ? 2 : body + 3 < 0x100000 ? 3 : 4;
		total = body + n;
		enc[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
		for (size_t i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	memmove(a->buf + mark + n, a->buf + mark + PKG_RESERVE, body);
	memcpy(a->buf + mark, enc, n);
	a->len = mark + n + body;
}

/* An opcode, a PkgLength and a name: how Scope and Device begin. */
static size_t open_named(struct aml *a, const uint8_t *op, size_t nop, const char *name)
{
	size_t mark;

	aml_bytes(a, op, nop);
	mark = open_pkg(a);
	aml_name_string(a, name);
	return mark;
}

size_t aml_scope(struct aml *a, const char *name)
{
	static const uint8_t op[] = { OP_SCOPE };

	return open_named(a, op, sizeof(op), name);
}

size_t aml_device(struct aml *a, const char *name)
{
	static const uint8_t op[] = { OP_EXT, OP_EXT_DEVICE };

	return open_named(a, op, sizeof(op), name);
}

size_t aml_method(struct aml *a, const char *name, uint8_t nargs)
{
	static const uint8_t op[] = { OP_METHOD };
	size_t mark = open_named(a, op, sizeof(op), name);

	byte(a, nargs & 7); /* NotSerialized, SyncLevel 0 */
	return mark;
}

size_t aml_package(struct aml *a, uint8_t count)
{
	size_t mark;

	byte(a, OP_PACKAGE);
	mark = open_pkg(a);
	byte(a, count);
	return mark;
}

/* The buffer's size is an integer ahead of its bytes; it is patched at
 * the end, so reserve a DWordConst. */
size_t aml_name_resources(struct aml *a, const char *name)
{
	size_t mark;

	aml_name(a, name);
	byte(a, OP_BUFFER);
	mark = open_pkg(a);
	byte(a, OP_DWORD);
	le(a, 0, 4);
	return mark;
}

void aml_end_resources(struct aml *a, size_t mark)
{
	uint32_t size;

	byte(a, 0x79); /* end tag */
	byte(a, 0);    /* checksum 0: "treat as valid" */
	if (a->overflow)
		return;
	size = (uint32_t)(a->len - mark - PKG_RESERVE - 5);
	memcpy(a->buf + mark + PKG_RESERVE + 1, &size, 4);
	aml_end(a, mark);
}

/* Word/DWord/QWord address space descriptor, producer, fixed min and max. */
static void address_space(struct aml *a, uint8_t tag, unsigned width, uint8_t type, uint8_t type_flags,
			  uint64_t min, uint64_t max)
{
	byte(a, tag);
	le(a, 3 + 5 * width, 2); /* length of what follows the 3-byte header */
	byte(a, type);
	byte(a, 0x0c); /* MinFixed | MaxFixed, producer, positive decode */
	byte(a, type_flags);
	le(a, 0, width);       /* granularity */
	le(a, min, width);
	le(a, max, width);
	le(a, 0, width);       /* translation offset */
	le(a, max - min + 1, width);
}

void aml_res_bus_numbers(struct aml *a, uint16_t min, uint16_t max)
{
	address_space(a, 0x88, 2, 2, 0, min, max);
}

void aml_res_io_range(struct aml *a, uint16_t min, uint16_t max)
{
	address_space(a, 0x88, 2, 1, 3 /* entire ISA range */, min, max);
}

void aml_res_io_fixed(struct aml *a, uint16_t base, uint8_t len)
{
	/* I/O port descriptor: 16-bit decode, min = max = base, align 1. */
	const uint8_t d[] = { 0x47, 0x01, (uint8_t)base, (uint8_t)(base >> 8), (uint8_t)base, (uint8_t)(base >> 8), 1, len };

	aml_bytes(a, d, sizeof(d));
}

void aml_res_irq(struct aml *a, uint8_t irq)
{
	const uint16_t mask = (uint16_t)(1u << (irq & 15));
	const uint8_t d[] = { 0x22, (uint8_t)mask, (uint8_t)(mask >> 8) };

	aml_bytes(a, d, sizeof(d));
}

void aml_res_mem32(struct aml *a, uint32_t min, uint32_t max)
{
	address_space(a, 0x87, 4, 0, 1 /* read-write, non-cacheable */, min, max);
}

void aml_res_mem64(struct aml *a, uint64_t min, uint64_t max)
{
	address_space(a, 0x8a, 8, 0, 1, min, max);
}
