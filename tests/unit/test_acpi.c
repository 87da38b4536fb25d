/* ACPI tables as a guest OS would read them: offsets below are the ACPI 6.x
 * specification's, not the builder's structs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "helpers.h"
#include "hw/pm.h"
#include "util/err.h"

#define HDR_LEN 36   /* common System Description Table header */
#define FADT_LEN 276 /* FADT revision 6 */

static int map_1g(void **state)
{
	struct guest_mem *m = calloc(1, sizeof(*m));

	if (!m)
		return -1;
	test_mem_map(m, GiB);
	*state = m;
	return 0;
}

static int unmap(void **state)
{
	test_mem_unmap(*state);
	free(*state);
	return 0;
}

/* Host pointer to a table of `len` bytes at gpa, which must lie in the
 * reserved BIOS area where the builder puts everything. */
static const uint8_t *in_bios_area(struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	assert_true(gpa >= LAYOUT_ACPI);
	assert_true(len <= LAYOUT_ACPI_END - gpa);
	return guest_mem_ptr(m, gpa, len);
}

/* A System Description Table at gpa with signature sig, checked as a whole. */
static const uint8_t *table(struct guest_mem *m, uint64_t gpa, const char *sig)
{
	const uint8_t *t = in_bios_area(m, gpa, HDR_LEN);
	uint32_t len = test_get32(t + 4);

	assert_memory_equal(t, sig, 4);
	assert_true(len >= HDR_LEN);
	t = in_bios_area(m, gpa, len);
	if (acpi_checksum(t, len))
		fail_msg("%.4s at %#llx: checksum off by %u", sig, (unsigned long long)gpa, acpi_checksum(t, len));
	return t;
}

static const uint8_t *rsdp_at(struct guest_mem *m, uint64_t gpa)
{
	const uint8_t *r = in_bios_area(m, gpa, 36);

	assert_int_equal(gpa % 16, 0);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(r[15], 2);                   /* revision: ACPI 2.0+ */
	assert_int_equal(acpi_checksum(r, 20), 0);    /* ACPI 1.0 part */
	assert_int_equal(test_get32(r + 20), 36);     /* length */
	assert_int_equal(acpi_checksum(r, 36), 0);    /* extended checksum */
	return r;
}

/* Finds the table with signature sig through the XSDT; fails if absent
 * or listed twice. */
static const uint8_t *xsdt_find(struct guest_mem *m, const uint8_t *xsdt, const char *sig)
{
	uint32_t n = (test_get32(xsdt + 4) - HDR_LEN) / 8;
	const uint8_t *found = NULL;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t gpa = test_get64(xsdt + HDR_LEN + 8 * i);
		const uint8_t *t = in_bios_area(m, gpa, HDR_LEN);

		if (!memcmp(t, sig, 4)) {
			assert_null(found);
			found = table(m, gpa, sig);
		}
	}
	if (!found)
		fail_msg("no %s in the XSDT", sig);
	return found;
}

static const uint8_t *build(struct guest_mem *m, unsigned ncpus)
{
	uint64_t rsdp = 0;

	assert_int_equal(acpi_build(m, ncpus, &rsdp), 0);
	return rsdp_at(m, rsdp);
}

static void check_tables(struct guest_mem *m, unsigned ncpus)
{
	const uint8_t *rsdp = build(m, ncpus);
	const uint8_t *xsdt = table(m, test_get64(rsdp + 24), "XSDT");
	uint32_t nent = (test_get32(xsdt + 4) - HDR_LEN) / 8;

	assert_int_equal((test_get32(xsdt + 4) - HDR_LEN) % 8, 0);
	assert_true(nent >= 2);
	/* Every table the XSDT lists is whole, in place and checksummed. */
	for (uint32_t i = 0; i < nent; i++) {
		const uint8_t *t = in_bios_area(m, test_get64(xsdt + HDR_LEN + 8 * i), HDR_LEN);
		char sig[5] = { 0 };

		memcpy(sig, t, 4);
		table(m, test_get64(xsdt + HDR_LEN + 8 * i), sig);
	}
	xsdt_find(m, xsdt, "FACP");
	xsdt_find(m, xsdt, "APIC");
}

static void check_fadt(struct guest_mem *m)
{
	const uint8_t *rsdp = build(m, 1);
	const uint8_t *xsdt = table(m, test_get64(rsdp + 24), "XSDT");
	const uint8_t *fadt = xsdt_find(m, xsdt, "FACP");
	const uint8_t *dsdt, *facs;
	uint32_t dsdt_len;
	static const uint8_t s5[] = { '_', 'S', '5', '_' };

	assert_int_equal(test_get32(fadt + 4), FADT_LEN);
	assert_int_equal(fadt[8], 6); /* revision */
	assert_int_equal(test_get16(fadt + 46), PM_SCI_IRQ);
	assert_int_equal(test_get32(fadt + 56), PM_PORT_PM1_EVT);  /* PM1a_EVT_BLK */
	assert_int_equal(test_get32(fadt + 64), PM_PORT_PM1_CNT);  /* PM1a_CNT_BLK */
	assert_int_equal(fadt[88], PM_PM1_EVT_LEN);
	assert_int_equal(fadt[89], PM_PM1_CNT_LEN);
	/* RESET_REG: system I/O, 8 bits at 0xcf9; RESET_VALUE 6; flag RESET_REG_SUP. */
	assert_int_equal(fadt[116], 1);
	assert_int_equal(fadt[117], 8);
	assert_int_equal(test_get64(fadt + 120), PM_PORT_RESET);
	assert_int_equal(fadt[128], PM_RESET_VALUE);
	assert_true(test_get32(fadt + 112) & (1u << 10));
	/* X_PM1a_CNT_BLK agrees with the 32-bit block. */
	assert_int_equal(fadt[172], 1);
	assert_int_equal(test_get64(fadt + 176), PM_PORT_PM1_CNT);

	/* X_FIRMWARE_CTRL: a 64-byte aligned FACS (which has no checksum). */
	facs = in_bios_area(m, test_get64(fadt + 132), 64);
	assert_int_equal(test_get64(fadt + 132) % 64, 0);
	assert_memory_equal(facs, "FACS", 4);
	assert_true(test_get32(facs + 4) >= 64);

	/* X_DSDT: a DSDT whose AML names \_S5_ with the sleep type the PM block acts on. */
	dsdt = table(m, test_get64(fadt + 140), "DSDT");
	dsdt_len = test_get32(dsdt + 4);
	assert_true(dsdt_len > HDR_LEN);
	{
		const uint8_t *name = memmem(dsdt + HDR_LEN, dsdt_len - HDR_LEN, s5, sizeof(s5));

		assert_non_null(name);
		/* NameOp '_S5_' PackageOp PkgLength NumElements BytePrefix SLP_TYPa */
		assert_true(name + 9 <= dsdt + dsdt_len);
		assert_int_equal(name[-1], 0x08);
		assert_int_equal(name[4], 0x12);
		assert_int_equal(name[7], 0x0a);
		assert_int_equal(name[8], PM_S5_TYPE);
	}
}

static void check_madt(struct guest_mem *m, unsigned ncpus)
{
	const uint8_t *rsdp = build(m, ncpus);
	const uint8_t *xsdt = table(m, test_get64(rsdp + 24), "XSDT");
	const uint8_t *madt = xsdt_find(m, xsdt, "APIC");
	uint32_t len = test_get32(madt + 4), off;
	unsigned ncpu = 0, nioapic = 0;

	assert_int_equal(test_get32(madt + HDR_LEN), LAYOUT_LAPIC);
	for (off = HDR_LEN + 8; off + 2 <= len; off += madt[off + 1]) {
		const uint8_t *e = madt + off;

		assert_true(e[1] >= 2);
		assert_true(off + e[1] <= len);
		switch (e[0]) {
		case 0: /* Processor Local APIC */
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], ncpu); /* ACPI processor UID */
			assert_int_equal(e[3], ncpu); /* APIC ID */
			assert_int_equal(test_get32(e + 4) & 1, 1);
			ncpu++;
			break;
		case 1: /* I/O APIC */
			assert_int_equal(e[1], 12);
			assert_int_equal(test_get32(e + 4), LAYOUT_IOAPIC);
			assert_int_equal(test_get32(e + 8), 0); /* GSI base */
			nioapic++;
			break;
		default:
			break;
		}
	}
	assert_int_equal(off, len); /* entries exactly fill the table */
	assert_int_equal(ncpu, ncpus);
	assert_int_equal(nioapic, 1);
}

static const unsigned cpu_counts[] = { 1, 2, 8, 64 };

static void test_tables_for_cpu_counts(void **state)
{
	for (size_t i = 0; i < sizeof(cpu_counts) / sizeof(cpu_counts[0]); i++)
		check_tables(*state, cpu_counts[i]);
}

static void test_madt_for_cpu_counts(void **state)
{
	for (size_t i = 0; i < sizeof(cpu_counts) / sizeof(cpu_counts[0]); i++)
		check_madt(*state, cpu_counts[i]);
}

static void test_fadt_dsdt_facs(void **state)
{
	check_fadt(*state);
}

/* The whole DSDT as ACPICA, the reference AML parser, reads it (iasl -d
 * fails on AML it cannot parse): every device is there with what the
 * guest's drivers take from it. */
static void test_dsdt_disassembles(void **state)
{
	struct guest_mem *m = *state;
	const uint8_t *rsdp = build(m, 2);
	const uint8_t *fadt = xsdt_find(m, table(m, test_get64(rsdp + 24), "XSDT"), "FACP");
	const uint8_t *dsdt = table(m, test_get64(fadt + 140), "DSDT");
	char dir[] = "/tmp/cellvm-dsdt-XXXXXX", cmd[256], path[64], *text;
	static const char *const want[] = {
		"Device (PCI0)", "EisaId (\"PNP0A08\")", "Device (COM1)", "EisaId (\"PNP0501\")",
		"IO (Decode16,", "0x03F8,", "IRQNoFlags ()", "{4}", "Device (VGEN)", "Method (_E00, 0",
	};
	FILE *f;
	long len;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dsdt.aml", dir);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(dsdt, 1, test_get32(dsdt + 4), f), test_get32(dsdt + 4));
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.aml >iasl.log 2>&1", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	assert_non_null(f = fopen(path, "r"));
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	assert_non_null(text = calloc(1, (size_t)len + 1));
	assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(text, want[i]))
			fail_msg("the disassembled DSDT has no '%s':\n%s", want[i], text);
	free(text);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_nothing_outside_bios_area(void **state)
{
	struct guest_mem *m = *state;
	uint64_t rsdp;

	memset(m->host, 0x5a, 2 * MiB);
	assert_int_equal(acpi_build(m, 64, &rsdp), 0);
	assert_true(test_all_bytes(m->host, LAYOUT_ACPI, 0x5a));
	assert_true(test_all_bytes(m->host + LAYOUT_ACPI_END, MiB, 0x5a));
}

static void test_too_many_cpus_do_not_fit(void **state)
{
	uint64_t rsdp = 0xdead;

	/* 20000 local APIC entries need 160 KiB; the area has 128 KiB. */
	assert_int_equal(acpi_build(*state, 20000, &rsdp), CV_EFAIL);
	assert_int_equal(rsdp, 0xdead);
}

static void test_no_ram_for_tables(void **state)
{
	struct guest_mem m;
	uint64_t rsdp = 0xdead;

	(void)state;
	test_mem_map(&m, LAYOUT_ACPI + 0x100); /* room for the first tables only */
	assert_int_equal(acpi_build(&m, 1, &rsdp), CV_EFAIL);
	assert_int_equal(rsdp, 0xdead);
	test_mem_unmap(&m);
}

static void test_checksum(void **state)
{
	static const uint8_t bytes[] = { 0x01, 0x02, 0xfd };
	static const uint8_t wraps[] = { 0xff, 0xff, 0x05 };

	(void)state;
	assert_int_equal(acpi_checksum(bytes, 3), 0);
	assert_int_equal(acpi_checksum(bytes, 2), 3);
	assert_int_equal(acpi_checksum(wraps, 3), 3);
	assert_int_equal(acpi_checksum(bytes, 0), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, map_1g, unmap)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_tables_for_cpu_counts),
		T(test_madt_for_cpu_counts),
		T(test_fadt_dsdt_facs),
		T(test_dsdt_disassembles),
		T(test_nothing_outside_bios_area),
		T(test_too_many_cpus_do_not_fit),
		cmocka_unit_test(test_no_ram_for_tables),
		cmocka_unit_test(test_checksum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
