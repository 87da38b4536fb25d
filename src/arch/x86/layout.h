/* Guest-physical address map of a cellvm x86-64 VM.
 *
 *   0x00000500  GDT used to enter 64-bit mode
 *   0x00007000  boot_params ("zero page")
 *   0x00009000  identity page tables for the first 4 GiB (PML4, PDPT, 4 PDs)
 *   0x00020000  kernel command line
 *   0x0009fc00  EBDA .. 1 MiB: reserved, ACPI tables at 0xe0000, the VM
 *               generation ID at 0xff000
 *   0x00100000  kernel, then RAM up to the MMIO hole
 *   0xc0000000  MMIO hole (device windows, IOAPIC, LAPIC) up to 4 GiB
 *   0xc0000000  PCI BAR window (256 MiB)
 *   0xd0000000  virtio-mmio devices, 4 KiB each
 *   0xe0000000  PCI ECAM (bus 0, 1 MiB)
 *   0x100000000 RAM that did not fit below the hole
 */
#ifndef CELLVM_ARCH_X86_LAYOUT_H
#define CELLVM_ARCH_X86_LAYOUT_H

#define LAYOUT_GDT 0x500ULL
#define LAYOUT_BOOT_PARAMS 0x7000ULL
#define LAYOUT_BOOT_STACK 0x8ff0ULL
#define LAYOUT_PML4 0x9000ULL
#define LAYOUT_PDPT 0xa000ULL
#define LAYOUT_PD 0xb000ULL /* four pages */
#define LAYOUT_CMDLINE 0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL
#define LAYOUT_EBDA 0x9fc00ULL
#define LAYOUT_ACPI 0xe0000ULL
#define LAYOUT_ACPI_END 0xff000ULL
#define LAYOUT_VMGENID 0xff000ULL
#define LAYOUT_HIGH_MEM 0x100000ULL
#define LAYOUT_MMIO_HOLE 0xc0000000ULL
#define LAYOUT_4G 0x100000000ULL

#define LAYOUT_PCI_WINDOW 0xc0000000ULL
#define LAYOUT_PCI_WINDOW_SIZE 0x10000000ULL
#define LAYOUT_VIRTIO_MMIO 0xd0000000ULL
#define LAYOUT_PCI_ECAM 0xe0000000ULL

#define LAYOUT_IOAPIC 0xfec00000ULL
#define LAYOUT_LAPIC 0xfee00000ULL
#define LAYOUT_TSS 0xfffbd000ULL
#define LAYOUT_IDENTITY_MAP 0xfffbc000ULL

#endif
