#include "vmm/run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "api/firecracker.h"
#include "api/server.h"
#include "manager/pidfile.h"
#include "util/err.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "vmm/devices.h"
#include "vmm/fc_flags.h"
#include "vmm/console.h"
#include "vmm/console_sock.h"
#include "migrate/migrate.h"
#include "vmm/disks.h"
#include "block/async.h"
#include "block/image.h"
#include "vmm/kvm.h"
#include "vmm/modules.h"
#include "vmm/seccomp.h"
#include "vmm/vm.h"

#define DEFAULT_HINT_SECONDS 5
#define INPUT_RETRY_MS 10
#define METRICS_PERIOD_MS 60000 /* Firecracker's periodic flush */

enum { EXIT_OK = 0, EXIT_VM_FAILED = 1, EXIT_USAGE = 2 };

struct runner {
	struct vm_config *cfg;      /* the command line's */
	struct vm_config *vm_cfg; /* what the VM is built from */
	struct event_loop loop;
	int sig_fd;
	struct kvm kvm;
	bool kvm_ok;
	struct vm vm;
	bool vm_built;
	struct vm_restore restore; /* the snapshot the VM was restored from */
	bool restore_open;
	bool restoring; /* the next vm_up builds the VM from `restore` */
	struct console con;
	bool con_opened;
	bool input;     /* console input still open */
	bool in_polled; /* input is in the event loop (not for regular files) */
	bool in_paused; /* the UART's FIFO was full */
	struct console_sock cs;
	bool cs_ok;
	int console_out;
	struct fc_api fc;
	struct api_server *api;
	int pid_fd;
	double hint_at; /* when to explain a silent guest on PVM (0: done) */
	double metrics_at;
	struct migration *mig; /* the last migration out (its status stays) */
	bool migrating;
	bool mig_unknown; /* it may run on the destination: paused, disks closed */
	struct incoming in; /* a migration in (the copied disks' paths live here) */
	bool filtered; /* the main thread's syscall filter is loaded */
	bool done;
	int code;
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double hint_seconds(void)
{
	const char *s = getenv("CELLVM_PVM_HINT_SECONDS");
	char *end;
	double v;

	if (!s || !*s)
		return DEFAULT_HINT_SECONDS;
	v = strtod(s, &end);
	return (*end || v < 0) ? DEFAULT_HINT_SECONDS : v;
}

static int exit_code(int rc)
{
	return rc == CV_EINPUT ? EXIT_USAGE : EXIT_VM_FAILED;
}

/* ------------------------------------------------------------- console input */

static void input_stop(struct runner *r)
{
	if (r->in_polled)
		event_loop_del(&r->loop, r->con.in_fd);
	r->in_polled = false;
	r->input = false;
	if (r->cs_ok && r->con.in_fd >= 0) {
		/* A console-socket client left: wait for the next one. */
		close(r->con.in_fd);
		r->con.in_fd = -1;
		console_sock_detach(&r->cs);
	}
}

/* Moves what the console has to the UART while it has room. */
static void pump_input(struct runner *r)
{
	uint8_t in[256], out[256];
	size_t space = vm_console_space(&r->vm), m;
	enum console_action act;
	ssize_t n;

	if (!space) {
		if (r->in_polled && !r->in_paused)
			event_loop_modify(&r->loop, r->con.in_fd, 0);
		r->in_paused = true;
		return;
	}
	if (r->in_paused && r->in_polled)
		event_loop_modify(&r->loop, r->con.in_fd, EPOLLIN);
	r->in_paused = false;
	n = read(r->con.in_fd, in, space < sizeof(in) ? space : sizeof(in));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		input_stop(r);
		return;
	}
	m = console_filter(&r->con, in, (size_t)n, out, &act);
	vm_console_input(&r->vm, out, m);
	if (act == CONSOLE_QUIT)
		vm_request_exit(&r->vm, VM_EXIT_STOPPED);
}

static void on_input(void *opaque, uint32_t events)
{
	(void)events;
	pump_input(opaque);
}

/* Starts reading console input once there is both a VM and an input. */
static void input_start(struct runner *r)
{
	if (!r->vm_built || r->con.in_fd < 0 || r->input)
		return;
	r->input = true;
	r->in_paused = false;
	/* epoll refuses regular files; those are read on a timer instead. */
	r->in_polled = event_loop_add(&r->loop, r->con.in_fd, EPOLLIN, on_input, r) == 0;
}

static void on_console_client(void *ctx, int fd)
{
	struct runner *r = ctx;

	r->con = (struct console){ .in_fd = fd }; /* not a tty: the client handles escapes */
	input_start(r);
}

/* ------------------------------------------------------------- the VM */

static void on_vm_loop(void *opaque, uint32_t events)
{
	struct runner *r = opaque;

	(void)events;
	if (event_loop_run_once(&r->vm.loop, 0)) {
		cv_err("event loop: %s", strerror(errno));
		vm_request_exit(&r->vm, VM_EXIT_FAILED);
	}
}

static void vm_ended(struct runner *r);

static void on_vm_event(void *opaque, uint32_t events)
{
	(void)events;
	vm_ended(opaque); /* the eventfd is only written once the VM has an exit reason */
}

/* Builds and starts the VM: booted from its kernel, or restored from the
 * open snapshot (r->restore_open); `paused` leaves its vCPUs parked before
 * their first instruction. */
static int vm_up(struct runner *r, bool paused)
{
	int rc;

	if (!r->kvm_ok) {
		if ((rc = kvm_open(&r->kvm)))
			return rc;
		r->kvm_ok = true;
	}
	/* The MMDS answers from the API's data store (PUT /mmds). */
	if (r->vm_cfg->mmds.set) {
		char err[256];

		if (!(r->vm_cfg->mmds_store = fc_mmds_store(&r->fc, err, sizeof(err)))) {
			cv_err("%s", err);
			return CV_EFAIL;
		}
	}
	if ((rc = vm_create(&r->vm, &r->kvm, r->vm_cfg, r->console_out, r->restoring ? &r->restore : NULL)))
		return rc;
	r->vm_built = true;
	if (event_loop_add(&r->loop, r->vm.loop.epfd, EPOLLIN, on_vm_loop, r) ||
	    event_loop_add(&r->loop, r->vm.event_fd, EPOLLIN, on_vm_event, r)) {
		vm_request_exit(&r->vm, VM_EXIT_FAILED);
		return CV_EFAIL;
	}
	if (!r->cs_ok && !r->con_opened) {
		if ((rc = console_open(&r->con, STDIN_FILENO))) {
			vm_request_exit(&r->vm, VM_EXIT_FAILED);
			return rc;
		}
		r->con_opened = true;
	}
	input_start(r);
	if (paused)
		atomic_store(&r->vm.pause_req, true); /* they park before KVM_RUN */
	/* Before the first guest instruction; a reboot's new VM is built
	 * under it. */
	if (!r->filtered) {
		if ((rc = vm_modules_load(r->cfg, false)) || (rc = seccomp_enter(SECCOMP_VMM, "main")))
			return rc;
		r->filtered = true;
	}
	if ((rc = vm_start(&r->vm)) || (paused && (rc = vm_pause(&r->vm))))
		return rc;
	r->hint_at = r->kvm.pvm ? now_s() + hint_seconds() : 0;
	return 0;
}

static void vm_down(struct runner *r)
{
	if (!r->vm_built)
		return;
	vm_stop(&r->vm);
	if (r->input && r->in_polled)
		event_loop_del(&r->loop, r->con.in_fd);
	r->input = r->in_polled = false;
	event_loop_del(&r->loop, r->vm.event_fd);
	event_loop_del(&r->loop, r->vm.loop.epfd);
	vm_destroy(&r->vm);
	r->vm_built = false;
}

/* The VM has an exit reason: restart it or end the process. */
static void vm_ended(struct runner *r)
{
	enum vm_exit why = (enum vm_exit)atomic_load(&r->vm.exit);
	int rc;

	vm_down(r);
	if (why == VM_EXIT_RESET && r->vm_cfg->reboot == REBOOT_RESTART) {
		/* A reboot boots the kernel, even in a VM that began as a
		 * snapshot (whose configuration names it). */
		r->restoring = false;
		if (!(rc = vm_up(r, false)))
			return;
		vm_down(r);
		r->code = exit_code(rc);
	} else {
		r->code = why == VM_EXIT_FAILED ? EXIT_VM_FAILED : EXIT_OK;
	}
	r->done = true;
}

/* ------------------------------------------------------------- the API */

static int api_start(void *ctx, struct vm_config *vm, char *err, size_t errlen)
{
	struct runner *r = ctx;
	int rc;

	/* What the API does not describe comes from the command line. */
	vm->name = r->cfg->name;
	vm->reboot = r->cfg->reboot;
	vm->transport = r->cfg->transport;
	vm->console = r->cfg->console;
	r->vm_cfg = vm;
	if ((rc = vm_up(r, false))) {
		const char *why = cv_last_error();

		vm_down(r);
		return cv_fmt(err, errlen, "Start microvm error: %s", *why ? why : "see the log");
	}
	return 0;
}

static int api_pause(void *ctx, bool pause, char *err, size_t errlen)
{
	struct runner *r = ctx;

	if (r->migrating)
		return cv_fmt(err, errlen, "a migration is in progress (GET /migrate)");
	/* The user says the destination does not run it: this VM goes on. */
	if (!pause && r->mig_unknown) {
		if (vm_disks_reacquire(&r->vm))
			return cv_fmt(err, errlen, "%s", cv_last_error());
		r->mig_unknown = false;
	}
	if (pause ? vm_pause(&r->vm) : vm_resume(&r->vm))
		return cv_fmt(err, errlen, "%s", cv_last_error());
	return 0;
}

static int api_snapshot_create(void *ctx, const char *state_path, const char *mem_path, bool diff,
			       const char *disk_layer, char *err, size_t errlen)
{
	struct runner *r = ctx;
	struct vm_snapshot_stats st;

	if (r->migrating)
		return cv_fmt(err, errlen, "Create snapshot error: a migration is in progress");
	if (vm_snapshot_create(&r->vm, state_path, mem_path, diff, disk_layer, &st))
		return cv_fmt(err, errlen, "Create snapshot error: %s", cv_last_error());
	cv_warn("snapshot: %llu bytes of state, %llu of memory data, %.1f ms", (unsigned long long)st.state_bytes,
		(unsigned long long)st.mem_bytes_written, st.pause_to_done_ms);
	return 0;
}

/* The copies a migration brought are the VM's files here. */
static int take_copies(struct vm_config *cfg, const struct storage_in *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		const struct storage_target *t = &s->disk[i];

		if (t->role == STORAGE_KERNEL) {
			cfg->kernel = t->path;
		} else if (t->role == STORAGE_INITRD) {
			cfg->initrd = t->path;
		} else if (t->drive < cfg->ndisks) {
			cfg->disks[t->drive].path = t->path;
			cfg->disks[t->drive].format = t->format;
		} else {
			cv_err("invalid VM state: %u disks, but a copy of disk %u came with it", cfg->ndisks, t->drive);
			return CV_EINPUT;
		}
	}
	return 0;
}

/* Builds the VM from a snapshot, or (in: not NULL) from a migration that
 * arrived. */
static int restore_up(struct runner *r, const struct fc_snapshot_load *l, struct incoming *in)
{
	int rc;

	if ((rc = in ? vm_restore_open_buf(&r->restore, in->state, in->state_len, in->ram, in->ram_size)
		     : vm_restore_open(&r->restore, l->state_path, l->mem_path)))
		return rc;
	r->restore_open = r->restoring = true;
	r->restore.config.cfg.track_dirty_pages = l->track;
	if ((rc = snap_config_override_nics(&r->restore.config.cfg, l->overrides, l->noverrides)))
		return rc;
	if (in && (rc = take_copies(&r->restore.config.cfg, &in->disks)))
		return rc;
	r->vm_cfg = &r->restore.config.cfg;
	rc = vm_up(r, !l->resume);
	/* Once the VM took the RAM it is the VM's (vm_restore_memory). */
	if (in && !r->restore.ram)
		in->ram = NULL;
	if (rc || (rc = api_config_describe(&r->fc.cfg, r->vm_cfg)))
		vm_down(r);
	return rc;
}

static int api_snapshot_load(void *ctx, const struct fc_snapshot_load *l, char *err, size_t errlen)
{
	struct runner *r = ctx;

	if (restore_up(r, l, NULL))
		return cv_fmt(err, errlen, "Load snapshot error: %s", cv_last_error());
	return 0;
}

static int api_drive_path(void *ctx, unsigned index, const char *path, char *err, size_t errlen)
{
	struct runner *r = ctx;

	if (!r->vm_built || index >= r->vm_cfg->ndisks)
		return cv_fmt(err, errlen, "Unable to patch the block device: the VM has no drive %u", index);
	if (r->migrating || r->mig_unknown)
		return cv_fmt(err, errlen, "Unable to patch the block device: a migration %s",
			      r->migrating ? "is in progress" : "may have moved the VM");
	if (vm_disk_replace(&r->vm, index, path))
		return cv_fmt(err, errlen, "Unable to patch the block device: %s", cv_last_error());
	r->vm_cfg->disks[index].path = path;
	return 0;
}

/* The running VM's limits change in the device and in the configuration a
 * snapshot or migration carries. */
static int api_drive_limit(void *ctx, unsigned index, const struct ratelimit_config *c, unsigned which, char *err,
			   size_t errlen)
{
	struct runner *r = ctx;

	if (!r->vm_built || index >= r->vm_cfg->ndisks)
		return cv_fmt(err, errlen, "Unable to patch the block device: the VM has no drive %u", index);
	if (virtio_blk_set_limit(devices_disk(&r->vm, index), c, which))
		return cv_fmt(err, errlen, "Unable to patch the block device: %s", cv_last_error());
	r->vm_cfg->disks[index].limit = *c;
	return 0;
}

static int api_nic_limit(void *ctx, unsigned index, const struct ratelimit_config *rx, unsigned rx_which,
			 const struct ratelimit_config *tx, unsigned tx_which, char *err, size_t errlen)
{
	struct runner *r = ctx;

	if (!r->vm_built || index >= r->vm_cfg->nnics)
		return cv_fmt(err, errlen, "Unable to update the net device: the VM has no network interface %u", index);
	if (virtio_net_set_limits(devices_nic(&r->vm, index), rx, rx_which, tx, tx_which))
		return cv_fmt(err, errlen, "Unable to update the net device: %s", cv_last_error());
	r->vm_cfg->nics[index].rx = *rx;
	r->vm_cfg->nics[index].tx = *tx;
	return 0;
}

static int api_ctrl_alt_del(void *ctx, char *err, size_t errlen)
{
	struct runner *r = ctx;

	if (r->vm.paused)
		return cv_fmt(err, errlen, "the VM is paused: resume it first");
	if (i8042_ctrl_alt_del(&r->vm.i8042))
		return cv_fmt(err, errlen, "the guest's keyboard is not listening (no i8042/atkbd driver, or busy)");
	return 0;
}

/* How often the rate limiters held the guest back, under Firecracker's
 * names (its block, net and entropy groups, summed over the devices). */
static void limiter_metrics(struct runner *r, json_t *line)
{
	uint64_t blk = 0, rx = 0, tx = 0;

	for (unsigned i = 0; i < r->vm_cfg->ndisks; i++)
		blk += virtio_blk_throttled(devices_disk(&r->vm, i));
	for (unsigned i = 0; i < r->vm_cfg->nnics; i++) {
		uint64_t a, b;

		virtio_net_throttled(devices_nic(&r->vm, i), &a, &b);
		rx += a;
		tx += b;
	}
	json_object_set_new(line, "block", json_pack("{s:I}", "rate_limiter_throttled_events", (json_int_t)blk));
	json_object_set_new(line, "net", json_pack("{s:I, s:I}", "rx_rate_limiter_throttled", (json_int_t)rx,
						   "tx_rate_limiter_throttled", (json_int_t)tx));
	json_object_set_new(line, "entropy",
			    json_pack("{s:I}", "entropy_rate_limiter_throttled",
				      (json_int_t)virtio_rng_throttled(r->vm.rng_dev)));
}

static void api_metrics(void *ctx, json_t *line)
{
	struct runner *r = ctx;
	unsigned long io = 0, mmio = 0, other = 0;

	for (unsigned i = 0; r->vm_built && i < r->vm.nvcpus; i++) {
		io += atomic_load_explicit(&r->vm.vcpus[i].exits_io, memory_order_relaxed);
		mmio += atomic_load_explicit(&r->vm.vcpus[i].exits_mmio, memory_order_relaxed);
		other += atomic_load_explicit(&r->vm.vcpus[i].exits_other, memory_order_relaxed);
	}
	json_object_set_new(line, "vcpu",
			    json_pack("{s:I, s:I, s:I}", "exit_io", (json_int_t)io, "exit_mmio", (json_int_t)mmio,
				      "exit_other", (json_int_t)other));
	if (r->vm_built)
		limiter_metrics(r, line);
}

static void migration_done(void *ctx, enum mig_state end)
{
	struct runner *r = ctx;
	struct mig_status st;

	r->migrating = false;
	migration_status(r->mig, &st);
	if (end == MIG_UNKNOWN) {
		r->mig_unknown = true;
		r->fc.state = FC_PAUSED;
		cv_err("migration: %s", st.error);
		return;
	}
	if (end != MIG_COMPLETED) {
		cv_warn("migration failed, the VM goes on here: %s", st.error);
		return;
	}
	cv_warn("migrated: %u rounds, %.1f MiB sent (%.1f MiB of disks), %.0f ms in all, %.1f ms paused, vCPUs "
		"throttled %u%% at the end",
		st.round, (double)st.bytes / (1 << 20), (double)st.disk_bytes / (1 << 20), st.total_ms, st.downtime_ms,
		st.throttle_pct);
	vm_request_exit(&r->vm, VM_EXIT_STOPPED);
}

static int api_migrate(void *ctx, const struct mig_params *p, char *err, size_t errlen)
{
	struct runner *r = ctx;

	if (!r->vm_built)
		return cv_fmt(err, errlen, "no VM to migrate");
	if (r->migrating)
		return cv_fmt(err, errlen, "a migration is already in progress (GET /migrate)");
	if (r->mig_unknown)
		return cv_fmt(err, errlen, "the last migration may have moved this VM: resume it first if it did not");
	migration_free(r->mig);
	r->mig = NULL;
	if (migration_start(&r->mig, &r->vm, &r->loop, p, migration_done, r))
		return cv_fmt(err, errlen, "cannot migrate: %s", cv_last_error());
	r->migrating = true;
	return 0;
}

static int api_migrate_cancel(void *ctx, char *err, size_t errlen)
{
	struct runner *r = ctx;

	if (!r->migrating)
		return cv_fmt(err, errlen, "no migration is in progress");
	migration_cancel(r->mig);
	return 0;
}

static json_t *api_migrate_status(void *ctx)
{
	struct runner *r = ctx;
	struct mig_status st = { 0 };

	if (r->mig)
		migration_status(r->mig, &st);
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:f, s:f, s:s?}", "state",
			 mig_state_name(st.state), "round", (json_int_t)st.round, "bytes_sent", (json_int_t)st.bytes,
			 "disk_bytes_sent", (json_int_t)st.disk_bytes, "pages_sent", (json_int_t)st.pages,
			 "dirty_pages", (json_int_t)st.dirty, "dirty_rate_bps", st.dirty_rate, "bandwidth_bps",
			 st.bandwidth, "expected_downtime_ms", st.expected_downtime_ms, "throttle_pct",
			 (json_int_t)st.throttle_pct, "total_ms", st.total_ms, "downtime_ms", st.downtime_ms, "error",
			 st.error[0] ? st.error : NULL);
}

/* The running VM's balloon, or NULL with Firecracker's reason in err. */
static struct virtio_dev *balloon(struct runner *r, char *err, size_t errlen)
{
	struct balloon_info info;

	if (!r->vm.balloon_dev) {
		cv_fmt(err, errlen, "No balloon device found.");
		return NULL;
	}
	virtio_balloon_info(r->vm.balloon_dev, &info);
	if (!info.active) {
		cv_fmt(err, errlen, "Device is inactive, check if balloon driver is enabled in guest kernel.");
		return NULL;
	}
	return r->vm.balloon_dev;
}

static int api_balloon_update(void *ctx, uint32_t mib, char *err, size_t errlen)
{
	struct virtio_dev *d = balloon(ctx, err, errlen);

	if (!d)
		return CV_EINPUT;
	virtio_balloon_set_target(d, (uint32_t)((uint64_t)mib << 20 >> 12));
	return 0;
}

static int api_balloon_interval(void *ctx, unsigned s, char *err, size_t errlen)
{
	struct virtio_dev *d = balloon(ctx, err, errlen);

	if (!d)
		return CV_EINPUT;
	virtio_balloon_set_interval(d, s);
	return 0;
}

static int api_balloon_info(void *ctx, struct balloon_info *out, char *err, size_t errlen)
{
	struct virtio_dev *d = balloon(ctx, err, errlen);

	if (!d)
		return CV_EINPUT;
	virtio_balloon_info(d, out);
	return 0;
}

static const struct fc_ops api_ops = {
	.balloon_update = api_balloon_update,
	.balloon_interval = api_balloon_interval,
	.balloon_info = api_balloon_info,
	.start = api_start,
	.pause = api_pause,
	.ctrl_alt_del = api_ctrl_alt_del,
	.snapshot_create = api_snapshot_create,
	.snapshot_load = api_snapshot_load,
	.drive_path = api_drive_path,
	.drive_limit = api_drive_limit,
	.nic_limit = api_nic_limit,
	.migrate = api_migrate,
	.migrate_status = api_migrate_status,
	.migrate_cancel = api_migrate_cancel,
	.metrics = api_metrics,
};

static void on_api_request(void *ctx, const struct http_request *req, int *status, char **body, size_t *len)
{
	struct runner *r = ctx;
	struct fc_reply reply;

	fc_api_handle(&r->fc, req->method, req->path, req->body_len ? req->body : NULL, req->body_len, &reply);
	*status = reply.status;
	*body = reply.body;
	*len = reply.len;
}

static int load_config_file(struct runner *r)
{
	char err[512];
	FILE *f = fopen(r->cfg->config_file, "re");
	char *buf = NULL;
	size_t len = 0;
	int rc = CV_EINPUT;

	if (f) {
		/* A config file is small; 1 MiB is plenty and bounds a mistake. */
		buf = malloc(1 << 20);
		len = buf ? fread(buf, 1, 1 << 20, f) : 0;
		rc = !buf ? CV_EFAIL : (len == 1 << 20 || ferror(f)) ? CV_EINPUT : 0;
		fclose(f);
	}
	if (!f || rc) {
		cv_err("invalid --config-file '%s': %s", r->cfg->config_file,
		       !f ? strerror(errno) : "unreadable or larger than 1 MiB");
		free(buf);
		return rc ? rc : CV_EINPUT;
	}
	rc = fc_api_load_config(&r->fc, buf, len, err, sizeof(err));
	free(buf);
	if (rc == CV_EINPUT)
		cv_err("invalid --config-file '%s': %s", r->cfg->config_file, err);
	if (!rc && (rc = api_config_to_vm(&r->fc.cfg, &r->fc.vm, err, sizeof(err))))
		cv_err("invalid --config-file '%s': %s", r->cfg->config_file, err);
	if (!rc && !(rc = api_start(r, &r->fc.vm, err, sizeof(err))))
		r->fc.state = FC_RUNNING;
	return rc;
}

/* ------------------------------------------------------------- the loop */

static void on_signal(void *opaque, uint32_t events)
{
	struct runner *r = opaque;
	struct signalfd_siginfo si;

	(void)events;
	if (read(r->sig_fd, &si, sizeof(si)) == sizeof(si))
		cv_err("stopping%s on %s", r->vm_built ? " the VM" : "", strsignal((int)si.ssi_signo));
	if (r->vm_built) {
		vm_request_exit(&r->vm, VM_EXIT_STOPPED);
	} else {
		r->code = EXIT_OK;
		r->done = true;
	}
}

static int next_timeout(struct runner *r, double now)
{
	double t = -1;

	if (r->input && (!r->in_polled || r->in_paused))
		t = INPUT_RETRY_MS / 1000.0;
	if (r->hint_at > 0 && (t < 0 || r->hint_at - now < t))
		t = r->hint_at - now;
	if (r->metrics_at > 0 && (t < 0 || r->metrics_at - now < t))
		t = r->metrics_at - now;
	/* The VM's loop is polling a queue: it must not wait here either. */
	if (r->vm_built && event_loop_polling(&r->vm.loop))
		return 0;
	return t < 0 ? -1 : t <= 0 ? 0 : (int)(t * 1000) + 1;
}

static void timers(struct runner *r, double now)
{
	char err[256];

	if (r->input && (!r->in_polled || r->in_paused) && r->vm_built)
		pump_input(r);
	if (r->hint_at > 0 && now >= r->hint_at) {
		r->hint_at = 0;
		if (r->vm_built && !serial_has_output(&r->vm.serial))
			cv_err("hint: no guest output after %.0f s. This host's KVM is PVM (kvm_pvm), where only "
			       "a kernel with PVM guest support runs at full speed; others crawl. "
			       "See README.md, 'Guest kernels'.", hint_seconds());
	}
	if (r->fc.metrics_fd >= 0 && r->fc.state != FC_NOT_STARTED && r->metrics_at == 0)
		r->metrics_at = now + METRICS_PERIOD_MS / 1000.0;
	if (r->metrics_at > 0 && now >= r->metrics_at) {
		r->metrics_at = now + METRICS_PERIOD_MS / 1000.0;
		if (fc_api_flush_metrics(&r->fc, err, sizeof(err)))
			cv_warn("%s", err);
	}
}

/* Firecracker's logger and metrics flags, as if PUT before anything else. */
static int fc_put(struct runner *r, const char *path, const char *body, const char *flags)
{
	struct fc_reply reply;
	int rc = 0;

	if (!*body)
		return 0;
	fc_api_handle(&r->fc, "PUT", path, body, strlen(body), &reply);
	if (reply.status >= 400) {
		json_t *j = json_loadb(reply.body, reply.len, 0, NULL);

		cv_err("invalid %s: %s", flags, json_string_value(json_object_get(j, "fault_message")));
		json_decref(j);
		rc = CV_EINPUT;
	}
	free(reply.body);
	return rc;
}

static int apply_fc_flags(struct runner *r)
{
	const struct fc_flags *f = r->cfg->fc;
	int rc;

	if (f->mmds_size_limit)
		r->fc.cfg.mmds_size_limit = f->mmds_size_limit;
	if ((rc = fc_put(r, "/logger", f->logger, "--level/--log-path")))
		return rc;
	return fc_put(r, "/metrics", f->metrics, "--metrics-path");
}

static int setup(struct runner *r)
{
	int rc;

	if ((rc = seccomp_configure(r->cfg->seccomp)))
		return rc;
	image_restrict_backing();
	for (unsigned i = 0; i < r->cfg->nallow_backing; i++)
		if ((rc = image_allow_backing(r->cfg->allow_backing[i])))
			return rc;
	async_set_thread_start(seccomp_worker_start);
	if (r->cfg->pid_file && (r->pid_fd = pidfile_acquire(r->cfg->pid_file)) < 0)
		return r->pid_fd;
	if ((rc = event_loop_init(&r->loop)))
		return rc;
	if (event_loop_add(&r->loop, r->sig_fd, EPOLLIN, on_signal, r))
		return CV_EFAIL;
	if (r->cfg->console_sock) {
		if ((rc = console_sock_open(&r->cs, r->cfg->console_sock, &r->loop, on_console_client, r)))
			return rc;
		r->cs_ok = true;
		r->console_out = console_sock_out_fd(&r->cs);
		r->con.in_fd = -1;
	}
	if (r->cfg->fc && (rc = apply_fc_flags(r)))
		return rc;
	if (r->cfg->api_sock &&
	    (rc = api_server_open(&r->api, r->cfg->api_sock, &r->loop, on_api_request, r)))
		return rc;
	if (r->api && r->cfg->fc && r->cfg->fc->max_payload)
		api_server_set_max_body(r->api, r->cfg->fc->max_payload);
	if (r->cfg->config_file)
		return load_config_file(r);
	if (r->cfg->incoming) {
		struct fc_snapshot_load l = { .resume = true };
		struct mig_accept a = { .token = r->cfg->migrate_token,
					.tls = r->cfg->migrate_tls,
					.dest = { .dir = r->cfg->receive_dir,
						  .ov = r->cfg->disk_overrides,
						  .nov = r->cfg->ndisk_overrides } };

		memcpy(l.overrides, r->cfg->overrides, sizeof(l.overrides));
		l.noverrides = r->cfg->noverrides;
		if ((rc = migration_receive(r->cfg->incoming, &a, &r->in)))
			return rc;
		rc = restore_up(r, &l, &r->in);
		migration_reply(&r->in, rc ? 1 : 0, rc ? cv_last_error() : "running");
		if (!rc)
			r->fc.state = FC_RUNNING;
		return rc;
	}
	if (r->cfg->restore_dir) {
		char state[4096], mem[4096];

		if (cv_fmt(state, sizeof(state), "%s/state", r->cfg->restore_dir),
		    cv_fmt(mem, sizeof(mem), "%s/memory", r->cfg->restore_dir), strlen(r->cfg->restore_dir) > 4000) {
			cv_err("invalid --restore '%s': path too long", r->cfg->restore_dir);
			return CV_EINPUT;
		}
		struct fc_snapshot_load l = {
			.state_path = state, .mem_path = mem, .resume = true, .track = r->cfg->track_dirty_pages
		};

		memcpy(l.overrides, r->cfg->overrides, sizeof(l.overrides));
		l.noverrides = r->cfg->noverrides;
		if ((rc = restore_up(r, &l, NULL)))
			return rc;
		r->fc.state = FC_RUNNING;
		return 0;
	}
	if (r->cfg->kernel) {
		/* Described on the command line; the API serves it running. */
		r->vm_cfg = r->cfg;
		if ((rc = vm_up(r, false)) || (rc = api_config_describe(&r->fc.cfg, r->cfg)))
			return rc;
		r->fc.state = FC_RUNNING;
	}
	return 0;
}

int run_main(struct vm_config *cfg, int sig_fd)
{
	static struct runner r; /* big (the VM, the API's config): not on the stack */
	int rc;

	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.sig_fd = sig_fd;
	r.console_out = STDOUT_FILENO;
	r.con.in_fd = STDIN_FILENO;
	r.pid_fd = -1;
	r.loop.epfd = -1;
	fc_api_init(&r.fc, &api_ops, &r, cfg->name);
	if ((rc = setup(&r))) {
		vm_down(&r);
		r.code = exit_code(rc);
		r.done = true;
	}
	while (!r.done) {
		double now = now_s();

		if (event_loop_run_once(&r.loop, next_timeout(&r, now))) {
			cv_err("event loop: %s", strerror(errno));
			if (r.vm_built) {
				vm_request_exit(&r.vm, VM_EXIT_FAILED);
			} else {
				r.done = true;
				r.code = EXIT_VM_FAILED;
			}
		}
		/* Its pollers run in its own loop, which has no fd ready. */
		if (r.vm_built && event_loop_polling(&r.vm.loop))
			on_vm_loop(&r, 0);
		timers(&r, now_s());
	}
	/* The migration thread reads the VM's RAM: it goes first. */
	migration_free(r.mig);
	vm_down(&r);
	api_server_close(r.api);
	if (r.cs_ok)
		console_sock_close(&r.cs);
	if (r.con_opened)
		console_restore(&r.con);
	fc_api_destroy(&r.fc);
	if (r.restore_open)
		vm_restore_close(&r.restore);
	if (r.kvm_ok)
		kvm_close(&r.kvm);
	event_loop_destroy(&r.loop);
	pidfile_release(r.pid_fd, cfg->pid_file);
	return r.code;
}
