#include "vmm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/regs.h"
#include "arch/x86/vcpu_state.h"
#include "hw/vmgenid.h"
#include "util/err.h"
#include "virtio/console.h"

static void on_quota_tick(void *opaque);

static int vm_ioctl(struct vm *vm, unsigned long req, unsigned long arg, const char *name)
{
	if (ioctl(vm->fd, req, arg) < 0) {
		cv_err("%s: %s", name, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

static void set_irq(void *ctx, unsigned irq, int level)
{
	struct vm *vm = ctx;
	struct kvm_irq_level l = { .irq = irq, .level = level };

	ioctl(vm->fd, KVM_IRQ_LINE, &l);
}

static void power_event(void *ctx, enum power_event ev)
{
	vm_request_exit(ctx, ev == POWER_OFF ? VM_EXIT_POWEROFF : VM_EXIT_RESET);
}

static time_t host_now(void)
{
	return time(NULL);
}

static int create_vm(struct vm *vm)
{
	vm->fd = ioctl(vm->kvm->fd, KVM_CREATE_VM, 0UL);
	if (vm->fd < 0) {
		cv_err("KVM_CREATE_VM: %s", strerror(errno));
		return CV_EFAIL;
	}
	if (vm_ioctl(vm, KVM_SET_TSS_ADDR, LAYOUT_TSS, "KVM_SET_TSS_ADDR"))
		return CV_EFAIL;
	if (ioctl(vm->kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
		uint64_t ident = LAYOUT_IDENTITY_MAP;

		if (vm_ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, (unsigned long)&ident, "KVM_SET_IDENTITY_MAP_ADDR"))
			return CV_EFAIL;
	}
	return 0;
}

/* After the memory slots: once an in-kernel irqchip exists, every slot
 * change waits for a grace period of KVM's SRCU (~6 ms measured here,
 * the largest part of a restore), before it a slot costs ~0.1 ms. */
static int create_irqchips(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	if (vm_ioctl(vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP") ||
	    vm_ioctl(vm, KVM_CREATE_PIT2, (unsigned long)&pit, "KVM_CREATE_PIT2"))
		return CV_EFAIL;
	return 0;
}

static int add_devices(struct vm *vm, int console_out)
{
	if (serial_init(&vm->serial, console_out, SERIAL_COM1_IRQ, set_irq, vm))
		return CV_EFAIL;
	vm->serial_ok = true;
	if (rtc_init(&vm->rtc, host_now))
		return CV_EFAIL;
	vm->rtc_ok = true;
	pm_init(&vm->pm, power_event, vm);
	pm_set_sci(&vm->pm, set_irq, vm);
	if (i8042_init(&vm->i8042, power_event, set_irq, vm))
		return CV_EFAIL;
	vm->i8042_ok = true;
	if (bus_register(&vm->pio, SERIAL_COM1_PORT, 8, serial_io, &vm->serial) ||
	    bus_register(&vm->pio, RTC_PORT_INDEX, 2, rtc_io, &vm->rtc) ||
	    bus_register(&vm->pio, I8042_PORT_DATA, 1, i8042_io, &vm->i8042) ||
	    bus_register(&vm->pio, I8042_PORT_CMD, 1, i8042_io, &vm->i8042) ||
	    bus_register(&vm->pio, PM_PORT_PM1_EVT, PM_PM1_EVT_LEN, pm_io, &vm->pm) ||
	    bus_register(&vm->pio, PM_PORT_PM1_CNT, PM_PM1_CNT_LEN, pm_io, &vm->pm) ||
	    bus_register(&vm->pio, PM_PORT_RESET, 1, pm_io, &vm->pm) ||
	    bus_register(&vm->pio, PM_PORT_POWEROFF, 1, pm_io, &vm->pm) ||
	    bus_register(&vm->pio, PM_PORT_GPE0, PM_GPE0_LEN, pm_io, &vm->pm)) {
		cv_err("platform device ports overlap");
		return CV_EFAIL;
	}
	if (state_register(&vm->state, "serial", 1, serial_save, serial_load, &vm->serial, &vm->serial, NULL) ||
	    state_register(&vm->state, "rtc", 1, rtc_save, rtc_load, &vm->rtc, &vm->rtc, NULL) ||
	    state_register(&vm->state, "i8042", 1, i8042_save, i8042_load, &vm->i8042, &vm->i8042, NULL) ||
	    state_register(&vm->state, "pm", 1, pm_save, pm_load, &vm->pm, &vm->pm, NULL) ||
	    state_register(&vm->state, "pci-host", 1, pci_host_save, pci_host_load, &vm->pci, &vm->pci,
			   &vm->pci.bridge))
		return CV_EFAIL;
	return 0;
}

/* The park condition waits on the monotonic clock (pause has a deadline). */
static int park_init(struct vm *vm)
{
	pthread_condattr_t attr;
	int rc = pthread_condattr_init(&attr);

	if (!rc && !(rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)) &&
	    !(rc = pthread_mutex_init(&vm->park_lock, NULL))) {
		if ((rc = pthread_cond_init(&vm->park_cond, &attr)))
			pthread_mutex_destroy(&vm->park_lock);
	}
	pthread_condattr_destroy(&attr);
	if (rc) {
		cv_err("cannot set up vCPU pausing: %s", strerror(rc));
		return CV_EFAIL;
	}
	vm->park_ok = true;
	return 0;
}

/* Wakes parked vCPUs and pause waiters to re-check their conditions. */
static void park_wake(struct vm *vm)
{
	if (!vm->park_ok)
		return;
	pthread_mutex_lock(&vm->park_lock);
	pthread_cond_broadcast(&vm->park_cond);
	pthread_mutex_unlock(&vm->park_lock);
}

int vm_create(struct vm *vm, struct kvm *kvm, const struct vm_config *cfg, int console_out,
	      struct vm_restore *restore)
{
	struct boot_info boot;
	uint64_t rsdp;
	int rc;

	memset(vm, 0, sizeof(*vm));
	vm->kvm = kvm;
	vm->cfg = cfg;
	vm->fd = -1;
	vm->event_fd = -1;
	vm->console_out = console_out;
	atomic_init(&vm->exit, VM_EXIT_NONE);
	atomic_init(&vm->pause_req, false);
	atomic_init(&vm->throttle_pct, 0);
	if ((rc = park_init(vm)))
		return rc;
	if (cfg->cpus > kvm->max_vcpus) {
		vm_destroy(vm);
		cv_err("invalid --cpus '%u': this host's KVM allows at most %u", cfg->cpus, kvm->max_vcpus);
		return CV_EINPUT;
	}
	vm->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->event_fd < 0) {
		cv_err("eventfd: %s", strerror(errno));
		vm_destroy(vm);
		return CV_EFAIL;
	}
	rc = vm_state_register_platform(vm);
	if (!rc)
		rc = create_vm(vm);
	if (!rc)
		rc = guest_mem_init(&vm->mem, vm->fd, cfg->memory, LAYOUT_MMIO_HOLE, &cfg->ram);
	mem_chain_init(&vm->chain, guest_mem_bitmap_words(&vm->mem));
	/* From here on every guest write to RAM counts for the next diff
	 * snapshot (the restore's own writes below are not the guest's). */
	if (!rc && cfg->track_dirty_pages)
		rc = dirty_log_start(&vm->dirty, &vm->mem);
	if (!rc)
		rc = create_irqchips(vm);
	if (!rc && restore)
		rc = vm_restore_memory(vm, restore);
	if (!rc && !(rc = event_loop_init(&vm->loop)))
		vm->loop_ok = true;
	if (!rc && cfg->cpu_quota && !(rc = event_timer_init(&vm->quota_tick, &vm->loop, on_quota_tick, vm))) {
		cpu_quota_init(&vm->quota, cfg->cpu_quota);
		vm->quota_ok = true;
	}
	if (!rc && !(rc = irq_router_init(&vm->irq, vm->fd)))
		vm->irq_ok = true;
	if (!rc && !(rc = pci_host_init(&vm->pci, &vm->pio, &vm->mmio, LAYOUT_PCI_ECAM, LAYOUT_PCI_WINDOW,
					LAYOUT_PCI_WINDOW_SIZE)))
		vm->pci_ok = true;
	if (!rc && strlen(cfg->cmdline) >= sizeof(vm->cmdline)) {
		cv_err("kernel command line is longer than %zu bytes", sizeof(vm->cmdline) - 1);
		rc = CV_EINPUT;
	}
	if (!rc) {
		strcpy(vm->cmdline, cfg->cmdline);
		rc = devices_create(vm, vm->cmdline, sizeof(vm->cmdline));
	}
	/* A restored VM's RAM already holds its tables and kernel. */
	memset(&boot, 0, sizeof(boot));
	if (!rc && !restore)
		rc = acpi_build(&vm->mem, cfg->cpus, &rsdp);
	if (!rc && !restore)
		rc = vmgenid_new(&vm->mem, LAYOUT_VMGENID);
	if (!rc && !restore)
		rc = x86_boot_tables(&vm->mem);
	if (!rc && !restore)
		rc = x86_boot_load(&vm->mem, cfg->kernel, cfg->initrd, vm->cmdline, rsdp, &boot);
	if (!rc)
		rc = add_devices(vm, console_out);
	if (!rc && !(vm->vcpus = calloc(cfg->cpus, sizeof(*vm->vcpus)))) {
		cv_err("out of memory");
		rc = CV_EFAIL;
	}
	for (unsigned i = 0; !rc && i < cfg->cpus; i++) {
		char id[SNAP_ID_MAX];

		rc = vcpu_create(&vm->vcpus[i], vm, i, boot.entry, boot.boot_params);
		vm->nvcpus = i + 1;
		snprintf(id, sizeof(id), "vcpu%u", i);
		if (!rc)
			rc = state_register(&vm->state, id, VCPU_STATE_VERSION, vcpu_save, vcpu_load, &vm->vcpus[i],
					    NULL, NULL);
	}
	if (!rc)
		rc = vm_state_register_clock(vm);
	if (!rc && restore)
		rc = vm_restore_state(vm, restore);
	if (rc)
		vm_destroy(vm);
	return rc;
}

int vm_start(struct vm *vm)
{
	if (vm->quota_ok)
		event_timer_arm(&vm->quota_tick, CPU_QUOTA_TICK_NS);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vcpu_start(&vm->vcpus[i])) {
			vm_request_exit(vm, VM_EXIT_FAILED);
			return CV_EFAIL;
		}
	}
	return 0;
}

void vm_request_exit(struct vm *vm, enum vm_exit why)
{
	int none = VM_EXIT_NONE;
	uint64_t one = 1;

	if (atomic_compare_exchange_strong(&vm->exit, &none, (int)why)) {
		while (write(vm->event_fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
		park_wake(vm);
	}
}

size_t vm_console_space(struct vm *vm)
{
	return vm->console_dev ? virtio_console_space(vm->console_dev) : serial_rx_space(&vm->serial);
}

size_t vm_console_input(struct vm *vm, const uint8_t *buf, size_t len)
{
	return vm->console_dev ? virtio_console_receive(vm->console_dev, buf, len)
			       : serial_receive(&vm->serial, buf, len);
}

bool vm_running(struct vm *vm)
{
	return atomic_load(&vm->exit) == VM_EXIT_NONE;
}

#define PAUSE_TIMEOUT_S 5

void vm_park(struct vm *vm)
{
	pthread_mutex_lock(&vm->park_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->park_cond);
	while (atomic_load(&vm->pause_req) && vm_running(vm))
		pthread_cond_wait(&vm->park_cond, &vm->park_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->park_lock);
}

static void unpark(struct vm *vm)
{
	pthread_mutex_lock(&vm->park_lock);
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->park_cond);
	pthread_mutex_unlock(&vm->park_lock);
}

static double mono_ms(const struct timespec *t)
{
	return (double)t->tv_sec * 1e3 + (double)t->tv_nsec / 1e6;
}

void vm_throttle(struct vm *vm, unsigned pct)
{
	atomic_store(&vm->throttle_pct, pct > 99 ? 99 : pct);
	if (!pct)
		park_wake(vm);
}

void vm_throttle_kick(struct vm *vm)
{
	if (atomic_load(&vm->throttle_pct))
		for (unsigned i = 0; i < vm->nvcpus; i++)
			vcpu_kick(&vm->vcpus[i]);
}

/* Sleeps on the park condition until `until`, or earlier for a pause, the
 * VM's end, or (with while_set) that flag dropping to 0. */
static void nap(struct vm *vm, const struct timespec *until, atomic_uint *while_set)
{
	pthread_mutex_lock(&vm->park_lock);
	while ((!while_set || atomic_load(while_set)) && !atomic_load(&vm->pause_req) && vm_running(vm))
		if (pthread_cond_timedwait(&vm->park_cond, &vm->park_lock, until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&vm->park_lock);
}

static struct timespec after_ns(struct timespec t, long long ns)
{
	t.tv_sec += (time_t)(ns / 1000000000LL);
	t.tv_nsec += (long)(ns % 1000000000LL);
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

void vm_throttle_nap(struct vm *vm, double *next)
{
	unsigned pct = atomic_load(&vm->throttle_pct);
	struct timespec now, until;

	clock_gettime(CLOCK_MONOTONIC, &now);
	/* Kicks come every slice; one nap per slice of running. */
	if (!pct || mono_ms(&now) < *next)
		return;
	until = after_ns(now, (long long)VM_THROTTLE_SLICE_MS * 1000000LL * pct / (100 - pct));
	nap(vm, &until, &vm->throttle_pct);
	clock_gettime(CLOCK_MONOTONIC, &now);
	*next = mono_ms(&now) + VM_THROTTLE_SLICE_MS;
}

static void on_quota_tick(void *opaque)
{
	struct vm *vm = opaque;

	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	event_timer_arm(&vm->quota_tick, CPU_QUOTA_TICK_NS);
}

void vm_quota_nap(struct vm *vm, int64_t *cpu_ns)
{
	struct timespec now, until;
	int64_t wait;

	if (!vm->quota_ok)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	wait = cpu_quota_charge(&vm->quota, cpu_ns, (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec);
	if (wait) {
		until = after_ns(now, wait);
		nap(vm, &until, NULL);
	}
}

int vm_pause(struct vm *vm)
{
	struct timespec deadline;
	bool all;

	if (vm->paused)
		return 0;
	atomic_store(&vm->pause_req, true);
	park_wake(vm); /* a throttled vCPU stops napping */
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += PAUSE_TIMEOUT_S;
	pthread_mutex_lock(&vm->park_lock);
	while (vm->parked < vm->nvcpus && vm_running(vm))
		if (pthread_cond_timedwait(&vm->park_cond, &vm->park_lock, &deadline) == ETIMEDOUT)
			break;
	all = vm->parked == vm->nvcpus && vm_running(vm);
	pthread_mutex_unlock(&vm->park_lock);
	if (!all) {
		unpark(vm);
		cv_err("cannot pause: %s", vm_running(vm) ? "a vCPU did not stop within 5 s" : "the VM is stopping");
		return CV_EFAIL;
	}
	/* Every vCPU is out of KVM_RUN: freeze what the guest reads time
	 * from. kvmclock is per VM; the TSC, which Linux prefers as its
	 * clocksource when it is invariant, is per vCPU. */
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_freeze_time(&vm->vcpus[i]);
	if (ioctl(vm->fd, KVM_GET_CLOCK, &vm->clock) < 0)
		vm->clock.flags = UINT32_MAX; /* no kvmclock to restore */
	vm->paused = true;
	return 0;
}

int vm_resume(struct vm *vm)
{
	if (!vm->paused)
		return 0;
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_thaw_time(&vm->vcpus[i]);
	if (vm->clock.flags != UINT32_MAX) {
		/* flags 0: the saved value as is, not advanced by the host's
		 * elapsed time (KVM_CLOCK_REALTIME would do that). */
		vm->clock.flags = 0;
		if (ioctl(vm->fd, KVM_SET_CLOCK, &vm->clock) < 0)
			cv_warn("KVM_SET_CLOCK: %s; the guest's kvmclock jumps by the pause", strerror(errno));
	}
	vm->paused = false;
	unpark(vm);
	return 0;
}

void vm_stop(struct vm *vm)
{
	vm_request_exit(vm, VM_EXIT_STOPPED);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_join(&vm->vcpus[i]);
}

void vm_destroy(struct vm *vm)
{
	vm_stop(vm);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->nvcpus = 0;
	devices_destroy(vm);
	if (vm->pci_ok)
		pci_host_destroy(&vm->pci);
	if (vm->irq_ok)
		irq_router_destroy(&vm->irq);
	if (vm->quota_ok) {
		event_timer_destroy(&vm->quota_tick);
		cpu_quota_destroy(&vm->quota);
	}
	vm->quota_ok = false;
	if (vm->loop_ok)
		event_loop_destroy(&vm->loop);
	vm->irq_ok = vm->loop_ok = vm->pci_ok = false;
	if (vm->i8042_ok)
		i8042_destroy(&vm->i8042);
	vm->i8042_ok = false;
	if (vm->serial_ok)
		serial_destroy(&vm->serial);
	if (vm->rtc_ok)
		rtc_destroy(&vm->rtc);
	vm->serial_ok = vm->rtc_ok = false;
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
	guest_mem_free(&vm->mem);
	dirty_log_free(&vm->dirty);
	mem_chain_free(&vm->chain);
	if (vm->event_fd >= 0)
		close(vm->event_fd);
	vm->event_fd = -1;
	if (vm->park_ok) {
		pthread_cond_destroy(&vm->park_cond);
		pthread_mutex_destroy(&vm->park_lock);
	}
	vm->park_ok = false;
}
