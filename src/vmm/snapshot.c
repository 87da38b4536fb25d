#include "vmm/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>

#include "arch/x86/layout.h"
#include "hw/vmgenid.h"
#include "snapshot/memfile.h"
#include "util/err.h"
#include "vmm/vm.h"

#define DRAIN_TIMEOUT_S 5

static uint64_t realtime_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static double mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void cpu_vendor(const struct kvm *k, char out[13])
{
	memset(out, 0, 13);
	for (uint32_t i = 0; i < k->cpuid.nent; i++) {
		const struct kvm_cpuid_entry2 *e = &k->cpuid.e[i];

		if (e->function == 0) {
			memcpy(out, &e->ebx, 4);
			memcpy(out + 4, &e->edx, 4);
			memcpy(out + 8, &e->ecx, 4);
		}
	}
}

/* ---------------------------------------------------------------- machine */

static int machine_save(void *dev, struct snap_writer *w)
{
	struct vm *vm = dev;
	char vendor[13];

	cpu_vendor(vm->kvm, vendor);
	snap_put_str(w, CELLVM_VERSION);
	snap_put_str(w, vendor);
	snap_put_u8(w, vm->kvm->pvm);
	snap_put_u64(w, realtime_ns());
	snap_put_u64(w, vm->mem.size);
	snap_put_u64(w, vm->mem.low_size);
	snap_put_u32(w, vm->nvcpus);
	return 0;
}

static int machine_load(void *dev, struct snap_reader *r)
{
	struct vm *vm = dev;
	char version[64], vendor[13], host_vendor[13];
	uint64_t saved_at, size, low, now;
	uint32_t ncpus;
	bool pvm;

	snap_get_str(r, version, sizeof(version), NULL);
	snap_get_str(r, vendor, sizeof(vendor), NULL);
	pvm = snap_get_bool(r);
	saved_at = snap_get_u64(r);
	size = snap_get_u64(r);
	low = snap_get_u64(r);
	ncpus = snap_get_u32(r);
	if (!snap_reader_ok(r))
		return CV_EINPUT;
	cpu_vendor(vm->kvm, host_vendor);
	if (strcmp(vendor, host_vendor)) {
		cv_err("cannot restore: the snapshot was taken on a %s CPU, this host has a %s CPU", vendor,
		       host_vendor);
		return CV_EINPUT;
	}
	if (pvm != vm->kvm->pvm) {
		cv_err("cannot restore: the snapshot was taken on a %s host, this one is %s", pvm ? "PVM" : "VMX/SVM",
		       vm->kvm->pvm ? "PVM" : "VMX/SVM");
		return CV_EINPUT;
	}
	if (size != vm->mem.size || low != vm->mem.low_size || ncpus != vm->nvcpus) {
		snap_reader_fail(r, "memory layout or vCPU count differs from the configuration");
		return CV_EINPUT;
	}
	/* The guest's clocks catch up with the time the snapshot lay on disk
	 * (never backwards: a host clock set back leaves them as saved). */
	now = realtime_ns();
	vm->restore_elapsed_ns = now > saved_at ? now - saved_at : 0;
	return 0;
}

/* ---------------------------------------------------------------- irqchip, PIT, clock */

static int irqchip_save(void *dev, struct snap_writer *w)
{
	struct vm *vm = dev;

	for (uint32_t id = 0; id < 3; id++) {
		struct kvm_irqchip chip = { .chip_id = id };

		if (ioctl(vm->fd, KVM_GET_IRQCHIP, &chip) < 0) {
			cv_err("KVM_GET_IRQCHIP %u: %s", id, strerror(errno));
			return CV_EFAIL;
		}
		snap_put_bytes(w, &chip, sizeof(chip));
	}
	return 0;
}

static int irqchip_load(void *dev, struct snap_reader *r)
{
	struct vm *vm = dev;
	struct kvm_irqchip chip[3];

	for (uint32_t id = 0; id < 3; id++) {
		snap_get_bytes(r, &chip[id], sizeof(chip[id]));
		if (snap_reader_ok(r) && chip[id].chip_id != id)
			snap_reader_fail(r, "interrupt controllers out of order");
	}
	if (!snap_reader_ok(r))
		return CV_EINPUT;
	for (uint32_t id = 0; id < 3; id++) {
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &chip[id]) < 0) {
			cv_err("restore: KVM_SET_IRQCHIP %u: %s", id, strerror(errno));
			return CV_EFAIL;
		}
	}
	return 0;
}

static int pit_save(void *dev, struct snap_writer *w)
{
	struct vm *vm = dev;
	struct kvm_pit_state2 pit;

	if (ioctl(vm->fd, KVM_GET_PIT2, &pit) < 0) {
		cv_err("KVM_GET_PIT2: %s", strerror(errno));
		return CV_EFAIL;
	}
	snap_put_bytes(w, &pit, sizeof(pit));
	return 0;
}

static int pit_load(void *dev, struct snap_reader *r)
{
	struct vm *vm = dev;
	struct kvm_pit_state2 pit;

	snap_get_bytes(r, &pit, sizeof(pit));
	if (!snap_reader_ok(r))
		return CV_EINPUT;
	if (ioctl(vm->fd, KVM_SET_PIT2, &pit) < 0) {
		cv_err("restore: KVM_SET_PIT2: %s", strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

/* kvmclock as frozen at the pause (UINT32_MAX flags: the VM had none). */
static int clock_save(void *dev, struct snap_writer *w)
{
	struct vm *vm = dev;

	snap_put_u8(w, vm->clock.flags != UINT32_MAX);
	snap_put_u64(w, vm->clock.clock);
	return 0;
}

static int clock_load(void *dev, struct snap_reader *r)
{
	struct vm *vm = dev;
	bool has = snap_get_bool(r);
	struct kvm_clock_data c = { .clock = snap_get_u64(r) };

	if (!snap_reader_ok(r))
		return CV_EINPUT;
	if (!has)
		return 0;
	c.clock += vm->restore_elapsed_ns;
	if (ioctl(vm->fd, KVM_SET_CLOCK, &c) < 0) {
		cv_err("restore: KVM_SET_CLOCK: %s", strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

/* ---------------------------------------------------------------- disks */

/* The guest's memory holds what it believes is on its disks (page cache,
 * filesystem state): a restore onto a disk that changed since would
 * corrupt it. A disk is known by its inode, size and modification time. */
static void disk_identity(const char *path, struct stat *st)
{
	if (stat(path, st) < 0)
		memset(st, 0, sizeof(*st));
}

static int disks_save(void *dev, struct snap_writer *w)
{
	struct vm *vm = dev;

	snap_put_u32(w, vm->cfg->ndisks);
	for (unsigned i = 0; i < vm->cfg->ndisks; i++) {
		struct stat st;

		disk_identity(vm->cfg->disks[i].path, &st);
		snap_put_u64(w, (uint64_t)st.st_ino);
		snap_put_u64(w, (uint64_t)st.st_size);
		snap_put_u64(w, (uint64_t)st.st_mtim.tv_sec);
		snap_put_u64(w, (uint64_t)st.st_mtim.tv_nsec);
	}
	return 0;
}

static int disks_load(void *dev, struct snap_reader *r)
{
	struct vm *vm = dev;

	if (snap_get_u32(r) != vm->cfg->ndisks)
		snap_reader_fail(r, "another number of disks than the configuration");
	for (unsigned i = 0; i < vm->cfg->ndisks && snap_reader_ok(r); i++) {
		uint64_t ino = snap_get_u64(r), size = snap_get_u64(r), sec = snap_get_u64(r), nsec = snap_get_u64(r);
		struct stat st;

		disk_identity(vm->cfg->disks[i].path, &st);
		if (snap_reader_ok(r) && (ino != (uint64_t)st.st_ino || size != (uint64_t)st.st_size ||
					  sec != (uint64_t)st.st_mtim.tv_sec || nsec != (uint64_t)st.st_mtim.tv_nsec)) {
			cv_err("cannot restore: disk '%s' changed since the snapshot (%s differs)", vm->cfg->disks[i].path,
			       ino != (uint64_t)st.st_ino ? "its inode" : size != (uint64_t)st.st_size ? "its size"
											: "its modification time");
			return CV_EINPUT;
		}
	}
	return snap_reader_ok(r) ? 0 : CV_EINPUT;
}

int vm_state_register_platform(struct vm *vm)
{
	return state_register(&vm->state, "machine", 1, machine_save, machine_load, vm, NULL, NULL) ||
	       state_register(&vm->state, "disks", 1, disks_save, disks_load, vm, NULL, NULL) ||
	       state_register(&vm->state, "irqchip", 1, irqchip_save, irqchip_load, vm, NULL, NULL) ||
	       state_register(&vm->state, "pit", 1, pit_save, pit_load, vm, NULL, NULL);
}

int vm_state_register_clock(struct vm *vm)
{
	return state_register(&vm->state, "kvmclock", 1, clock_save, clock_load, vm, NULL, NULL);
}

/* ---------------------------------------------------------------- create */

/* Lets in-flight requests finish: the vCPUs are parked, so nothing new
 * arrives, but a disk read in flight would still write guest RAM. */
static int drain(struct vm *vm)
{
	double deadline = mono_ms() + DRAIN_TIMEOUT_S * 1000.0;

	for (;;) {
		unsigned busy = 0;

		for (unsigned i = 0; i < vm->ndevs; i++)
			if (!virtio_dev_idle(vm->devs[i].dev))
				busy = i + 1;
		if (!busy)
			return 0;
		if (mono_ms() > deadline) {
			cv_err("cannot snapshot: virtio-%s still has requests in flight after %d s",
			       vm->devs[busy - 1].dev->ops->name, DRAIN_TIMEOUT_S);
			return CV_EFAIL;
		}
		if (event_loop_run_once(&vm->loop, 10)) {
			cv_err("event loop: %s", strerror(errno));
			return CV_EFAIL;
		}
	}
}

int vm_snapshot_create(struct vm *vm, const char *state_path, const char *mem_path, struct vm_snapshot_stats *st)
{
	struct snap_file_writer w;
	struct snap_writer cfg;
	double t0 = mono_ms();
	int rc;

	memset(st, 0, sizeof(*st));
	if (!vm->paused) {
		cv_err("cannot snapshot a running VM: pause it first");
		return CV_EINPUT;
	}
	if ((rc = state_check_coverage(&vm->state, &vm->pio, &vm->mmio, &vm->pci)) || (rc = drain(vm)))
		return rc;
	snap_file_start(&w);
	snap_writer_init(&cfg);
	snap_config_encode(&cfg, vm->cfg);
	snap_file_add(&w, "config", SNAP_CONFIG_VERSION, &cfg);
	snap_writer_free(&cfg);
	rc = state_save_all(&vm->state, &w);
	if (!rc)
		rc = memfile_save(&vm->mem, mem_path, &st->mem_bytes_written);
	if (!rc)
		rc = snap_file_write(&w, state_path);
	st->state_bytes = w.out.len;
	snap_file_writer_free(&w);
	st->pause_to_done_ms = mono_ms() - t0;
	return rc;
}

/* ---------------------------------------------------------------- restore */

int vm_restore_open(struct vm_restore *rs, const char *state_path, const char *mem_path)
{
	struct snap_section *s;
	struct snap_reader r;
	char err[256];

	memset(rs, 0, sizeof(*rs));
	rs->mem_path = mem_path;
	if (snap_file_read(state_path, &rs->file, err, sizeof(err))) {
		cv_err("invalid snapshot '%s': %s", state_path, err);
		return CV_EINPUT;
	}
	if (!(s = snap_file_get(&rs->file, "config"))) {
		cv_err("invalid snapshot '%s': it has no VM configuration", state_path);
		vm_restore_close(rs);
		return CV_EINPUT;
	}
	snap_reader_init(&r, s->data, s->len);
	if (s->version != SNAP_CONFIG_VERSION || snap_config_decode(&r, &rs->config) || snap_reader_left(&r)) {
		cv_err("invalid snapshot '%s': section 'config': %s", state_path,
		       s->version != SNAP_CONFIG_VERSION ? "another version" : r.bad ? r.bad : "stray bytes");
		vm_restore_close(rs);
		return CV_EINPUT;
	}
	return 0;
}

void vm_restore_close(struct vm_restore *rs)
{
	snap_file_free(&rs->file);
}

int vm_restore_memory(struct vm *vm, struct vm_restore *rs)
{
	return memfile_map(&vm->mem, rs->mem_path);
}

int vm_restore_state(struct vm *vm, struct vm_restore *rs)
{
	int rc = state_load_all(&vm->state, &rs->file);

	for (unsigned i = 0; !rc && i < rs->file.n; i++) {
		if (!rs->file.sec[i].used) {
			cv_err("invalid snapshot: section '%s' is unknown to this VM", rs->file.sec[i].id);
			rc = CV_EINPUT;
		}
	}
	for (unsigned i = 0; !rc && i < vm->ndevs; i++)
		rc = virtio_dev_resume(vm->devs[i].dev);
	/* Every restore is a copy of the snapshotted VM: tell the guest. */
	return rc ? rc : vmgenid_changed(&vm->mem, LAYOUT_VMGENID, &vm->pm);
}
