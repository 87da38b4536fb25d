#include "arch/x86/regs.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"
#include "util/err.h"

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
/* PVM hosts require the user bit on every present entry; it is harmless
 * elsewhere because the kernel replaces these tables early. */
#define PTE_US 0x4ULL
#define PTE_PS 0x80ULL

#define CR0_PE 0x1ULL
#define CR0_MP 0x2ULL
#define CR0_ET 0x10ULL
#define CR0_NE 0x20ULL
#define CR0_WP 0x10000ULL
#define CR0_AM 0x40000ULL
#define CR0_PG 0x80000000ULL
#define CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL
#define EFER_NXE 0x800ULL

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_EXTINT 0x700
#define APIC_MODE_NMI 0x400

int x86_boot_tables(struct guest_mem *m)
{
	uint64_t *gdt = guest_mem_ptr(m, LAYOUT_GDT, 4 * 8);
	uint64_t *pml4 = guest_mem_ptr(m, LAYOUT_PML4, 4096);
	uint64_t *pdpt = guest_mem_ptr(m, LAYOUT_PDPT, 4096);
	uint64_t *pd = guest_mem_ptr(m, LAYOUT_PD, 4 * 4096);

	if (!gdt || !pml4 || !pdpt || !pd)
		return CV_EFAIL;
	/* null, null, 64-bit code (0x10), data (0x18): the boot protocol's
	 * __BOOT_CS and __BOOT_DS. */
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = 0x00af9b000000ffffULL;
	gdt[3] = 0x00cf93000000ffffULL;

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT | PTE_P | PTE_RW | PTE_US;
	for (uint64_t g = 0; g < 4; g++) {
		pdpt[g] = (LAYOUT_PD + g * 4096) | PTE_P | PTE_RW | PTE_US;
		for (uint64_t i = 0; i < 512; i++)
			pd[g * 512 + i] = (g << 30 | i << 21) | PTE_P | PTE_RW | PTE_US | PTE_PS;
	}
	return 0;
}

static int vcpu_ioctl(int fd, unsigned long req, void *arg, const char *name)
{
	if (ioctl(fd, req, arg) < 0) {
		cv_err("%s: %s", name, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

int x86_regs_boot_cpu(int vcpu_fd, uint64_t entry, uint64_t boot_params)
{
	struct kvm_sregs s;
	struct kvm_regs r = { .rip = entry, .rsi = boot_params, .rsp = LAYOUT_BOOT_STACK, .rflags = 2 };
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 11,
				    .present = 1, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment data = { .base = 0, .limit = 0xffffffff, .selector = 0x18, .type = 3,
				    .present = 1, .s = 1, .db = 1, .g = 1 };

	if (vcpu_ioctl(vcpu_fd, KVM_GET_SREGS, &s, "KVM_GET_SREGS"))
		return CV_EFAIL;
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.gdt.base = LAYOUT_GDT;
	s.gdt.limit = 4 * 8 - 1;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
	s.cr3 = LAYOUT_PML4;
	s.cr4 = CR4_PAE;
	s.efer = EFER_LME | EFER_LMA | EFER_NXE;
	if (vcpu_ioctl(vcpu_fd, KVM_SET_SREGS, &s, "KVM_SET_SREGS"))
		return CV_EFAIL;
	return vcpu_ioctl(vcpu_fd, KVM_SET_REGS, &r, "KVM_SET_REGS");
}

int x86_regs_common(int vcpu_fd)
{
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	struct kvm_lapic_state lapic;
	uint32_t lint0, lint1;

	if (vcpu_ioctl(vcpu_fd, KVM_SET_FPU, &fpu, "KVM_SET_FPU") ||
	    vcpu_ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC"))
		return CV_EFAIL;
	/* What firmware would do: the 8259 reaches the CPU through LINT0
	 * (virtual wire mode) and NMIs through LINT1. */
	memcpy(&lint0, &lapic.regs[APIC_LVT_LINT0], 4);
	memcpy(&lint1, &lapic.regs[APIC_LVT_LINT1], 4);
	lint0 = (lint0 & ~0x700u) | APIC_MODE_EXTINT;
	lint1 = (lint1 & ~0x700u) | APIC_MODE_NMI;
	memcpy(&lapic.regs[APIC_LVT_LINT0], &lint0, 4);
	memcpy(&lapic.regs[APIC_LVT_LINT1], &lint1, 4);
	return vcpu_ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
}
