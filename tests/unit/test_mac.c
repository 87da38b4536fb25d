/* mac_parse / mac_derive: NIC addresses from the command line or the VM name. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "net/mac.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void test_parse_valid(void **state)
{
	static const struct {
		const char *s;
		uint8_t mac[6];
	} cases[] = {
		{ "52:54:00:12:34:56", { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 } },
		{ "52:54:00:AB:CD:EF", { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef } },
		{ "52:54:00:ab:cd:ef", { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef } },
		{ "0A:Bc:dE:F0:09:90", { 0x0a, 0xbc, 0xde, 0xf0, 0x09, 0x90 } },
		{ "00:00:00:00:00:00", { 0 } },
		{ "FE:FF:FF:FF:FF:FF", { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff } }, /* even first byte: unicast */
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		uint8_t mac[6];

		memset(mac, 0xcc, sizeof(mac));
		if (!mac_parse(cases[i].s, mac))
			fail_msg("mac_parse rejected '%s'", cases[i].s);
		if (memcmp(mac, cases[i].mac, 6))
			fail_msg("mac_parse('%s') = %02x:%02x:%02x:%02x:%02x:%02x", cases[i].s, mac[0], mac[1], mac[2],
				 mac[3], mac[4], mac[5]);
	}
}

static void test_parse_invalid(void **state)
{
	static const char *const cases[] = {
		"",
		"52:54:00:12:34",       /* five bytes */
		"52:54:00:12:34:",      /* five and a separator */
		"52:54:00:12:34:56:78", /* seven */
		"52:54:00:12:34:56:",   /* trailing separator */
		"52:54:0:12:34:56",     /* single-digit byte */
		"2:54:00:12:34:56",
		"52:54:00:12:34:5",
		"52:54:00:12:34:567",   /* three digits */
		"520:54:00:12:34:56",
		"+2:54:00:12:34:56",    /* signs */
		"-2:54:00:12:34:56",
		"52:+4:00:12:34:56",
		"52:54:00:12:34:-5",
		"52:54:00:12:34:56x",   /* trailing characters */
		"52:54:00:12:34:56 ",
		"52:54:00:12:34:56\n",
		"52-54-00-12-34-56",    /* other separators */
		"52.54.00.12.34.56",
		"525400123456",
		"52:54:00:12:34:5g",    /* not hex */
		"g2:54:00:12:34:56",
		"53:54:00:12:34:56",    /* odd first byte: multicast */
		"01:00:5e:00:00:01",
		"ff:ff:ff:ff:ff:ff",
		/* Not "exactly that form": sscanf-isms must not slip through. */
		" 52:54:00:12:34:56",
		"\t52:54:00:12:34:56",
		"52: 4:00:12:34:56",
		"52:54:00:12:34: 5",
		"52:0x:00:12:34:56",
		"52:54:00:12:34:0X",
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		uint8_t mac[6] = { 0 };

		if (mac_parse(cases[i], mac))
			fail_msg("mac_parse accepted '%s' as %02x:%02x:%02x:%02x:%02x:%02x", cases[i], mac[0], mac[1],
				 mac[2], mac[3], mac[4], mac[5]);
	}
}

static void test_derive_stable_and_prefixed(void **state)
{
	static const char *const names[] = { "", "vm", "web-1", "a-rather-long-virtual-machine-name-0123456789" };

	(void)state;
	for (size_t i = 0; i < N_ELEMS(names); i++) {
		for (unsigned nic = 0; nic < 4; nic++) {
			uint8_t a[6], b[6];

			memset(a, 0x11, sizeof(a));
			memset(b, 0x22, sizeof(b));
			mac_derive(names[i], nic, a);
			mac_derive(names[i], nic, b);
			if (memcmp(a, b, 6))
				fail_msg("mac_derive('%s', %u) is not stable", names[i], nic);
			if (a[0] != 0x52 || a[1] != 0x54 || a[2] != 0x00)
				fail_msg("mac_derive('%s', %u) prefix %02x:%02x:%02x", names[i], nic, a[0], a[1], a[2]);
		}
	}
}

/* The derived address must also be one mac_parse accepts (unicast). */
static void test_derive_round_trips(void **state)
{
	uint8_t mac[6], back[6];
	char s[18];

	(void)state;
	mac_derive("round-trip", 2, mac);
	snprintf(s, sizeof(s), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	assert_true(mac_parse(s, back));
	assert_memory_equal(mac, back, 6);
}

#define NAMES 50
#define NICS 4

static void test_derive_no_collisions(void **state)
{
	static uint8_t macs[NAMES * NICS][6];

	(void)state;
	for (unsigned n = 0; n < NAMES; n++) {
		char name[16];

		snprintf(name, sizeof(name), "vm%u", n);
		for (unsigned nic = 0; nic < NICS; nic++)
			mac_derive(name, nic, macs[n * NICS + nic]);
	}
	for (unsigned i = 0; i < NAMES * NICS; i++)
		for (unsigned j = i + 1; j < NAMES * NICS; j++)
			if (!memcmp(macs[i], macs[j], 6))
				fail_msg("vm%u nic %u and vm%u nic %u share a MAC", i / NICS, i % NICS, j / NICS,
					 j % NICS);
}

static void test_derive_wide_nic_index(void **state)
{
	uint8_t a[6], b[6];

	(void)state;
	/* Index 256 must not alias index 0 (the index is hashed whole). */
	mac_derive("vm", 0, a);
	mac_derive("vm", 256, b);
	assert_memory_not_equal(a, b, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_derive_stable_and_prefixed),
		cmocka_unit_test(test_derive_round_trips),
		cmocka_unit_test(test_derive_no_collisions),
		cmocka_unit_test(test_derive_wide_nic_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
