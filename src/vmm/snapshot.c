#include "vmm/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "arch/x86/layout.h"
#include "hw/vmgenid.h"
#include "snapshot/memfile.h"
#include "virtio/net.h"
#include "vmm/disks.h"
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

int vm_state_register_platform(struct vm *vm)
{
	return state_register(&vm->state, "machine", 1, machine_save, machine_load, vm, NULL, NULL) ||
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
int vm_drain(struct vm *vm)
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

static void add_section(struct snap_file_writer *w, const char *id, uint32_t version, struct snap_writer *data)
{
	snap_file_add(w, id, version, data);
	snap_writer_free(data);
}

static int check_diff(const struct vm *vm)
{
	if (!vm->dirty.on) {
		cv_err("cannot take a Diff snapshot: the VM does not track dirty pages (track_dirty_pages)");
		return CV_EINPUT;
	}
	if (!vm->chain.n) {
		cv_err("cannot take a Diff snapshot: nothing to diff against yet, take a Full snapshot first");
		return CV_EINPUT;
	}
	return 0;
}

int vm_state_build(struct vm *vm, const struct disk_layers *dl, struct snap_file_writer *w)
{
	struct snap_writer sec;

	snap_file_start(w);
	snap_writer_init(&sec);
	snap_config_encode(&sec, vm->cfg);
	add_section(w, "config", SNAP_CONFIG_VERSION, &sec);
	snap_writer_init(&sec);
	vm_disks_encode(vm, dl, &sec);
	add_section(w, DISKS_SECTION, DISKS_VERSION, &sec);
	snap_writer_init(&sec);
	vm_disks_encode_queues(vm->cfg, &sec);
	add_section(w, DISK_QUEUES_SECTION, DISK_QUEUES_VERSION, &sec);
	return state_save_all(&vm->state, w);
}

int vm_snapshot_create(struct vm *vm, const char *state_path, const char *mem_path, bool diff,
		       const char *disk_layer, struct vm_snapshot_stats *st)
{
	struct disk_layers dl = { .name = disk_layer };
	struct snap_file_writer w;
	struct snap_writer sec;
	struct mem_chain chain;
	double t0 = mono_ms();
	int rc;

	memset(st, 0, sizeof(*st));
	if (!vm->paused) {
		cv_err("cannot snapshot a running VM: pause it first");
		return CV_EINPUT;
	}
	if ((diff && (rc = check_diff(vm))) || (rc = state_check_coverage(&vm->state, &vm->pio, &vm->mmio, &vm->pci)) ||
	    (rc = vm_drain(vm)) || (rc = dirty_log_collect(&vm->dirty, &vm->mem)) || (rc = vm_disks_freeze(vm, &dl)))
		return rc;
	rc = vm_state_build(vm, &dl, &w);
	if (!rc)
		rc = memfile_save(&vm->mem, mem_path, diff ? vm->dirty.pending : NULL, &st->mem_bytes_written);
	/* The new chain is the old one plus this layer (a full layer alone). */
	mem_chain_init(&chain, vm->chain.words);
	for (unsigned i = 0; !rc && diff && i < vm->chain.n; i++)
		rc = mem_chain_copy_layer(&chain, &vm->chain.layer[i]);
	if (!rc)
		rc = mem_chain_push(&chain, mem_path, diff ? vm->dirty.pending : NULL);
	if (!rc) {
		snap_writer_init(&sec);
		mem_chain_encode(&chain, &sec);
		add_section(&w, MEMCHAIN_SECTION, MEMCHAIN_VERSION, &sec);
		rc = snap_file_write(&w, state_path);
	}
	if (!rc) {
		mem_chain_free(&vm->chain);
		vm->chain = chain;
		dirty_log_clear(&vm->dirty, &vm->mem);
	} else {
		mem_chain_free(&chain);
		vm_disks_thaw(vm, &dl);
	}
	st->state_bytes = w.out.len;
	snap_file_writer_free(&w);
	st->pause_to_done_ms = mono_ms() - t0;
	return rc;
}

/* ---------------------------------------------------------------- restore */

/* Finds section id of a version in [min, version]; reports its absence. */
static int find_versions(struct vm_restore *rs, const char *state_path, const char *id, uint32_t min,
			 uint32_t version, struct snap_reader *r, uint32_t *found)
{
	struct snap_section *s = snap_file_get(&rs->file, id);

	if (!s || s->version < min || s->version > version) {
		cv_err("invalid snapshot '%s': %s section '%s'", state_path, s ? "another version of" : "no", id);
		return CV_EINPUT;
	}
	snap_reader_init(r, s->data, s->len);
	*found = s->version;
	return 0;
}

static int find_section(struct vm_restore *rs, const char *state_path, const char *id, uint32_t version,
			struct snap_reader *r)
{
	uint32_t found;

	return find_versions(rs, state_path, id, version, version, r, &found);
}

/* Reports a section that did not decode or has bytes left over. */
static int section_done(const char *state_path, const char *id, struct snap_reader *r, int decoded)
{
	if (!decoded && !snap_reader_left(r))
		return 0;
	cv_err("invalid snapshot '%s': section '%s': %s", state_path, id, r->bad ? r->bad : "stray bytes");
	return CV_EINPUT;
}

/* Decodes the configuration, checks the disks and (unless the memory
 * comes with the state, rs->ram) the memory chain of rs->file. */
static int restore_decode(struct vm_restore *rs, const char *name)
{
	struct snap_reader r;
	uint32_t version;
	int rc;

	rc = find_versions(rs, name, "config", SNAP_CONFIG_MIN_VERSION, SNAP_CONFIG_VERSION, &r, &version);
	if (!rc)
		rc = section_done(name, "config", &r, snap_config_decode(&r, version, &rs->config));
	/* Before the VM opens (and locks) its disks. */
	if (!rc)
		rc = find_section(rs, name, DISKS_SECTION, DISKS_VERSION, &r);
	if (!rc) {
		int bad = vm_disks_check(&rs->config.cfg, rs->migrated, &r);

		/* A disk that changed is reported already; a bad section is not. */
		rc = bad && snap_reader_ok(&r) ? bad : section_done(name, DISKS_SECTION, &r, bad);
	}
	if (!rc && !snap_file_get(&rs->file, DISK_QUEUES_SECTION))
		rc = vm_disks_decode_queues(&rs->config.cfg, NULL);
	else if (!rc && !(rc = find_section(rs, name, DISK_QUEUES_SECTION, DISK_QUEUES_VERSION, &r)))
		rc = section_done(name, DISK_QUEUES_SECTION, &r, vm_disks_decode_queues(&rs->config.cfg, &r));
	if (!rc && !rs->ram)
		rc = find_section(rs, name, MEMCHAIN_SECTION, MEMCHAIN_VERSION, &r);
	if (!rc && !rs->ram) {
		struct guest_mem m;

		guest_mem_layout(&m, rs->config.cfg.memory, LAYOUT_MMIO_HOLE);
		mem_chain_init(&rs->chain, guest_mem_bitmap_words(&m));
		rc = section_done(name, MEMCHAIN_SECTION, &r, mem_chain_decode(&r, &rs->chain));
	}
	if (rc)
		vm_restore_close(rs);
	return rc;
}

int vm_restore_open(struct vm_restore *rs, const char *state_path, const char *mem_path)
{
	char err[256];

	memset(rs, 0, sizeof(*rs));
	rs->mem_path = mem_path;
	if (snap_file_read(state_path, &rs->file, err, sizeof(err))) {
		cv_err("invalid snapshot '%s': %s", state_path, err);
		return CV_EINPUT;
	}
	return restore_decode(rs, state_path);
}

int vm_restore_open_buf(struct vm_restore *rs, const uint8_t *buf, size_t len, void *ram, uint64_t ram_size)
{
	char err[256];
	int rc;

	memset(rs, 0, sizeof(*rs));
	rs->ram = ram;
	rs->migrated = true;
	if (snap_file_parse(buf, len, &rs->file, err, sizeof(err))) {
		cv_err("invalid VM state: %s", err);
		return CV_EINPUT;
	}
	if ((rc = restore_decode(rs, "(incoming)")))
		return rc;
	if (rs->config.cfg.memory != ram_size) {
		cv_err("invalid VM state: %llu MiB of RAM, but %llu MiB came", (unsigned long long)(rs->config.cfg.memory >> 20),
		       (unsigned long long)(ram_size >> 20));
		vm_restore_close(rs);
		return CV_EINPUT;
	}
	return 0;
}

void vm_restore_close(struct vm_restore *rs)
{
	snap_file_free(&rs->file);
	mem_chain_free(&rs->chain);
}

/* The full layer is mapped (its pages shared, loaded on first touch);
 * each diff layer's pages are read over it, oldest first, the last from
 * the memory file given to the restore. */
int vm_restore_memory(struct vm *vm, struct vm_restore *rs)
{
	struct mem_chain *c = &rs->chain;
	int rc = 0;

	if (rs->ram) {
		/* The pages move under the VM's mapping: nothing is copied. */
		if (mremap(rs->ram, vm->mem.size, vm->mem.size, MREMAP_MAYMOVE | MREMAP_FIXED, vm->mem.host) ==
		    MAP_FAILED) {
			cv_err("cannot move the received RAM into the VM: %s", strerror(errno));
			return CV_EFAIL;
		}
		rs->ram = NULL;
		return 0;
	}
	for (unsigned i = 0; !rc && i + 1 < c->n; i++)
		rc = mem_chain_check(c, i);
	if (!rc)
		rc = memfile_map(&vm->mem, c->n > 1 ? c->layer[0].path : rs->mem_path);
	for (unsigned i = 1; !rc && i < c->n; i++)
		rc = memfile_apply(&vm->mem, i + 1 < c->n ? c->layer[i].path : rs->mem_path, c->layer[i].pages);
	/* The restored VM's next diff builds on this chain, whose last layer
	 * is the file it was restored from, wherever that lies now. */
	if (!rc && !(rc = mem_chain_identify(&c->layer[c->n - 1], rs->mem_path))) {
		mem_chain_free(&vm->chain);
		vm->chain = *c;
		mem_chain_init(c, c->words);
	}
	return rc;
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
	/* The guest's NICs are on new ports (taps, a new host): say so. */
	for (unsigned i = 0; !rc && i < vm->ndevs; i++)
		if (!strcmp(vm->devs[i].dev->ops->name, "net"))
			virtio_net_announce(vm->devs[i].dev);
	/* Every restore is a copy of the snapshotted VM: tell the guest. A
	 * migrated VM is the same VM, which goes on elsewhere. */
	return rc || rs->migrated ? rc : vmgenid_changed(&vm->mem, LAYOUT_VMGENID, &vm->pm);
}
