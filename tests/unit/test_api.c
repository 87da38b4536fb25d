/* Firecracker's API over a mock VMM: resources, validation (every refused
 * request leaves the configuration exactly as it was), pre-/post-boot
 * rules, unsupported resources, the config file, and the translation to
 * cellvm's vm_config (root drive -> root=/dev/vda). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/config.h"
#include "api/firecracker.h"
#include "vmm/options.h"

static struct {
	int starts, pauses, resumes, cads;
	struct vm_config *vm;
} mock;

static int m_start(void *ctx, struct vm_config *vm, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	mock.starts++;
	mock.vm = vm;
	return 0;
}

static int m_pause(void *ctx, bool pause, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	if (pause)
		mock.pauses++;
	else
		mock.resumes++;
	return 0;
}

static char snap_layer[80];

static int m_snapshot_create(void *ctx, const char *state_path, const char *mem_path, bool diff,
			     const char *disk_layer, char *err, size_t errlen)
{
	(void)ctx;
	(void)state_path;
	(void)mem_path;
	(void)diff;
	(void)err;
	(void)errlen;
	snprintf(snap_layer, sizeof(snap_layer), "%s", disk_layer ? disk_layer : "(none)");
	return 0;
}

static char drive_path[80];
static unsigned drive_index;

static int m_drive_path(void *ctx, unsigned index, const char *path, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	drive_index = index;
	snprintf(drive_path, sizeof(drive_path), "%s", path);
	return 0;
}

static struct {
	int calls;
	unsigned index, which, rx_which, tx_which;
	struct ratelimit_config c, rx, tx;
} lim;

static int m_drive_limit(void *ctx, unsigned index, const struct ratelimit_config *c, unsigned which, char *err,
			 size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	lim.calls++;
	lim.index = index;
	lim.which = which;
	lim.c = *c;
	return 0;
}

static int m_nic_limit(void *ctx, unsigned index, const struct ratelimit_config *rx, unsigned rx_which,
		       const struct ratelimit_config *tx, unsigned tx_which, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	lim.calls++;
	lim.index = index;
	lim.rx_which = rx_which;
	lim.tx_which = tx_which;
	lim.rx = *rx;
	lim.tx = *tx;
	return 0;
}

static int m_cad(void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	mock.cads++;
	return 0;
}

static const struct fc_ops ops = {
	.start = m_start,
	.pause = m_pause,
	.ctrl_alt_del = m_cad,
	.snapshot_create = m_snapshot_create,
	.drive_path = m_drive_path,
	.drive_limit = m_drive_limit,
	.nic_limit = m_nic_limit,
};
static struct fc_api api;
static char kernel[64], disk[64], disk2[64];

static void tmpfile_at(char *path, const char *tmpl)
{
	int fd;

	strcpy(path, tmpl);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	memset(&mock, 0, sizeof(mock));
	memset(&lim, 0, sizeof(lim));
	tmpfile_at(kernel, "/tmp/cellvm-test-kernel-XXXXXX");
	tmpfile_at(disk, "/tmp/cellvm-test-disk-XXXXXX");
	tmpfile_at(disk2, "/tmp/cellvm-test-disk-XXXXXX");
	fc_api_init(&api, &ops, NULL, "test-vm");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fc_api_destroy(&api);
	unlink(kernel);
	unlink(disk);
	unlink(disk2);
	return 0;
}

/* Sends a request; returns the status, the body in *body (freed by the
 * next call). */
static int req(const char *method, const char *path, const char *body, char **out)
{
	static char *last;
	struct fc_reply r;

	free(last);
	fc_api_handle(&api, method, path, body, body ? strlen(body) : 0, &r);
	last = r.body;
	if (out)
		*out = r.body;
	if (r.status >= 400) {
		assert_non_null(r.body);
		assert_non_null(strstr(r.body, "\"fault_message\""));
	}
	return r.status;
}

static char *config_snapshot(void)
{
	char *body;

	assert_int_equal(req("GET", "/vm/config", NULL, &body), 200);
	return strdup(body);
}

static void configure(void)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"console=ttyS0 quiet\"}", kernel);
	assert_int_equal(req("PUT", "/boot-source", body, NULL), 204);
	assert_int_equal(req("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}", NULL), 204);
	snprintf(body, sizeof(body),
		 "{\"drive_id\": \"data\", \"path_on_host\": \"%s\", \"is_root_device\": false, \"is_read_only\": true}",
		 disk2);
	assert_int_equal(req("PUT", "/drives/data", body, NULL), 204);
	snprintf(body, sizeof(body),
		 "{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", \"is_root_device\": true, \"is_read_only\": false}",
		 disk);
	assert_int_equal(req("PUT", "/drives/rootfs", body, NULL), 204);
	assert_int_equal(req("PUT", "/network-interfaces/eth0",
			     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:ac:10:00:02\"}",
			     NULL),
			 204);
}

static void test_instance_info_and_defaults(void **state)
{
	char *body;

	(void)state;
	assert_int_equal(req("GET", "/", NULL, &body), 200);
	assert_non_null(strstr(body, "\"state\":\"Not started\""));
	assert_non_null(strstr(body, "\"id\":\"test-vm\""));
	assert_int_equal(req("GET", "/machine-config", NULL, &body), 200);
	assert_non_null(strstr(body, "\"mem_size_mib\":128"));
	assert_int_equal(req("GET", "/version", NULL, &body), 200);
}

static void test_malformed_requests_change_nothing(void **state)
{
	static const struct {
		const char *method, *path, *body;
	} bad[] = {
		{ "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256" }, /* malformed */
		{ "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"x\": 1}" }, /* unknown */
		{ "PUT", "/machine-config", "{\"vcpu_count\": \"2\", \"mem_size_mib\": 256}" }, /* type */
		{ "PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 256}" },   /* range */
		{ "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 8}" },
		{ "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 99999999999}" },
		{ "PUT", "/machine-config", "{\"vcpu_count\": -1, \"mem_size_mib\": 256}" },
		{ "PUT", "/machine-config", "{\"mem_size_mib\": 256}" }, /* missing */
		{ "PUT", "/machine-config", "{\"vcpu_count\": 3, \"mem_size_mib\": 256, \"smt\": true}" },
		{ "PUT", "/machine-config", "{\"vcpu_count\": 1, \"vcpu_count\": 2, \"mem_size_mib\": 256}" },
		{ "PUT", "/machine-config", "[1, 2]" },
		{ "PUT", "/machine-config", "{} trailing" },
		{ "PATCH", "/machine-config", "{}" },
		{ "PATCH", "/machine-config", "{\"huge_pages\": \"1G\"}" },
		{ "PATCH", "/machine-config", "{\"memory_options\": \"hugepages=3M\"}" },
		{ "PATCH", "/machine-config", "{\"huge_pages\": \"2M\", \"memory_options\": \"hugepages=thp\"}" },
		{ "PUT", "/machine-config", NULL },
		{ "PUT", "/boot-source", "{\"kernel_image_path\": \"/nonexistent/vmlinux\"}" },
		{ "PUT", "/boot-source", "{\"initrd_path\": \"/tmp\"}" },
		{ "PUT", "/drives/rootfs", "{\"drive_id\": \"other\", \"path_on_host\": \"/tmp\", \"is_root_device\": true}" },
		{ "PUT", "/drives/bad-id", "{\"drive_id\": \"bad-id\", \"path_on_host\": \"/x\", \"is_root_device\": true}" },
		{ "PUT", "/drives/", "{}" },
		{ "PUT", "/drives/x", "{\"drive_id\": \"x\", \"path_on_host\": \"/nonexistent\", \"is_root_device\": false}" },
		{ "PUT", "/drives/x", "{\"drive_id\": \"x\", \"socket\": \"/s\", \"is_root_device\": false}" },
		{ "PUT", "/drives/averyveryverylongdriveid", "{\"drive_id\": \"averyveryverylongdriveid\", \"is_root_device\": false}" },
		{ "PUT", "/network-interfaces/eth1", "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap0\"}" }, /* in use */
		{ "PUT", "/network-interfaces/eth1", "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", \"guest_mac\": \"zz\"}" },
		{ "PUT", "/network-interfaces/eth1", "{\"iface_id\": \"eth1\", \"host_dev_name\": \"a-name-much-too-long\"}" },
		{ "PUT", "/network-interfaces/eth1",
		  "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", \"rx_rate_limiter\": {\"bandwidth\": {\"size\": 1}}}" },
		{ "PUT", "/balloon", "{\"amount_mib\": 100000, \"deflate_on_oom\": true}" }, /* larger than RAM */
		{ "PUT", "/balloon", "{\"amount_mib\": 1}" },
		{ "PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": true, \"stats_polling_interval_s\": 70000}" },
		{ "PATCH", "/balloon", "{\"amount_mib\": 1}" }, /* before boot */
		{ "GET", "/balloon/statistics", NULL },
		{ "PUT", "/vsock", "{}" },
		{ "PUT", "/mmds/config", "{}" },
		{ "PUT", "/snapshot/create", "{}" },
		{ "PUT", "/entropy", "{\"rate_limiter\": {\"ops\": {\"size\": 1}}}" }, /* no refill_time */
		{ "PUT", "/entropy", "{\"rate_limiter\": {}, \"extra\": 1}" },
		{ "PUT", "/entropy", "{\"rate_limiter\": {\"bandwidth\": {\"size\": 1, \"refill_time\": 4000000}}}" },
		{ "GET", "/balloon", NULL },
		{ "PUT", "/logger", "{\"level\": \"Loud\"}" },
		{ "PUT", "/metrics", "{}" },
		{ "PUT", "/actions", "{\"action_type\": \"Reboot\"}" },
		{ "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}" }, /* before boot */
		{ "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}" },
		{ "PATCH", "/vm", "{\"state\": \"Paused\"}" },
		{ "PATCH", "/drives/rootfs", "{\"drive_id\": \"rootfs\"}" },
		{ "GET", "/nothing", NULL },
		{ "DELETE", "/drives/rootfs", NULL },
		{ "POST", "/actions", "{}" },
		{ "GET", "/machine-config", "{}" },
		{ "GET", "/a/b/c/d", NULL },
	};
	char *before;

	(void)state;
	configure();
	before = config_snapshot();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *after;
		int st = req(bad[i].method, bad[i].path, bad[i].body, NULL);

		if (st != 400)
			fail_msg("%s %s %s: status %d, expected 400", bad[i].method, bad[i].path, bad[i].body, st);
		after = config_snapshot();
		if (strcmp(before, after))
			fail_msg("%s %s changed the configuration", bad[i].method, bad[i].path);
		free(after);
	}
	free(before);
	assert_int_equal(mock.starts + mock.pauses + mock.cads, 0);
}

static void test_root_drive_goes_first_and_into_cmdline(void **state)
{
	(void)state;
	configure();
	assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", NULL), 204);
	assert_int_equal(mock.starts, 1);
	assert_int_equal(mock.vm->cpus, 2);
	assert_int_equal(mock.vm->memory, 256ULL << 20);
	assert_int_equal(mock.vm->ndisks, 2);
	assert_string_equal(mock.vm->disks[0].id, "rootfs");
	assert_string_equal(mock.vm->disks[1].id, "data");
	assert_true(mock.vm->disks[1].readonly);
	assert_string_equal(mock.vm->cmdline, "console=ttyS0 quiet root=/dev/vda rw");
	assert_int_equal(mock.vm->nnics, 1);
	assert_string_equal(mock.vm->nics[0].tap, "tap0");
	assert_true(mock.vm->nics[0].mac_set);
}

/* cellvm's own drive field: a qcow2 drive says so; Firecracker's are raw. */
static void test_drive_format(void **state)
{
	char body[256], *msg, *before, *after;

	(void)state;
	configure();
	before = config_snapshot();
	snprintf(body, sizeof(body), "{\"drive_id\": \"data\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		 "\"format\": \"vmdk\"}", disk2);
	assert_int_equal(req("PUT", "/drives/data", body, &msg), 400);
	assert_non_null(strstr(msg, "invalid format 'vmdk'"));
	after = config_snapshot();
	assert_string_equal(after, before);
	free(before);
	free(after);
	snprintf(body, sizeof(body), "{\"drive_id\": \"data\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		 "\"format\": \"qcow2\"}", disk2);
	assert_int_equal(req("PUT", "/drives/data", body, NULL), 204);
	assert_int_equal(req("GET", "/vm/config", NULL, &msg), 200);
	assert_non_null(strstr(msg, "qcow2"));
	assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", NULL), 204);
	assert_int_equal(mock.vm->disks[0].format, DISK_FORMAT_RAW);
	assert_int_equal(mock.vm->disks[1].format, DISK_FORMAT_QCOW2);
}

static void test_snapshot_disk_layer(void **state)
{
	char *msg;

	(void)state;
	configure();
	assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", NULL), 204);
	assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Paused\"}", NULL), 204);
	assert_int_equal(req("PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", "
			     "\"disk_layer\": \"../x\"}", &msg), 400);
	assert_non_null(strstr(msg, "invalid disk_layer '../x'"));
	assert_int_equal(req("PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", NULL),
			 204);
	assert_string_equal(snap_layer, "(none)");
	assert_int_equal(req("PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", "
			     "\"disk_layer\": \"s1\"}", NULL), 204);
	assert_string_equal(snap_layer, "s1");
}

/* A VM built from the command line or a snapshot, as GET /vm/config shows
 * it; what the process was given through the API (the logger) stays. */
static void test_describe_vm(void **state)
{
	static struct vm_config vm;
	struct api_config c;
	json_t *j;
	char *text;

	(void)state;
	vm_config_defaults(&vm);
	vm.kernel = "/k/vmlinux";
	vm.cpus = 2;
	vm.memory = 512ULL << 20;
	vm.ndisks = 1;
	vm.disks[0] = (struct disk_config){ .path = "/d/root.qcow2", .format = DISK_FORMAT_QCOW2, .id = "root",
					    .limit = { .bps = 2 << 20, .bps_burst = 1 << 20, .bps_once = 512 } };
	vm.nnics = 1;
	vm.nics[0] = (struct net_config){ .id = "net0", .mode = NET_NAT, .tx = { .ops = 100, .ops_burst = 10 } };
	vm.smt = true;
	vm.entropy = (struct entropy_config){ .set = true, .limit = { .bps = 1000, .bps_burst = 100 } };
	api_config_init(&c);
	c.logger.set = true;
	c.logger.path = strdup("/tmp/log");
	assert_int_equal(api_config_describe(&c, &vm), 0);
	assert_int_equal(c.vcpus, 2);
	assert_int_equal(c.mem_mib, 512);
	assert_string_equal(c.drives[0].path, "/d/root.qcow2");
	assert_true(c.drives[0].qcow2);
	assert_string_equal(c.nics[0].id, "net0");
	assert_true(c.nics[0].mac_set); /* derived from the VM's name, as the NIC has it */
	assert_string_equal(c.logger.path, "/tmp/log");
	j = api_config_json(&c);
	text = json_dumps(j, JSON_COMPACT);
	assert_non_null(strstr(text, "\"path_on_host\":\"/d/root.qcow2\""));
	assert_non_null(strstr(text, "\"kernel_image_path\":\"/k/vmlinux\""));
	/* Limits as Firecracker's buckets: size = burst, refilled at the rate. */
	assert_non_null(strstr(text, "\"bandwidth\":{\"size\":1048576,\"one_time_burst\":512,\"refill_time\":500}"));
	assert_non_null(strstr(text, "\"tx_rate_limiter\":{\"bandwidth\":null,\"ops\":{\"size\":10,"));
	assert_non_null(strstr(text, "\"rx_rate_limiter\":null"));
	assert_non_null(strstr(text, "\"entropy\":{\"rate_limiter\":{\"bandwidth\":{\"size\":100,"));
	assert_non_null(strstr(text, "\"smt\":true"));
	assert_non_null(strstr(text, "\"cache_type\":\"Writeback\""));
	free(text);
	json_decref(j);
	api_config_free(&c);
}

static void test_second_root_refused(void **state)
{
	char body[256], *msg;

	(void)state;
	configure();
	snprintf(body, sizeof(body), "{\"drive_id\": \"data\", \"path_on_host\": \"%s\", \"is_root_device\": true}", disk2);
	assert_int_equal(req("PUT", "/drives/data", body, &msg), 400);
	assert_non_null(strstr(msg, "root block device already exists"));
}

static void test_post_boot_rules(void **state)
{
	char *msg, body[256], disk3[64];

	(void)state;
	configure();
	assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", NULL), 204);
	assert_int_equal(req("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}", &msg), 400);
	assert_non_null(strstr(msg, "not supported after starting the microVM"));
	assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", NULL), 400);
	assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Paused\"}", NULL), 204);
	assert_int_equal(req("GET", "/", NULL, &msg), 200);
	assert_non_null(strstr(msg, "\"Paused\""));
	assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Paused\"}", NULL), 204); /* idempotent */
	assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Resumed\"}", NULL), 204);
	assert_int_equal(req("PATCH", "/vm", "{\"state\": \"Sleeping\"}", NULL), 400);
	assert_int_equal(mock.pauses, 1);
	assert_int_equal(mock.resumes, 1);
	assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", NULL), 204);
	assert_int_equal(mock.cads, 1);
	/* A PATCH that changes nothing is fine; a new path goes to the VMM,
	 * a path that is not there is refused before. */
	snprintf(body, sizeof(body), "{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\"}", disk);
	assert_int_equal(req("PATCH", "/drives/rootfs", body, NULL), 204);
	assert_string_equal(drive_path, "");
	assert_int_equal(req("PATCH", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/nonexistent\"}",
			     NULL),
			 400);
	assert_string_equal(drive_path, "");
	tmpfile_at(disk3, "/tmp/cellvm-test-disk-XXXXXX");
	snprintf(body, sizeof(body), "{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\"}", disk3);
	assert_int_equal(req("PATCH", "/drives/rootfs", body, NULL), 204);
	assert_string_equal(drive_path, disk3);
	assert_int_equal(drive_index, 0);
	assert_int_equal(req("GET", "/vm/config", NULL, &msg), 200);
	assert_non_null(strstr(msg, disk3));
	unlink(disk3);
	assert_int_equal(req("PATCH", "/drives/nope", "{\"drive_id\": \"nope\"}", NULL), 400);
	assert_int_equal(req("PATCH", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\"}", NULL), 204);
}

/* Firecracker's rate_limiter objects: size per refill_time ms with a
 * one-time burst; a PATCH after boot replaces the buckets it names and
 * keeps the others; a bucket of size 0 turns that limit off. */
static void test_rate_limiters(void **state)
{
	char body[512], *msg;

	(void)state;
	configure();
	snprintf(body, sizeof(body),
		 "{\"drive_id\": \"data\", \"path_on_host\": \"%s\", \"is_root_device\": false, \"rate_limiter\": "
		 "{\"bandwidth\": {\"size\": 1048576, \"one_time_burst\": 4096, \"refill_time\": 500}, "
		 "\"ops\": {\"size\": 100, \"refill_time\": 1000}}, \"cache_type\": \"Writeback\"}",
		 disk2);
	assert_int_equal(req("PUT", "/drives/data", body, NULL), 204);
	assert_int_equal(req("PUT", "/network-interfaces/eth0",
			     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"tx_rate_limiter\": "
			     "{\"ops\": {\"size\": 10, \"refill_time\": 100}}}",
			     NULL),
			 204);
	assert_int_equal(req("PUT", "/entropy", "{\"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}",
			     NULL),
			 204);
	/* SMT pairs vCPUs: 2 is fine, 3 is not (nothing changes). */
	assert_int_equal(req("PATCH", "/machine-config", "{\"smt\": true}", NULL), 204);
	assert_int_equal(req("PATCH", "/machine-config", "{\"vcpu_count\": 3}", &msg), 400);
	assert_non_null(strstr(msg, "can only be 1 or an even number when SMT is enabled"));
	assert_int_equal(req("GET", "/machine-config", NULL, &msg), 200);
	assert_non_null(strstr(msg, "\"smt\":true"));
	assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", NULL), 204);
	assert_true(mock.vm->smt);
	/* data is disk 1 (the root drive goes first). */
	assert_int_equal(mock.vm->disks[1].limit.bps, 2097152);
	assert_int_equal(mock.vm->disks[1].limit.bps_burst, 1048576);
	assert_int_equal(mock.vm->disks[1].limit.bps_once, 4096);
	assert_int_equal(mock.vm->disks[1].limit.ops, 100);
	assert_int_equal(mock.vm->disks[1].cache, DISK_CACHE_WRITEBACK);
	assert_int_equal(mock.vm->disks[0].cache, DISK_CACHE_UNSAFE);
	assert_int_equal(mock.vm->nics[0].tx.ops, 100);
	assert_int_equal(mock.vm->nics[0].rx.bps, 0);
	assert_true(mock.vm->entropy.set);
	assert_int_equal(mock.vm->entropy.limit.bps, 10000);
	assert_int_equal(req("PUT", "/entropy", "{}", &msg), 400);
	assert_non_null(strstr(msg, "not supported after starting"));
	/* Only ops changes; bandwidth keeps its bucket (not named). */
	assert_int_equal(req("PATCH", "/drives/data",
			     "{\"drive_id\": \"data\", \"rate_limiter\": {\"ops\": {\"size\": 0, \"refill_time\": 0}}}",
			     NULL),
			 204);
	assert_int_equal(lim.calls, 1);
	assert_int_equal(lim.index, 1);
	assert_int_equal(lim.which, RATELIMIT_OPS);
	assert_int_equal(lim.c.ops, 0);
	assert_int_equal(lim.c.bps, 2097152);
	assert_int_equal(req("GET", "/vm/config", NULL, &msg), 200);
	assert_non_null(strstr(msg, "\"one_time_burst\":4096"));
	/* A bad bucket changes nothing and reaches no device. */
	assert_int_equal(req("PATCH", "/drives/data", "{\"drive_id\": \"data\", \"rate_limiter\": {\"ops\": {\"size\": 1}}}",
			     NULL),
			 400);
	assert_int_equal(lim.calls, 1);
	assert_int_equal(req("PATCH", "/network-interfaces/eth0",
			     "{\"iface_id\": \"eth0\", \"rx_rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 10}}}",
			     NULL),
			 204);
	assert_int_equal(lim.calls, 2);
	assert_int_equal(lim.rx_which, RATELIMIT_BYTES);
	assert_int_equal(lim.tx_which, 0);
	assert_int_equal(lim.rx.bps, 100000);
	assert_int_equal(lim.tx.ops, 100);
	assert_int_equal(req("PATCH", "/network-interfaces/eth9", "{\"iface_id\": \"eth9\"}", &msg), 400);
	assert_non_null(strstr(msg, "Invalid interface ID - not found: eth9"));
	/* No rate limiter in the PATCH: nothing for the device to do. */
	assert_int_equal(req("PATCH", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\"}", NULL), 204);
	assert_int_equal(lim.calls, 2);
}

static void test_start_needs_kernel(void **state)
{
	char *msg;

	(void)state;
	assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", &msg), 400);
	assert_non_null(strstr(msg, "kernel"));
	assert_int_equal(mock.starts, 0);
}

static void test_config_file(void **state)
{
	char doc[1024], err[256];

	(void)state;
	snprintf(doc, sizeof(doc),
		 "{\"boot-source\": {\"kernel_image_path\": \"%s\", \"boot_args\": \"console=ttyS0\"},"
		 " \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64},"
		 " \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", \"is_root_device\": true,"
		 " \"is_read_only\": true, \"partuuid\": \"abcd-01\"}],"
		 " \"network-interfaces\": [], \"balloon\": null, \"vsock\": null,"
		 " \"cellvm\": {\"drives\": {\"rootfs\": \"copied\"}}}",
		 kernel, disk);
	assert_int_equal(fc_api_load_config(&api, doc, strlen(doc), err, sizeof(err)), 0);
	assert_int_equal(req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", NULL), 204);
	assert_string_equal(mock.vm->cmdline, "console=ttyS0 root=PARTUUID=abcd-01 ro");
	assert_int_equal(mock.vm->memory, 64ULL << 20);
}

static void test_config_file_refuses_unsupported(void **state)
{
	char doc[512], err[256];

	(void)state;
	snprintf(doc, sizeof(doc), "{\"boot-source\": {\"kernel_image_path\": \"%s\"}, \"vsock\": {\"guest_cid\": 3}}",
		 kernel);
	assert_int_equal(fc_api_load_config(&api, doc, strlen(doc), err, sizeof(err)), -2);
	assert_non_null(strstr(err, "vsock"));
	assert_int_equal(fc_api_load_config(&api, "{\"drives\": []}", 14, err, sizeof(err)), -2);
	assert_non_null(strstr(err, "boot-source"));
	assert_int_equal(fc_api_load_config(&api, "{\"boot-source\": 1", 17, err, sizeof(err)), -2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_instance_info_and_defaults),
		T(test_malformed_requests_change_nothing),
		T(test_root_drive_goes_first_and_into_cmdline),
		T(test_second_root_refused),
		T(test_drive_format),
		T(test_describe_vm),
		T(test_snapshot_disk_layer),
		T(test_post_boot_rules),
		T(test_rate_limiters),
		T(test_start_needs_kernel),
		T(test_config_file),
		T(test_config_file_refuses_unsupported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
