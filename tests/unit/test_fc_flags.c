/* Firecracker's and its jailer's command lines: what each flag becomes,
 * and one-line refusals naming the bad value. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "jail/jailer.h"
#include "util/err.h"
#include "vmm/fc_flags.h"

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL }), (int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *))

static struct vm_config cfg;
static struct fc_flags f;
static char err[256];

static int parse(char **argv, int argc)
{
	err[0] = 0;
	return fc_flags_parse(argc, argv, &cfg, &f, err, sizeof(err));
}

static void test_defaults_and_flags(void **state)
{
	(void)state;
	assert_int_equal(fc_flags_parse(0, (char *[]){ NULL }, &cfg, &f, err, sizeof(err)), 0);
	assert_string_equal(cfg.api_sock, FC_DEFAULT_API_SOCK);
	assert_string_equal(cfg.name, FC_DEFAULT_ID);
	assert_string_equal(f.logger, "");
	assert_ptr_equal(cfg.fc, &f);
	assert_int_equal(parse(ARGV("--api-sock", "/s", "--id=vm-7", "--config-file", "c.json", "--level", "Debug",
				    "--log-path", "/l", "--show-level", "--metrics-path", "/m", "--no-seccomp",
				    "--http-api-max-payload-size", "100000", "--mmds-size-limit=2048",
				    "--start-time-us", "1", "--parent-cpu-time-us", "2")),
			 0);
	assert_string_equal(cfg.api_sock, "/s");
	assert_string_equal(cfg.name, "vm-7");
	assert_string_equal(cfg.config_file, "c.json");
	assert_int_equal(cfg.seccomp, SECCOMP_OFF);
	assert_int_equal(f.max_payload, 100000);
	assert_int_equal(f.mmds_size_limit, 2048);
	assert_non_null(strstr(f.logger, "\"level\":\"Debug\""));
	assert_non_null(strstr(f.logger, "\"log_path\":\"/l\""));
	assert_non_null(strstr(f.logger, "\"show_level\":true"));
	assert_string_equal(f.metrics, "{\"metrics_path\":\"/m\"}");
	assert_int_equal(parse(ARGV("--no-api", "--config-file", "c.json")), 0);
	assert_null(cfg.api_sock);
}

static void test_bad_flags(void **state)
{
	static const struct {
		char *argv[4];
		const char *want;
	} bad[] = {
		{ { "--no-api" }, "--no-api needs --config-file" },
		{ { "--id", "has space" }, "invalid --id 'has space'" },
		{ { "--id", "" }, "invalid --id ''" },
		{ { "--http-api-max-payload-size", "-1" }, "invalid --http-api-max-payload-size '-1'" },
		{ { "--mmds-size-limit", "99999999999" }, "invalid --mmds-size-limit" },
		{ { "--api-sock" }, "flag '--api-sock' needs a value" },
		{ { "--show-level=1" }, "flag '--show-level' takes no value" },
		{ { "--what" }, "unknown flag '--what'" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int argc = 0;

		while (argc < 4 && bad[i].argv[argc])
			argc++;
		assert_int_equal(parse((char **)bad[i].argv, argc), CV_EINPUT);
		if (!strstr(err, bad[i].want))
			fail_msg("%s: '%s' lacks '%s'", bad[i].argv[0], err, bad[i].want);
	}
}

static int jparse(char **argv, int argc, struct jailer_args *a)
{
	return jailer_parse(argc, argv, a, err, sizeof(err));
}

static void test_jailer(void **state)
{
	struct jailer_args a;

	(void)state;
	assert_int_equal(jparse(ARGV("--id", "vm-1", "--exec-file", "/proc/self/exe", "--uid", "10", "--gid",
					   "20", "--chroot-base-dir", "/srv/j", "--daemonize", "--", "--level",
					   "Info"), &a),
			 0);
	assert_string_equal(a.jail.exec_name, "exe");
	assert_string_equal(a.jail.base, "/srv/j");
	assert_true(a.jail.daemonize);
	assert_int_equal(a.jail.uid, 10);
	assert_int_equal(a.fc_argc, 4);
	assert_string_equal(a.fc_argv[0], "--id");
	assert_string_equal(a.fc_argv[1], "vm-1");
	assert_string_equal(a.fc_argv[2], "--level");
	jailer_free(&a);
	/* Without "--": no Firecracker flags but the id. */
	assert_int_equal(jparse(ARGV("--id", "x", "--exec-file", "/proc/self/exe", "--uid", "0", "--gid", "0"), &a),
			 0);
	assert_int_equal(a.fc_argc, 2);
	jailer_free(&a);
	assert_int_equal(jparse(ARGV("--id", "x", "--uid", "0", "--gid", "0"), &a), CV_EINPUT);
	assert_non_null(strstr(err, "needs --exec-file"));
	assert_int_equal(jparse(ARGV("--id", "x", "--exec-file", "/", "--uid", "0", "--gid", "0"), &a),
			 CV_EINPUT);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(jparse(ARGV("--id", "x", "--exec-file", "/proc/self/exe", "--gid", "0"), &a),
			 CV_EINPUT);
	assert_non_null(strstr(err, "needs --id, --uid and --gid"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_flags),
		cmocka_unit_test(test_bad_flags),
		cmocka_unit_test(test_jailer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
