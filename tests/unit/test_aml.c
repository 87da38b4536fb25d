/* The AML encoder (src/arch/x86/aml.c): EISA ids, integer opcodes, PkgLength
 * encodings, resource templates and the 4 KiB buffer limit. Expected bytes
 * come from the ACPI 6.5 spec (20.2 AML grammar, 6.4 resource data types). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "helpers.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define GUARD 0x5a

/* The encoder followed by guard bytes that must never change. */
struct env {
	struct aml a;
	uint8_t guard[256];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	memset(e->guard, GUARD, sizeof(e->guard));
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	/* Every test ends with the guard intact and len within the buffer. */
	assert_true(test_all_bytes(e->guard, sizeof(e->guard), GUARD));
	assert_true(e->a.len <= AML_MAX);
	free(e);
	return 0;
}

static void dump_mismatch(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
	size_t n = got_len < want_len ? got_len : want_len, i;

	for (i = 0; i < n && got[i] == want[i]; i++)
		;
	fail_msg("AML differs at byte %zu (got %zu bytes, want %zu): got 0x%02x, want 0x%02x", i, got_len,
		 want_len, i < got_len ? got[i] : 0, i < want_len ? want[i] : 0);
}

static void expect_bytes(const struct aml *a, const uint8_t *want, size_t n)
{
	assert_false(a->overflow);
	if (a->len != n || memcmp(a->buf, want, n))
		dump_mismatch(a->buf, a->len, want, n);
}

/* PkgLength as the spec defines it: bits 7-6 of the lead byte count the
 * bytes that follow; with none, bits 5-0 are the length; otherwise bits
 * 3-0 are its low nibble (bits 5-4 zero) and each following byte adds 8
 * more bits. The length counts the PkgLength bytes themselves. */
static size_t pkg_decode(const uint8_t *p, size_t *nbytes)
{
	unsigned follow = p[0] >> 6;
	size_t len;

	*nbytes = 1 + follow;
	if (!follow)
		return p[0] & 0x3f;
	if (p[0] & 0x30)
		fail_msg("PkgLength lead byte 0x%02x has bits 5-4 set", p[0]);
	len = p[0] & 0x0f;
	for (unsigned i = 1; i <= follow; i++)
		len |= (size_t)p[i] << (4 + 8 * (i - 1));
	return len;
}

/* ---- EISA ids ------------------------------------------------------------ */

static void test_eisaid(void **state)
{
	static const struct {
		const char *id;
		uint8_t bytes[4];
	} cases[] = {
		{ "PNP0A08", { 0x41, 0xd0, 0x0a, 0x08 } }, /* PCI Express root */
		{ "PNP0A03", { 0x41, 0xd0, 0x0a, 0x03 } }, /* PCI root */
		{ "PNP0501", { 0x41, 0xd0, 0x05, 0x01 } }, /* 16550A */
		{ "PNP0C0F", { 0x41, 0xd0, 0x0c, 0x0f } }, /* lower-case hex is accepted too */
		{ "PNP0c0f", { 0x41, 0xd0, 0x0c, 0x0f } },
		{ "ABC1234", { 0x04, 0x43, 0x12, 0x34 } }, /* A=1 B=2 C=3: 0 00001 00010 00011 */
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		uint32_t v = aml_eisaid(cases[i].id);
		uint8_t mem[4];

		memcpy(mem, &v, 4);
		if (memcmp(mem, cases[i].bytes, 4))
			fail_msg("aml_eisaid(\"%s\") stored as %02x %02x %02x %02x", cases[i].id, mem[0], mem[1],
				 mem[2], mem[3]);
	}
	assert_int_equal(aml_eisaid("PNP0A08"), 0x080ad041);
}

static void test_name_eisaid(void **state)
{
	struct env *e = *state;
	static const uint8_t want[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08 };

	aml_name_eisaid(&e->a, "_HID", "PNP0A08");
	expect_bytes(&e->a, want, sizeof(want));
}

/* ---- integers ------------------------------------------------------------ */

static void test_integer_prefixes(void **state)
{
	static const struct {
		uint64_t v;
		uint8_t bytes[9];
		size_t n;
	} cases[] = {
		{ 0, { 0x00 }, 1 },
		{ 1, { 0x01 }, 1 },
		{ 2, { 0x0a, 0x02 }, 2 },
		{ 0xff, { 0x0a, 0xff }, 2 },
		{ 0x100, { 0x0b, 0x00, 0x01 }, 3 },
		{ 0xffff, { 0x0b, 0xff, 0xff }, 3 },
		{ 0x10000, { 0x0c, 0x00, 0x00, 0x01, 0x00 }, 5 },
		{ 0xffffffff, { 0x0c, 0xff, 0xff, 0xff, 0xff }, 5 },
		{ 0x100000000, { 0x0e, 0, 0, 0, 0, 1, 0, 0, 0 }, 9 },
		{ 0x0123456789abcdef, { 0x0e, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01 }, 9 },
		{ UINT64_MAX, { 0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 9 },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct aml *a = calloc(1, sizeof(*a));

		assert_non_null(a);
		aml_integer(a, cases[i].v);
		if (a->len != cases[i].n || memcmp(a->buf, cases[i].bytes, cases[i].n))
			fail_msg("aml_integer(0x%llx): %zu bytes, prefix 0x%02x; want %zu bytes, prefix 0x%02x",
				 (unsigned long long)cases[i].v, a->len, a->buf[0], cases[i].n, cases[i].bytes[0]);
		free(a);
	}
}

static void test_name_int(void **state)
{
	struct env *e = *state;
	static const uint8_t want[] = { 0x08, '_', 'U', 'I', 'D', 0x00, 0x08, '_', 'A', 'D', 'R', 0x0b, 0x34, 0x12 };

	aml_name_int(&e->a, "_UID", 0);
	aml_name_int(&e->a, "_ADR", 0x1234);
	expect_bytes(&e->a, want, sizeof(want));
}

/* ---- PkgLength ----------------------------------------------------------- */

/* Package whose body (everything after the PkgLength: NumElements and the
 * elements) is `body` bytes, the elements a recognisable pattern. */
static void package_of(struct aml *a, size_t body)
{
	size_t mark = aml_package(a, 7);

	for (size_t i = 0; i + 1 < body; i++) {
		uint8_t b = (uint8_t)(i * 7 + 3);

		aml_bytes(a, &b, 1);
	}
	aml_end(a, mark);
}

static void check_package(const struct aml *a, size_t body, size_t want_nbytes)
{
	size_t nbytes, len;

	assert_false(a->overflow);
	assert_int_equal(a->buf[0], 0x12);
	len = pkg_decode(&a->buf[1], &nbytes);
	if (nbytes != want_nbytes)
		fail_msg("body %zu: PkgLength takes %zu bytes, want %zu", body, nbytes, want_nbytes);
	/* Opcode, PkgLength, body: nothing more, nothing less. */
	assert_int_equal(a->len, 1 + nbytes + body);
	if (len != nbytes + body)
		fail_msg("body %zu: PkgLength says %zu, want %zu", body, len, nbytes + body);
	assert_int_equal(a->buf[1 + nbytes], 7); /* NumElements survived the move */
	for (size_t i = 0; i + 1 < body; i++)
		if (a->buf[2 + nbytes + i] != (uint8_t)(i * 7 + 3))
			fail_msg("body %zu: element byte %zu moved wrongly", body, i);
}

static void test_pkg_length_encodings(void **state)
{
	static const struct {
		size_t body, nbytes;
	} cases[] = {
		{ 1, 1 },
		{ 0x3e, 1 },   /* length 0x3f: the largest one-byte encoding */
		{ 0x3f, 2 },   /* length 0x41: two bytes */
		{ 0x40, 2 },
		{ 0x100, 2 },
		{ 0x800, 2 },
		{ AML_MAX - 1 - 4, 2 }, /* largest body: opcode + 4 reserved bytes */
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct aml *a = calloc(1, sizeof(*a));

		assert_non_null(a);
		package_of(a, cases[i].body);
		check_package(a, cases[i].body, cases[i].nbytes);
		free(a);
	}
}

/* A body of ~5000 bytes would need a three-byte PkgLength, but cannot fit
 * the 4 KiB buffer: the encoder must flag it and stay inside. */
static void test_pkg_length_too_big_overflows(void **state)
{
	struct env *e = *state;
	uint8_t before[AML_MAX];

	package_of(&e->a, 5000);
	assert_true(e->a.overflow);
	assert_true(e->a.len <= AML_MAX);
	/* aml_end on an overflowed buffer leaves it alone. */
	memcpy(before, e->a.buf, AML_MAX);
	aml_end(&e->a, 1);
	assert_memory_equal(before, e->a.buf, AML_MAX);
}

/* Nested Scope/Device: each PkgLength covers exactly its own object, also
 * when the inner one shrinks from the 4 reserved bytes to 1 or 2. */
static void test_nested_scope_device(void **state)
{
	struct env *e = *state;
	static const uint8_t want[] = {
		0x10, 0x1d, '\\', '_', 'S', 'B', '_',            /* Scope (\_SB) */
		0x5b, 0x82, 0x15, 'P', 'C', 'I', '0',            /* Device (PCI0) */
		0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08, /* Name (_HID, EisaId ("PNP0A08")) */
		0x08, '_', 'U', 'I', 'D', 0x00,                  /* Name (_UID, Zero) */
	};
	size_t scope = aml_scope(&e->a, "\\_SB_"), dev = aml_device(&e->a, "PCI0");

	aml_name_eisaid(&e->a, "_HID", "PNP0A08");
	aml_name_int(&e->a, "_UID", 0);
	aml_end(&e->a, dev);
	aml_end(&e->a, scope);
	expect_bytes(&e->a, want, sizeof(want));
}

static void test_nested_two_byte_inner(void **state)
{
	struct env *e = *state;
	size_t scope = aml_scope(&e->a, "\\_SB_"), dev = aml_device(&e->a, "DEV0"), n, len, inner, dn, dlen;

	for (unsigned i = 0; i < 30; i++)
		aml_name_int(&e->a, "XXXX", 0x10000 + i); /* 10 bytes each */
	aml_end(&e->a, dev);
	aml_name_int(&e->a, "LAST", 2);
	aml_end(&e->a, scope);
	assert_false(e->a.overflow);

	assert_int_equal(e->a.buf[0], 0x10);
	len = pkg_decode(&e->a.buf[1], &n);
	assert_int_equal(n, 2);
	assert_int_equal(len, e->a.len - 1);
	assert_memory_equal(&e->a.buf[1 + n], "\\_SB_", 5);
	inner = 1 + n + 5;
	assert_int_equal(e->a.buf[inner], 0x5b);
	assert_int_equal(e->a.buf[inner + 1], 0x82);
	dlen = pkg_decode(&e->a.buf[inner + 2], &dn);
	assert_int_equal(dn, 2);
	assert_int_equal(dlen, 4 + 30 * 10 + dn);
	/* The scope's last object follows the device directly. */
	assert_memory_equal(&e->a.buf[inner + 2 + dlen], "\x08LAST\x0a\x02", 7);
	assert_int_equal(inner + 2 + dlen + 7, e->a.len);
}

/* ---- resource templates -------------------------------------------------- */

/* Walks resource descriptors from p up to and including the end tag;
 * returns their total size, or fails the test on a malformed list. */
static size_t walk_descriptors(const uint8_t *p, size_t avail, unsigned *count)
{
	size_t off = 0;

	*count = 0;
	while (off < avail) {
		uint8_t tag = p[off];
		size_t n = tag & 0x80 ? 3 + (size_t)test_get16(&p[off + 1]) : 1 + (size_t)(tag & 7);

		off += n;
		++*count;
		if (tag == 0x79) {
			assert_int_equal(n, 2);
			return off;
		}
	}
	fail_msg("no end tag in %zu bytes", avail);
	return 0;
}

static void test_resource_template(void **state)
{
	struct env *e = *state;
	size_t mark, n, pkg_len, bufsize, total, data, off;
	unsigned count;

	aml_name_int(&e->a, "PRE_", 5);
	mark = aml_name_resources(&e->a, "_CRS");
	aml_res_bus_numbers(&e->a, 0, 0xff);
	aml_res_io_fixed(&e->a, 0xcf8, 8);
	aml_res_io_range(&e->a, 0, 0xcf7);
	aml_res_mem32(&e->a, 0xc0000000, 0xcfffffff);
	aml_res_mem64(&e->a, 0x8000000000ULL, 0x8fffffffffULL);
	aml_end_resources(&e->a, mark);
	aml_name_int(&e->a, "POST", 6);
	assert_false(e->a.overflow);

	/* PRE_ then Name (_CRS, Buffer (PkgLength) { DWordConst size, descs }) */
	assert_memory_equal(e->a.buf, "\x08PRE_\x0a\x05", 7);
	off = 7;
	assert_memory_equal(&e->a.buf[off], "\x08_CRS\x11", 6);
	pkg_len = pkg_decode(&e->a.buf[off + 6], &n);
	assert_int_equal(e->a.buf[off + 6 + n], 0x0c);
	bufsize = test_get32(&e->a.buf[off + 6 + n + 1]);
	data = off + 6 + n + 5;
	total = walk_descriptors(&e->a.buf[data], e->a.len - data, &count);
	assert_int_equal(count, 6);
	/* 16 (WordBusNumber) + 8 (IO) + 16 (WordIO) + 26 (DWordMemory) +
	 * 46 (QWordMemory) + 2 (end tag). */
	assert_int_equal(total, 16 + 8 + 16 + 26 + 46 + 2);
	assert_int_equal(bufsize, total);
	assert_int_equal(pkg_len, n + 5 + total);
	assert_int_equal(e->a.buf[data + total - 2], 0x79);
	assert_int_equal(e->a.buf[data + total - 1], 0x00);
	assert_memory_equal(&e->a.buf[data + total], "\x08POST\x0a\x06", 7);
	assert_int_equal(e->a.len, data + total + 7);
}

static void test_resource_descriptor_fields(void **state)
{
	struct env *e = *state;
	size_t mark = aml_name_resources(&e->a, "_CRS"), n, d;
	const uint8_t *p;

	aml_res_io_fixed(&e->a, 0x1234, 0x10);
	aml_res_bus_numbers(&e->a, 0, 0x7f);
	aml_res_mem32(&e->a, 0xc0000000, 0xcfffffff);
	aml_res_mem64(&e->a, 0x8000000000ULL, 0x8fffffffffULL);
	aml_end_resources(&e->a, mark);
	assert_false(e->a.overflow);
	pkg_decode(&e->a.buf[6], &n);
	d = 6 + n + 5;
	p = &e->a.buf[d];

	/* IO (Decode16, 0x1234, 0x1234, 1, 0x10) */
	assert_memory_equal(p, "\x47\x01\x34\x12\x34\x12\x01\x10", 8);
	p += 8;
	/* WordBusNumber: length 13, type 2, MinFixed|MaxFixed, 0..0x7f, length 0x80 */
	assert_int_equal(p[0], 0x88);
	assert_int_equal(test_get16(p + 1), 13);
	assert_int_equal(p[3], 2);
	assert_int_equal(p[4], 0x0c);
	assert_int_equal(test_get16(p + 8), 0);
	assert_int_equal(test_get16(p + 10), 0x7f);
	assert_int_equal(test_get16(p + 14), 0x80);
	p += 16;
	/* DWordMemory: length 23, min, max, translation 0, length */
	assert_int_equal(p[0], 0x87);
	assert_int_equal(test_get16(p + 1), 23);
	assert_int_equal(p[3], 0);
	assert_int_equal(test_get32(p + 6), 0);
	assert_int_equal(test_get32(p + 10), 0xc0000000);
	assert_int_equal(test_get32(p + 14), 0xcfffffff);
	assert_int_equal(test_get32(p + 18), 0);
	assert_int_equal(test_get32(p + 22), 0x10000000);
	p += 26;
	/* QWordMemory: length 43 */
	assert_int_equal(p[0], 0x8a);
	assert_int_equal(test_get16(p + 1), 43);
	assert_int_equal(test_get64(p + 14), 0x8000000000ULL);
	assert_int_equal(test_get64(p + 22), 0x8fffffffffULL);
	assert_int_equal(test_get64(p + 38), 0x1000000000ULL);
	p += 46;
	assert_int_equal(p[0], 0x79);
}

static void test_empty_resource_template(void **state)
{
	struct env *e = *state;
	static const uint8_t want[] = { 0x08, '_', 'C', 'R', 'S', 0x11, 0x08, 0x0c, 0x02, 0x00, 0x00, 0x00, 0x79, 0x00 };
	size_t mark = aml_name_resources(&e->a, "_CRS");

	aml_end_resources(&e->a, mark);
	expect_bytes(&e->a, want, sizeof(want));
}

/* ---- overflow ------------------------------------------------------------ */

static void fill(struct aml *a, size_t n)
{
	static uint8_t junk[AML_MAX];

	memset(junk, 0x77, sizeof(junk));
	aml_bytes(a, junk, n);
	assert_false(a->overflow);
	assert_int_equal(a->len, n);
}

static void test_overflow_exact_fit(void **state)
{
	struct env *e = *state;

	fill(&e->a, AML_MAX - 1);
	aml_integer(&e->a, 1); /* one byte: fits exactly */
	assert_false(e->a.overflow);
	assert_int_equal(e->a.len, AML_MAX);
	assert_int_equal(e->a.buf[AML_MAX - 1], 0x01);
	aml_integer(&e->a, 0);
	assert_true(e->a.overflow);
	assert_int_equal(e->a.len, AML_MAX);
}

static void test_overflow_partial_write(void **state)
{
	struct env *e = *state;

	fill(&e->a, AML_MAX - 2);
	aml_integer(&e->a, 0x12345678); /* five bytes into two */
	assert_true(e->a.overflow);
	assert_true(e->a.len <= AML_MAX);
	assert_true(test_all_bytes(e->a.buf, AML_MAX - 2, 0x77));
}

static void test_overflow_is_sticky(void **state)
{
	struct env *e = *state;
	size_t len;

	fill(&e->a, 10);
	aml_bytes(&e->a, e->a.buf, AML_MAX); /* more than is left: nothing copied */
	assert_true(e->a.overflow);
	assert_int_equal(e->a.len, 10);
	aml_integer(&e->a, 2); /* would fit, but the output is already broken */
	len = e->a.len;
	assert_int_equal(len, 10);
	aml_name_int(&e->a, "ABCD", 0x100000000ULL);
	assert_int_equal(e->a.len, len);
}

static void test_overflow_in_resources(void **state)
{
	struct env *e = *state;
	size_t mark;
	uint8_t before[AML_MAX];

	fill(&e->a, AML_MAX - 40);
	mark = aml_name_resources(&e->a, "_CRS");
	assert_false(e->a.overflow);
	aml_res_mem64(&e->a, 0, 0xfff); /* 46 bytes: does not fit */
	assert_true(e->a.overflow);
	memcpy(before, e->a.buf, AML_MAX);
	aml_end_resources(&e->a, mark);
	/* Neither the size patch nor the PkgLength move happened. */
	assert_true(e->a.overflow);
	assert_memory_equal(before, e->a.buf, AML_MAX);
	assert_true(e->a.len <= AML_MAX);
}

static void test_overflow_in_device(void **state)
{
	struct env *e = *state;
	size_t scope = aml_scope(&e->a, "\\_SB_");

	for (unsigned i = 0; i < 1000 && !e->a.overflow; i++)
		aml_name_int(&e->a, "XXXX", 0xffffffffffULL);
	assert_true(e->a.overflow);
	aml_end(&e->a, scope);
	assert_true(e->a.len <= AML_MAX);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eisaid),
		T(test_name_eisaid),
		cmocka_unit_test(test_integer_prefixes),
		T(test_name_int),
		cmocka_unit_test(test_pkg_length_encodings),
		T(test_pkg_length_too_big_overflows),
		T(test_nested_scope_device),
		T(test_nested_two_byte_inner),
		T(test_resource_template),
		T(test_resource_descriptor_fields),
		T(test_empty_resource_template),
		T(test_overflow_exact_fit),
		T(test_overflow_partial_write),
		T(test_overflow_is_sticky),
		T(test_overflow_in_resources),
		T(test_overflow_in_device),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
