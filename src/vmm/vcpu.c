#include "vmm/vcpu.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/regs.h"
#include "arch/x86/vcpu_state.h"
#include "util/err.h"
#include "vmm/seccomp.h"
#include "vmm/vm.h"

#define SIG_KICK SIGUSR1

static _Thread_local struct kvm_run *current_run;

/* Covers the window between the stop check and KVM_RUN: KVM returns at
 * once when immediate_exit is set. */
static void on_kick(int sig)
{
	(void)sig;
	if (current_run)
		current_run->immediate_exit = 1;
}

int vcpu_signals_init(void)
{
	struct sigaction sa = { .sa_handler = on_kick };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIG_KICK, &sa, NULL) < 0) {
		cv_err("sigaction: %s", strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

int vcpu_create(struct vcpu *c, struct vm *vm, unsigned index, uint64_t entry, uint64_t boot_params)
{
	memset(c, 0, sizeof(*c));
	c->vm = vm;
	c->index = index;
	c->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (c->fd < 0) {
		cv_err("KVM_CREATE_VCPU %u: %s", index, strerror(errno));
		return CV_EFAIL;
	}
	c->run = mmap(NULL, vm->kvm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		cv_err("mmap of vCPU %u state: %s", index, strerror(errno));
		return CV_EFAIL;
	}
	cpuid_for_vcpu(&vm->kvm->cpuid, &c->cpuid, index, vm->cfg->cpus, vm->cfg->smt ? 2 : 1, vm->kvm->pvm);
	cpu_template_apply(&vm->cfg->cpu_template, &c->cpuid);
	if (ioctl(c->fd, KVM_SET_CPUID2, &c->cpuid) < 0) {
		cv_err("KVM_SET_CPUID2 on vCPU %u: %s", index, strerror(errno));
		return CV_EFAIL;
	}
	if (x86_regs_common(c->fd))
		return CV_EFAIL;
	return index == 0 ? x86_regs_boot_cpu(c->fd, entry, boot_params) : 0;
}

static void dump_regs(struct vcpu *c)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(c->fd, KVM_GET_REGS, &r) < 0 || ioctl(c->fd, KVM_GET_SREGS, &s) < 0)
		return;
	fprintf(stderr,
		"cellvm: vCPU %u: rip=%016llx rsp=%016llx rflags=%08llx rax=%016llx\n"
		"cellvm: vCPU %u: cs=%04x cr0=%08llx cr2=%016llx cr3=%016llx cr4=%08llx efer=%llx\n",
		c->index, r.rip, r.rsp, r.rflags, r.rax, c->index, s.cs.selector, s.cr0, s.cr2, s.cr3, s.cr4,
		s.efer);
}

static void fail(struct vcpu *c, const char *why, unsigned long long detail)
{
	cv_err("vCPU %u: %s (%llu)", c->index, why, detail);
	dump_regs(c);
	vm_request_exit(c->vm, VM_EXIT_FAILED);
}

static void handle_io(struct vcpu *c)
{
	struct kvm_run *run = c->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
		bus_access(&c->vm->pio, run->io.port, data, run->io.size, write);
}

static void handle_system_event(struct vcpu *c)
{
	switch (c->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_exit(c->vm, VM_EXIT_POWEROFF);
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_exit(c->vm, VM_EXIT_RESET);
		break;
	default:
		fail(c, "guest crash event", c->run->system_event.type);
		break;
	}
}

static void handle_exit(struct vcpu *c)
{
	struct kvm_run *run = c->run;

	atomic_fetch_add_explicit(run->exit_reason == KVM_EXIT_IO	  ? &c->exits_io
				  : run->exit_reason == KVM_EXIT_MMIO ? &c->exits_mmio
								      : &c->exits_other,
				  1, memory_order_relaxed);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(c);
		break;
	case KVM_EXIT_MMIO:
		bus_access(&c->vm->mmio, run->mmio.phys_addr, run->mmio.data,
			   run->mmio.len > 8 ? 8 : run->mmio.len, run->mmio.is_write);
		break;
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		handle_system_event(c);
		break;
	case KVM_EXIT_SHUTDOWN:
		fail(c, "triple fault", 0);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		fail(c, "KVM entry failed, hardware reason", run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		fail(c, "KVM internal error, suberror", run->internal.suberror);
		break;
	default:
		fail(c, "unexpected KVM exit reason", run->exit_reason);
		break;
	}
}

/* --cpus N,pin=LIST: vCPU i runs on the i-th host CPU of LIST (round robin). */
static int pin_thread(struct vcpu *c)
{
	const struct vm_config *cfg = c->vm->cfg;
	cpu_set_t set;
	int host;

	if (!cfg->npin)
		return 0;
	host = cfg->pin[c->index % cfg->npin];
	CPU_ZERO(&set);
	CPU_SET(host, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		cv_err("cannot pin vCPU %u to host CPU %d: %s", c->index, host, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *c = arg;
	sigset_t kick;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", c->index);
	pthread_setname_np(pthread_self(), name);
	if (pin_thread(c) || seccomp_enter(SECCOMP_VCPU, name)) {
		vm_request_exit(c->vm, VM_EXIT_FAILED);
		return NULL;
	}
	current_run = c->run;
	sigemptyset(&kick);
	sigaddset(&kick, SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

	if (c->index == 0 && getenv("CELLVM_BOOT_TRACE")) {
		struct timespec t;

		/* For benchmarks: the host's monotonic clock as the guest starts. */
		clock_gettime(CLOCK_MONOTONIC, &t);
		fprintf(stderr, "cellvm: boot-trace: first-kvm-run %lld.%09ld guest-ram %p+%llu\n", (long long)t.tv_sec,
			t.tv_nsec, (void *)c->vm->mem.host, (unsigned long long)c->vm->mem.size);
	}
	while (vm_running(c->vm)) {
		if (atomic_load(&c->vm->pause_req)) {
			vm_park(c->vm);
			continue;
		}
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				c->run->immediate_exit = 0;
				if (atomic_load(&c->vm->throttle_pct))
					vm_throttle_nap(c->vm, &c->nap_at);
				vm_quota_nap(c->vm, &c->quota_cpu_ns);
				continue;
			}
			cv_err("vCPU %u: KVM_RUN: %s", c->index, strerror(errno));
			dump_regs(c);
			vm_request_exit(c->vm, VM_EXIT_FAILED);
			break;
		}
		handle_exit(c);
	}
	return NULL;
}

#define MSR_IA32_TSC 0x10

/* KVM_GET_MSRS / KVM_SET_MSRS of the TSC alone; returns the ioctl's result
 * (the number of MSRs done). */
static int tsc_msr(struct vcpu *c, unsigned long req, uint64_t *val)
{
	_Alignas(struct kvm_msrs) uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)] = { 0 };
	struct kvm_msrs *m = (struct kvm_msrs *)buf;
	int rc;

	m->nmsrs = 1;
	m->entries[0].index = MSR_IA32_TSC;
	m->entries[0].data = *val;
	rc = ioctl(c->fd, req, m);
	*val = m->entries[0].data;
	return rc;
}

void vcpu_freeze_time(struct vcpu *c)
{
	/* EINVAL when the guest has no kvmclock yet: nothing to tell it. */
	ioctl(c->fd, KVM_KVMCLOCK_CTRL, 0);
	c->tsc = 0;
	c->tsc_saved = tsc_msr(c, KVM_GET_MSRS, &c->tsc) == 1;
}

void vcpu_thaw_time(struct vcpu *c)
{
	if (c->tsc_saved && tsc_msr(c, KVM_SET_MSRS, &c->tsc) != 1)
		cv_warn("vCPU %u: cannot restore its TSC; the guest's clock jumps by the pause", c->index);
	c->tsc_saved = false;
}

int vcpu_start(struct vcpu *c)
{
	int rc = pthread_create(&c->thread, NULL, vcpu_thread, c);

	if (rc) {
		cv_err("cannot start vCPU %u thread: %s", c->index, strerror(rc));
		return CV_EFAIL;
	}
	c->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *c)
{
	if (c->started)
		pthread_kill(c->thread, SIG_KICK);
}

void vcpu_join(struct vcpu *c)
{
	if (c->started)
		pthread_join(c->thread, NULL);
	c->started = false;
}

void vcpu_destroy(struct vcpu *c)
{
	if (c->run)
		munmap(c->run, c->vm->kvm->run_size);
	if (c->fd >= 0)
		close(c->fd);
	c->run = NULL;
	c->fd = -1;
}

int vcpu_save(void *dev, struct snap_writer *w)
{
	struct vcpu *c = dev;
	struct x86_vcpu_state *s = malloc(sizeof(*s));
	int rc;

	if (!s) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	rc = x86_vcpu_get(c->vm->kvm->fd, c->vm->fd, c->fd, &c->cpuid, c->tsc_saved ? &c->tsc : NULL, s);
	if (!rc)
		x86_vcpu_encode(w, s);
	x86_vcpu_state_free(s);
	free(s);
	return rc;
}

int vcpu_load(void *dev, struct snap_reader *r)
{
	struct vcpu *c = dev;
	struct x86_vcpu_state *s = malloc(sizeof(*s));
	char err[256];
	int rc = CV_EINPUT, khz;

	if (!s) {
		snap_reader_fail(r, "out of memory");
		return CV_EFAIL;
	}
	if (x86_vcpu_decode(r, s)) {
		free(s);
		return CV_EINPUT;
	}
	/* c->cpuid is what this host would give the vCPU. */
	if (x86_cpuid_check(&s->cpuid, &c->cpuid, err, sizeof(err))) {
		cv_err("cannot restore: %s", err);
		goto out;
	}
	rc = CV_EFAIL;
	if (ioctl(c->fd, KVM_SET_CPUID2, &s->cpuid) < 0) {
		cv_err("restore: KVM_SET_CPUID2 on vCPU %u: %s", c->index, strerror(errno));
		goto out;
	}
	c->cpuid = s->cpuid; /* a snapshot of this VM sees the same */
	khz = ioctl(c->fd, KVM_GET_TSC_KHZ, 0);
	if (s->tsc_khz && khz > 0 && (uint32_t)khz != s->tsc_khz &&
	    ioctl(c->fd, KVM_SET_TSC_KHZ, (unsigned long)s->tsc_khz) < 0)
		cv_warn("vCPU %u: the guest's TSC ran at %u kHz, this host's at %d kHz and KVM cannot scale it; "
			"guest time may drift", c->index, s->tsc_khz, khz);
	x86_vcpu_advance_tsc(s, c->vm->restore_elapsed_ns);
	rc = x86_vcpu_set(c->fd, s);
out:
	x86_vcpu_state_free(s);
	free(s);
	return rc;
}
