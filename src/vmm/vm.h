/* A virtual machine: KVM VM, guest RAM, platform devices and vCPUs. */
#ifndef CELLVM_VMM_VM_H
#define CELLVM_VMM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "hw/i8042.h"
#include "hw/pci.h"
#include "hw/pm.h"
#include "hw/rtc.h"
#include "hw/serial.h"
#include "vmm/bus.h"
#include "vmm/config.h"
#include "vmm/cpu_quota.h"
#include "vmm/devices.h"
#include "vmm/dirty_log.h"
#include "vmm/event_loop.h"
#include "vmm/irq.h"
#include "vmm/kvm.h"
#include "vmm/memory.h"
#include "vmm/snapshot.h"
#include "vmm/state.h"
#include "vmm/vcpu.h"

enum vm_exit {
	VM_EXIT_NONE = 0, /* still running */
	VM_EXIT_POWEROFF,
	VM_EXIT_RESET,
	VM_EXIT_STOPPED, /* asked to stop from the host side */
	VM_EXIT_FAILED,
};

struct vm {
	struct kvm *kvm;
	const struct vm_config *cfg;
	int fd;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct serial serial;
	struct rtc rtc;
	struct pm pm;
	struct i8042 i8042;
	struct event_loop loop;
	struct irq_router irq;
	struct pci_host pci;
	struct vm_device devs[VM_MAX_DEVICES];
	unsigned ndevs;
	struct virtio_dev *console_dev; /* hvc0 when the console is virtio */
	struct virtio_dev *balloon_dev; /* when configured */
	struct virtio_dev *rng_dev;
	int console_out;
	char cmdline[4096]; /* the user's, plus what devices add */
	struct vcpu *vcpus;
	unsigned nvcpus; /* created so far */
	int event_fd;    /* readable once the VM has an exit reason */
	atomic_int exit;
	/* Pausing: while pause_req is set, vCPU threads park between KVM_RUNs
	 * on park_cond; `parked` counts them. */
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;
	atomic_bool pause_req;
	unsigned parked;
	bool paused;
	/* Auto-converge: the share of time (percent) each vCPU sleeps. */
	atomic_uint throttle_pct;
	/* --cpus N,quota=P%: the vCPUs' budget, charged every tick. */
	struct cpu_quota quota;
	struct event_timer quota_tick;
	bool quota_ok;
	struct kvm_clock_data clock; /* kvmclock at the pause */
	struct state_registry state; /* every section a snapshot has */
	uint64_t restore_elapsed_ns; /* how long the restored snapshot lay on disk */
	struct dirty_log dirty;      /* pages written since the last snapshot */
	struct mem_chain chain;      /* the memory files of the last snapshot */
	bool serial_ok, rtc_ok, loop_ok, irq_ok, pci_ok, park_ok, i8042_ok;
};

/* Builds the whole VM, ready to start. Guest serial output goes to
 * console_out. With `restore` (whose config is cfg) the VM is the
 * snapshot's: RAM from its memory file and every device's state from its
 * state file, instead of a kernel to boot. On failure everything made so
 * far is released. */
int vm_create(struct vm *vm, struct kvm *kvm, const struct vm_config *cfg, int console_out,
	      struct vm_restore *restore);
int vm_start(struct vm *vm);
/* Records why the VM ends (the first reason wins) and wakes the owner. */
void vm_request_exit(struct vm *vm, enum vm_exit why);
bool vm_running(struct vm *vm);
/* Console input: room for it, and handing it to ttyS0 or hvc0. */
size_t vm_console_space(struct vm *vm);
size_t vm_console_input(struct vm *vm, const uint8_t *buf, size_t len);
/* Pause stops every vCPU between two instructions and freezes the guest's
 * clocks (kvmclock and each vCPU's TSC), so guest time does not advance
 * while paused; resume continues from there. Main thread only. */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
/* Called by a vCPU thread that sees pause_req: waits until resumed or the
 * VM ends. */
void vm_park(struct vm *vm);
/* Throttling (a migration's auto-converge): each vCPU then runs about
 * VM_THROTTLE_SLICE_MS and sleeps pct/(100-pct) of that, as long as the
 * owner kicks it (vm_throttle_kick) every slice. 0 ends it. */
#define VM_THROTTLE_SLICE_MS 10
void vm_throttle(struct vm *vm, unsigned pct);
void vm_throttle_kick(struct vm *vm);
/* Called by a vCPU thread out of KVM_RUN; *next is its own clock (ms) of
 * the next nap. Wakes early for a pause or the VM's end. */
void vm_throttle_nap(struct vm *vm, double *next);
/* Called by a vCPU thread out of KVM_RUN under a CPU quota: charges the
 * thread's CPU time since *cpu_ns and sleeps if the budget is spent. */
void vm_quota_nap(struct vm *vm, int64_t *cpu_ns);
/* Stops and joins every vCPU thread. */
void vm_stop(struct vm *vm);
void vm_destroy(struct vm *vm);

#endif
