/* options_parse_run: the `cellvm run` command line. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "vmm/options.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Parses argv, which must succeed. */
static void parse_ok(int argc, char **argv, struct vm_config *cfg)
{
	char err[256] = "";
	int rc = options_parse_run(argc, argv, cfg, err, sizeof(err));

	if (rc != 0)
		fail_msg("options_parse_run returned %d: %s", rc, err);
}

/* Parses argv, which must fail with CV_EINPUT and a message containing
 * every string in want[] (NULL-terminated). */
static void parse_fails(int argc, char **argv, const char *const *want)
{
	struct vm_config cfg;
	char err[256] = "";
	int rc = options_parse_run(argc, argv, &cfg, err, sizeof(err));

	assert_int_equal(rc, CV_EINPUT);
	assert_null(strchr(err, '\n'));
	for (; *want; want++)
		if (!strstr(err, *want))
			fail_msg("error '%s' does not mention '%s'", err, *want);
}

/* `--kernel k OPT VALUE` must fail, naming VALUE and the option. */
static void option_value_fails(const char *opt, const char *value)
{
	char *argv[] = { "--kernel", "k", (char *)opt, (char *)value };
	const char *want[] = { opt, value, NULL };
	char joined[64];

	parse_fails(ARGC(argv), argv, want);
	/* The = form reports the same value. */
	snprintf(joined, sizeof(joined), "%s=%s", opt, value);
	argv[2] = joined;
	parse_fails(3, argv, want);
}

static void test_defaults(void **state)
{
	char *argv[] = { "--kernel", "vmlinux" };
	struct vm_config cfg;

	(void)state;
	memset(&cfg, 0x5a, sizeof(cfg));
	parse_ok(ARGC(argv), argv, &cfg);
	assert_string_equal(cfg.kernel, "vmlinux");
	assert_null(cfg.initrd);
	assert_string_equal(cfg.cmdline, "console=ttyS0 reboot=k panic=-1");
	assert_int_equal(cfg.cpus, 1);
	assert_int_equal(cfg.memory, 256ULL << 20);
	assert_int_equal(cfg.reboot, REBOOT_EXIT);
}

static void check_all_options(char **argv, int argc)
{
	struct vm_config cfg;

	parse_ok(argc, argv, &cfg);
	assert_string_equal(cfg.kernel, "/boot/bz");
	assert_string_equal(cfg.initrd, "/tmp/i.cpio");
	assert_string_equal(cfg.cmdline, "console=ttyS0 root=/dev/x a=b");
	assert_int_equal(cfg.cpus, 64);
	assert_int_equal(cfg.memory, 2ULL << 30);
	assert_int_equal(cfg.reboot, REBOOT_RESTART);
}

static void test_separate_values(void **state)
{
	char *argv[] = { "--kernel", "/boot/bz", "--initrd", "/tmp/i.cpio", "--cmdline",
			 "console=ttyS0 root=/dev/x a=b", "--cpus", "64", "--memory", "2G",
			 "--reboot", "restart" };

	(void)state;
	check_all_options(argv, ARGC(argv));
}

static void test_equals_values(void **state)
{
	/* Only the first '=' separates: the command line keeps its own. */
	char *argv[] = { "--kernel=/boot/bz", "--initrd=/tmp/i.cpio", "--cmdline=console=ttyS0 root=/dev/x a=b",
			 "--cpus=64", "--memory=2G", "--reboot=restart" };

	(void)state;
	check_all_options(argv, ARGC(argv));
}

static void test_value_forms_mixed_and_last_wins(void **state)
{
	char *argv[] = { "--memory=1G", "--kernel", "a", "--cpus=2", "--memory", "16M", "--cpus", "3",
			 "--reboot=restart", "--reboot", "exit", "--kernel=b" };
	struct vm_config cfg;

	(void)state;
	parse_ok(ARGC(argv), argv, &cfg);
	assert_string_equal(cfg.kernel, "b");
	assert_int_equal(cfg.memory, 16ULL << 20);
	assert_int_equal(cfg.cpus, 3);
	assert_int_equal(cfg.reboot, REBOOT_EXIT);
}

static void test_limits_accepted(void **state)
{
	static const struct {
		const char *mem;
		uint64_t bytes;
	} mems[] = { { "16M", 16ULL << 20 }, { "1T", 1ULL << 40 }, { "16781312", (16ULL << 20) + 4096 } };
	static const char *const cpus[] = { "1", "64" };

	(void)state;
	for (size_t i = 0; i < sizeof(mems) / sizeof(mems[0]); i++) {
		char *argv[] = { "--kernel", "k", "--memory", (char *)mems[i].mem };
		struct vm_config cfg;

		parse_ok(ARGC(argv), argv, &cfg);
		assert_int_equal(cfg.memory, mems[i].bytes);
	}
	for (size_t i = 0; i < sizeof(cpus) / sizeof(cpus[0]); i++) {
		char *argv[] = { "--kernel", "k", "--cpus", (char *)cpus[i] };
		struct vm_config cfg;

		parse_ok(ARGC(argv), argv, &cfg);
		assert_int_equal(cfg.cpus, (unsigned)atoi(cpus[i]));
	}
}

static void test_unknown_option(void **state)
{
	static const char *const bad[] = {
		"--foo", "--foo=1", "-x", "kernel", "--kernelx", "--", "--mem", "--this-option-name-is-far-too-long-to-be-real",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "--kernel", "k", (char *)bad[i], "v" };
		const char *want[] = { "unknown option", bad[i], NULL };

		parse_fails(ARGC(argv), argv, want);
	}
}

static void test_bad_memory(void **state)
{
	static const char *const bad[] = {
		"abc", "0", "15M", "2T", "1000", "1.5G", "", "-16M",
		"16777217", /* in range, but not page-granular */
		"1073741825",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		option_value_fails("--memory", bad[i]);
}

static void test_bad_memory_messages(void **state)
{
	char *notsize[] = { "--kernel", "k", "--memory", "abc" };
	char *range[] = { "--kernel", "k", "--memory", "15M" };
	char *page[] = { "--kernel", "k", "--memory", "16777217" };

	(void)state;
	parse_fails(ARGC(notsize), notsize, (const char *[]){ "'abc'", "not a size", NULL });
	parse_fails(ARGC(range), range, (const char *[]){ "'15M'", "16M", "1T", NULL });
	parse_fails(ARGC(page), page, (const char *[]){ "'16777217'", "4K", NULL });
}

static void test_memory_options(void **state)
{
	char *argv[] = { "--kernel", "k", "--memory", "1G,backend=memfd,hugepages=2M,merge=on,prealloc=on,node=0" };
	char *file[] = { "--kernel", "k", "--memory", "64M,file=/dev/shm/ram,shared=off" };
	struct vm_config cfg;
	char text[128];

	(void)state;
	parse_ok(ARGC(argv), argv, &cfg);
	assert_int_equal(cfg.memory, 1ULL << 30);
	assert_int_equal(cfg.ram.backend, RAM_MEMFD);
	assert_int_equal(cfg.ram.pages, RAM_PAGES_2M);
	assert_true(cfg.ram.merge && cfg.ram.prealloc && cfg.ram.bind && cfg.ram.node == 0);
	ram_format(&cfg.ram, text, sizeof(text));
	assert_string_equal(text, "backend=memfd,hugepages=2M,merge=on,prealloc=on,node=0");
	parse_ok(ARGC(file), file, &cfg);
	assert_int_equal(cfg.ram.backend, RAM_FILE);
	assert_string_equal(cfg.ram.file, "/dev/shm/ram");
	assert_int_equal(cfg.ram.shared, RAM_SHARED_OFF);
	ram_format(&cfg.ram, text, sizeof(text));
	assert_string_equal(text, "file=/dev/shm/ram,shared=off");
}

static void test_bad_memory_options(void **state)
{
	static const struct {
		const char *value, *want;
	} bad[] = {
		{ "512M,hugepages=3M", "'3M'" },
		{ "512M,hugepages=4K", "'4K'" },
		{ "512M,backend=foo", "'foo'" },
		{ "512M,merge=maybe", "'maybe'" },
		{ "512M,node=x", "'x'" },
		{ "512M,colour=red", "'colour'" },
		{ "512M,merge", "'merge'" },
		{ "512M,backend=memfd,hugepages=thp", "thp" },
		{ "512M,file=/x,hugepages=2M", "hugetlbfs" },
		{ "513M,hugepages=2M", "huge pages" },
		{ "512M,hugepages=1G", "huge pages" },
		{ "512M,file=", "file" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "--kernel", "k", "--memory", (char *)bad[i].value };

		parse_fails(ARGC(argv), argv, (const char *[]){ bad[i].want, NULL });
	}
}

static void test_bad_cpus(void **state)
{
	static const char *const bad[] = { "0", "65", "-1", "abc", "", "4x", "99999999999999999999999", "1.0" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		option_value_fails("--cpus", bad[i]);
}

/* The host CPUs a test may name (whatever this host has). */
static int first_host_cpu(void)
{
	cpu_set_t set;

	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			return c;
	fail_msg("no CPU to run on");
	return -1;
}

static void test_cpus_placement(void **state)
{
	char val[64], *argv[] = { "--kernel", "k", "--cpus", val };
	struct vm_config cfg;
	int cpu = first_host_cpu();

	(void)state;
	snprintf(val, sizeof(val), "3,quota=150%%,pin=%d,%d", cpu, cpu);
	parse_ok(ARGC(argv), argv, &cfg);
	assert_int_equal(cfg.cpus, 3);
	assert_int_equal(cfg.cpu_quota, 150);
	assert_int_equal(cfg.npin, 2);
	assert_int_equal(cfg.pin[0], cpu);
	assert_int_equal(cfg.pin[1], cpu);
	snprintf(val, sizeof(val), "2,pin=%d-%d,quota=20%%", cpu, cpu);
	parse_ok(ARGC(argv), argv, &cfg);
	assert_int_equal(cfg.npin, 1);
	assert_int_equal(cfg.cpu_quota, 20);
	snprintf(val, sizeof(val), "2");
	parse_ok(ARGC(argv), argv, &cfg);
	assert_int_equal(cfg.npin, 0);
	assert_int_equal(cfg.cpu_quota, 0);
}

static void test_bad_cpus_placement(void **state)
{
	static const char *const bad[][2] = {
		{ "2,quota=200%", "not below what 2 vCPUs can use (200%)" },
		{ "1,quota=0%", "percentage" },
		{ "1,quota=50", "percentage" },
		{ "1,quota=-5%", "percentage" },
		{ "1,pin=", "at least one host CPU" },
		{ "1,pin=3-1", "like 0-3" },
		{ "1,pin=x", "like 0-3" },
		{ "1,pin=1023", "host CPU 1023 is not one cellvm may run on" },
		{ "1,pin=99999", "like 0-3" },
		{ "1,fast=on", "unknown option 'fast=on'" },
	};

	(void)state;
	for (size_t i = 0; i < ARGC(bad); i++) {
		char *argv[] = { "--kernel", "k", "--cpus", (char *)bad[i][0] };
		const char *want[] = { "--cpus", bad[i][0], bad[i][1], NULL };

		parse_fails(ARGC(argv), argv, want);
	}
}

static void test_disk_queues_and_polling(void **state)
{
	char *argv[] = { "--kernel", "k", "--cpus", "4", "--disk", "a.img,queues=16,poll_us=1000000", "--disk",
			 "b.img,poll_us=0,queues=1", "--disk", "c.img" };
	static const char *const bad[] = { "queues=0",	   "queues=17",	     "queues=-1",	"queues=",
					   "queues=2x",	   "queues=99999999999999999999", "poll_us=1000001", "poll_us=-5",
					   "poll_us=",	   "poll_us=1e3" };
	struct vm_config cfg;

	(void)state;
	parse_ok(ARGC(argv), argv, &cfg);
	assert_int_equal(cfg.disks[0].queues, 16);
	assert_int_equal(cfg.disks[0].poll_us, 1000000);
	assert_int_equal(cfg.disks[1].queues, 1);
	assert_int_equal(cfg.disks[1].poll_us, 0);
	/* Unset: the VM gives it one per vCPU. */
	assert_int_equal(cfg.disks[2].queues, 0);
	assert_int_equal(cfg.disks[2].poll_us, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char disk[64], *bad_argv[] = { "--kernel", "k", "--disk", disk };
		const char *want[] = { strchr(bad[i], '=') + 1, NULL };

		snprintf(disk, sizeof(disk), "d.img,%s", bad[i]);
		parse_fails(ARGC(bad_argv), bad_argv, want);
		want[0] = bad[i][0] == 'q' ? "bad queues" : "bad poll_us";
		parse_fails(ARGC(bad_argv), bad_argv, want);
	}
}

static void test_bad_reboot(void **state)
{
	static const char *const bad[] = { "maybe", "", "EXIT", "restart " };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		option_value_fails("--reboot", bad[i]);
}

static void test_vsock(void **state)
{
	static const char *const bad[] = { "cid=2,uds=/v",	     "cid=abc,uds=/v", "cid=4294967295,uds=/v",
					   "cid=3",		     "uds=/v",	       "cid=3,uds=/v,x=1",
					   "cid=3,cid=4,uds=/v",    "cid=3,uds=",      "cid=-3,uds=/v",
					   "cid=3,uds=/v,uds=/w" };
	char *argv[] = { "--kernel", "k", "--vsock", "cid=42,uds=/run/v.sock" };
	char *twice[] = { "--kernel", "k", "--vsock", "cid=3,uds=/a", "--vsock", "cid=4,uds=/b" };
	struct vm_config cfg;

	(void)state;
	parse_ok(ARGC(argv), argv, &cfg);
	assert_true(cfg.vsock.set);
	assert_int_equal(cfg.vsock.cid, 42);
	assert_string_equal(cfg.vsock.uds, "/run/v.sock");
	parse_fails(ARGC(twice), twice, (const char *const[]){ "--vsock", "cid=4,uds=/b", NULL });
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		option_value_fails("--vsock", bad[i]);
}

static void test_missing_value(void **state)
{
	static const char *const opts[] = { "--kernel", "--initrd", "--cmdline", "--cpus", "--memory", "--reboot" };

	(void)state;
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		char *argv[] = { "--kernel", "k", (char *)opts[i] };
		const char *want[] = { opts[i], "needs a value", NULL };

		parse_fails(ARGC(argv), argv, want);
	}
}

static void test_missing_kernel(void **state)
{
	char *argv[] = { "--memory", "1G", "--cpus", "2" };
	const char *want[] = { "missing --kernel", NULL };

	(void)state;
	parse_fails(ARGC(argv), argv, want);
	parse_fails(0, NULL, want);
}

static void test_help(void **state)
{
	char *help[] = { "--help" };
	char *help_later[] = { "--kernel", "k", "--cpus", "2", "-h" };
	/* --help wins even when earlier options would have been fine and later ones bad. */
	char *help_first[] = { "--help", "--cpus", "0" };
	struct vm_config cfg;
	char err[64] = "";

	(void)state;
	assert_int_equal(options_parse_run(ARGC(help), help, &cfg, err, sizeof(err)), 1);
	assert_int_equal(options_parse_run(ARGC(help_later), help_later, &cfg, err, sizeof(err)), 1);
	assert_int_equal(options_parse_run(ARGC(help_first), help_first, &cfg, err, sizeof(err)), 1);
	assert_string_equal(err, "");
	assert_non_null(strstr(options_run_usage, "--kernel"));
}

static void test_error_fits_small_buffer(void **state)
{
	char *argv[] = { "--memory", "this-is-not-a-size-at-all" };
	struct vm_config cfg;
	char err[16];

	(void)state;
	memset(err, 'x', sizeof(err));
	assert_int_equal(options_parse_run(ARGC(argv), argv, &cfg, err, sizeof(err)), CV_EINPUT);
	assert_int_equal(strlen(err), sizeof(err) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_disk_queues_and_polling),
		cmocka_unit_test(test_separate_values),
		cmocka_unit_test(test_equals_values),
		cmocka_unit_test(test_value_forms_mixed_and_last_wins),
		cmocka_unit_test(test_limits_accepted),
		cmocka_unit_test(test_unknown_option),
		cmocka_unit_test(test_bad_memory),
		cmocka_unit_test(test_bad_memory_messages),
		cmocka_unit_test(test_memory_options),
		cmocka_unit_test(test_bad_memory_options),
		cmocka_unit_test(test_bad_cpus),
		cmocka_unit_test(test_cpus_placement),
		cmocka_unit_test(test_bad_cpus_placement),
		cmocka_unit_test(test_bad_reboot),
		cmocka_unit_test(test_vsock),
		cmocka_unit_test(test_missing_value),
		cmocka_unit_test(test_missing_kernel),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_error_fits_small_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
