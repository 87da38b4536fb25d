/* libFuzzer target: what a guest's register accesses reach: PCI config
 * space through the 0xcf8/0xcfc ports and ECAM (src/hw/pci.c), the
 * virtio-pci BAR (common, notify, ISR and device config, MSI-X table:
 * src/virtio/pci.c) and a virtio-mmio window (src/virtio/mmio.c), each
 * transport carrying a virtio-rng. The input is a sequence of 14-byte
 * accesses: region and direction (byte 0: bits 0-1 region, bit 7 write),
 * size (byte 1: 1, 2, 4 or 8 bytes), offset in the region (u32), value
 * (u64). The transports register eventfds with KVM, so a VM (no vCPU) and an
 * event loop (never run) are made once; without /dev/kvm the target does nothing. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"
#include "fuzz.h"
#include "hw/pci.h"
#include "virtio/mmio.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "vmm/bus.h"
#include "vmm/event_loop.h"
#include "vmm/irq.h"

#define RAM (64 * 1024)
#define MMIO_BASE LAYOUT_VIRTIO_MMIO
#define MMIO_GSI 5

static int vm_fd(void)
{
	static int vm = -2;
	int kvm;

	if (vm != -2)
		return vm;
	vm = -1;
	if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) {
		fprintf(stderr, "fuzz_transport: no /dev/kvm, nothing is fuzzed\n");
		return vm;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm >= 0 && ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		close(vm);
		vm = -1;
	}
	close(kvm);
	return vm;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem m;
	static struct event_loop loop; /* where the doorbells' eventfds are watched; never run */
	struct fuzz_in in = { data, size };
	struct bus pio = { 0 }, mmio = { 0 };
	struct irq_router irq;
	struct pci_host host;
	struct virtio_pci vp;
	struct virtio_mmio vm;
	struct virtio_dev *pdev, *mdev;
	uint64_t bar;
	int vmfd = vm_fd();

	if (vmfd < 0)
		return 0;
	if (!m.host) {
		fuzz_guest_init(&m, RAM);
		if (event_loop_init(&loop))
			abort();
	}
	if (irq_router_init(&irq, vmfd))
		abort();
	if (pci_host_init(&host, &pio, &mmio, LAYOUT_PCI_ECAM, LAYOUT_PCI_WINDOW, LAYOUT_PCI_WINDOW_SIZE))
		abort();
	pdev = virtio_rng_new(&m, &loop, NULL);
	mdev = virtio_rng_new(&m, &loop, NULL);
	if (!pdev || !mdev || virtio_pci_init(&vp, pdev, &host, &irq, vmfd) ||
	    virtio_mmio_init(&vm, mdev, vmfd, &mmio, MMIO_BASE, MMIO_GSI))
		abort();
	while (in.left >= 14) {
		unsigned kind = (unsigned)fuzz_take(&in, 1), len = 1u << (fuzz_take(&in, 1) % 4);
		uint64_t off = fuzz_take(&in, 4), v = fuzz_take(&in, 8);
		bool write = kind & 0x80;
		uint8_t buf[8];

		memcpy(buf, &v, sizeof(buf));
		switch (kind % 4) {
		case 0: /* the config address and data ports */
			bus_access(&pio, 0xcf8 + off % 8, buf, len, write);
			break;
		case 1:
			bus_access(&mmio, LAYOUT_PCI_ECAM + off % (1 << 20), buf, len, write);
			break;
		case 2: /* BAR 0 (64-bit), wherever the guest moved it */
			bar = (pci_cfg_read(&vp.pci, 0x10, 4) & ~0xfULL) | (uint64_t)pci_cfg_read(&vp.pci, 0x14, 4) << 32;
			bus_access(&mmio, bar + off % 0x4000, buf, len, write);
			break;
		default:
			bus_access(&mmio, MMIO_BASE + off % VIRTIO_MMIO_SIZE, buf, len, write);
		}
	}
	virtio_mmio_destroy(&vm);
	virtio_pci_destroy(&vp);
	mdev->ops->destroy(mdev);
	pdev->ops->destroy(pdev);
	pci_host_destroy(&host);
	irq_router_destroy(&irq);
	return 0;
}
