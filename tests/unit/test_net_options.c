/* --net MODE[,options] and the rate-limit options of --disk. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "net/hostonly.h"
#include "net/netopt.h"
#include "util/err.h"
#include "vmm/options.h"

static struct net_config n;
static char err[256];

static int parse(const char *v)
{
	err[0] = 0;
	return netopt_parse(v, &n, err, sizeof(err));
}

static void test_modes(void **state)
{
	(void)state;
	assert_int_equal(parse("nat"), 0);
	assert_int_equal(n.mode, NET_NAT);
	assert_int_equal(parse("tap=tap0"), 0);
	assert_int_equal(n.mode, NET_TAP);
	assert_string_equal(n.tap, "tap0");
	assert_int_equal(parse("bridge=br0,tap=vm1"), 0);
	assert_int_equal(n.mode, NET_BRIDGE);
	assert_string_equal(n.name, "br0");
	assert_string_equal(n.tap, "vm1");
	assert_int_equal(parse("hostonly=lab-1"), 0);
	assert_int_equal(n.mode, NET_HOSTONLY);
	assert_string_equal(n.name, "lab-1");
	assert_int_equal(n.net_prefix, 0);
	assert_int_equal(parse("hostonly=lab,net=192.168.50.0/24"), 0);
	assert_int_equal(n.net_addr, 0xc0a83200);
	assert_int_equal(n.net_prefix, 24);
	assert_int_equal(parse("switch=/run/user/1000/sw.sock,mac=52:54:00:00:00:09"), 0);
	assert_int_equal(n.mode, NET_SWITCH);
	assert_string_equal(n.path, "/run/user/1000/sw.sock");
	assert_true(n.mac_set);
	assert_int_equal(n.mac[5], 9);
}

static void test_rates(void **state)
{
	(void)state;
	assert_int_equal(parse("nat,rx_rate=10M,tx_rate=512K,tx_burst=64K"), 0);
	assert_int_equal(n.rx.bps, 10 << 20);
	assert_int_equal(n.rx.bps_burst, 0);
	assert_int_equal(n.tx.bps, 512 << 10);
	assert_int_equal(n.tx.bps_burst, 64 << 10);
	assert_int_equal(parse("nat,rx_rate=0"), CV_EINPUT);
	assert_non_null(strstr(err, "bad rx_rate '0'"));
	assert_int_equal(parse("nat,tx_rate=fast"), CV_EINPUT);
}

static void test_hostfwd(void **state)
{
	struct net_hostfwd f;

	(void)state;
	assert_int_equal(parse("nat,hostfwd=tcp::8080-:80,hostfwd=udp:0.0.0.0:5353-10.0.2.15:53,restrict=on"), 0);
	assert_int_equal(n.nfwd, 2);
	assert_false(n.fwd[0].udp);
	assert_int_equal(n.fwd[0].host_addr, htonl(INADDR_LOOPBACK)); /* loopback unless asked */
	assert_int_equal(n.fwd[0].host_port, 8080);
	assert_int_equal(n.fwd[0].guest_addr, 0);
	assert_int_equal(n.fwd[0].guest_port, 80);
	assert_true(n.fwd[1].udp);
	assert_int_equal(n.fwd[1].host_addr, 0);
	assert_int_equal(n.fwd[1].guest_addr, htonl(0x0a00020f));
	assert_true(n.restricted);
	static const char *const bad[] = {
		"tcp:8080-:80",  "sctp::1-:2",      "tcp::0-:80",     "tcp::65536-:80", "tcp::80-:",
		"tcp::80:81",    "tcp:1.2.3:80-:8", "tcp::+80-:80",   "tcp::80-:80x",   "tcp:1.2.3.4.5:1-:2",
		"tcp::-1-:80",   "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(netopt_parse_hostfwd(bad[i], &f));
	assert_int_equal(parse("nat,hostfwd=tcp::1-:1,hostfwd=tcp::2-:1,hostfwd=tcp::3-:1,hostfwd=tcp::4-:1,"
			       "hostfwd=tcp::5-:1,hostfwd=tcp::6-:1,hostfwd=tcp::7-:1,hostfwd=tcp::8-:1,"
			       "hostfwd=tcp::9-:1"),
			 CV_EINPUT);
	assert_non_null(strstr(err, "more than 8 hostfwd"));
}

static void test_cidr(void **state)
{
	uint32_t a;
	unsigned p;

	(void)state;
	assert_true(netopt_parse_cidr("10.1.0.0/16", 16, 30, &a, &p));
	assert_int_equal(a, 0x0a010000);
	assert_int_equal(p, 16);
	assert_false(netopt_parse_cidr("10.1.0.1/24", 16, 30, &a, &p)); /* host bits */
	assert_false(netopt_parse_cidr("10.1.0.0/8", 16, 30, &a, &p));
	assert_false(netopt_parse_cidr("10.1.0.0/31", 16, 30, &a, &p));
	assert_false(netopt_parse_cidr("10.1.0.0/024", 16, 30, &a, &p));
	assert_false(netopt_parse_cidr("10.1.0.0/", 16, 30, &a, &p));
	assert_false(netopt_parse_cidr("10.1.0.0", 16, 30, &a, &p));
	assert_false(netopt_parse_cidr("10.1.0.0/24x", 16, 30, &a, &p));
	assert_true(netopt_parse_cidr("10.1.0.4/30", 16, 30, &a, &p));
}

static void test_errors_name_the_value(void **state)
{
	static const struct {
		const char *v, *msg;
	} cases[] = {
		{ "", "missing mode" },
		{ "wifi", "unknown mode 'wifi'" },
		{ "bridge", "bridge needs a value" },
		{ "bridge=", "bridge needs a value" },
		{ "tap=abcdefghijklmnop", "must be 1 to 15" },
		{ "hostonly=twelve-chars", "1 to 11" },
		{ "hostonly=a/b", "1 to 11" },
		{ "nat,restrict=maybe", "restrict must be on or off" },
		{ "nat,net=10.0.0.0/24", "'net' does not apply to mode nat" },
		{ "tap=t0,hostfwd=tcp::1-:1", "'hostfwd' does not apply to mode tap" },
		{ "switch=/s,tap=x", "'tap' does not apply to mode switch" },
		{ "nat,mac=01:00:00:00:00:01", "bad MAC" },
		{ "nat,colour=red", "unknown option 'colour=red'" },
		{ "nat,", "empty option" },
		{ "nat,,mac=52:54:00:00:00:01", "empty option" },
		{ "hostonly=x,net=10.0.0.1/24", "bad net '10.0.0.1/24'" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].v), CV_EINPUT);
		if (!strstr(err, cases[i].msg))
			fail_msg("'%s': expected '%s' in '%s'", cases[i].v, cases[i].msg, err);
		assert_null(strchr(err, '\n'));
	}
}

static void test_hostonly_default_net(void **state)
{
	uint32_t a = hostonly_default_net("lab"), b = hostonly_default_net("lab2");

	(void)state;
	assert_int_equal(a, hostonly_default_net("lab")); /* deterministic */
	assert_int_not_equal(a, b);
	for (const char *const *s = (const char *const[]){ "a", "lab", "x-y_z", "0123456789a", NULL }; *s; s++) {
		uint32_t v = hostonly_default_net(*s);

		assert_int_equal(v >> 23, 10u << 1 | 1); /* inside 10.128.0.0/9 */
		assert_int_equal(v & 0xff, 0);            /* a /24 network address */
	}
}

static void test_run_options(void **state)
{
	struct vm_config cfg;
	char *argv[] = { "--kernel", "k", "--net", "nat", "--net", "switch=/tmp/s", "--disk",
			 "d.img,iops=200,bps=8M,bps_burst=1M,iops_burst=20" };
	char *bad[] = { "--kernel", "k", "--disk", "d.img,iops=0" };
	char *bad2[] = { "--kernel", "k", "--disk", "d.img,bps=lots" };

	(void)state;
	assert_int_equal(options_parse_run(8, argv, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.nnics, 2);
	assert_int_equal(cfg.nics[1].mode, NET_SWITCH);
	assert_int_equal(cfg.disks[0].limit.ops, 200);
	assert_int_equal(cfg.disks[0].limit.ops_burst, 20);
	assert_int_equal(cfg.disks[0].limit.bps, 8 << 20);
	assert_int_equal(cfg.disks[0].limit.bps_burst, 1 << 20);
	assert_string_equal(cfg.disks[0].path, "d.img");
	assert_int_equal(options_parse_run(4, bad, &cfg, err, sizeof(err)), CV_EINPUT);
	assert_non_null(strstr(err, "bad 'iops=0'"));
	assert_int_equal(options_parse_run(4, bad2, &cfg, err, sizeof(err)), CV_EINPUT);
	assert_non_null(strstr(err, "bad 'bps=lots'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_hostfwd),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_errors_name_the_value),
		cmocka_unit_test(test_hostonly_default_net),
		cmocka_unit_test(test_run_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
