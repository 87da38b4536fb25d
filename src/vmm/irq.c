#include "vmm/irq.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/err.h"

static void add_irqchip(struct irq_router *r, unsigned gsi, unsigned chip, unsigned pin)
{
	r->e[r->n++] = (struct kvm_irq_routing_entry){
		.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP, .u.irqchip = { .irqchip = chip, .pin = pin },
	};
}

static int commit(struct irq_router *r)
{
	/* Laid out as struct kvm_irq_routing with room for its entries. */
	struct {
		uint32_t nr, flags;
		struct kvm_irq_routing_entry e[IRQ_ROUTES_MAX];
	} t;

	static_assert(offsetof(struct kvm_irq_routing, entries) == 8, "kvm_irq_routing layout");
	t.nr = r->n;
	t.flags = 0;
	memcpy(t.e, r->e, r->n * sizeof(r->e[0]));
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, &t) < 0) {
		cv_err("KVM_SET_GSI_ROUTING: %s", strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

int irq_router_init(struct irq_router *r, int vm_fd)
{
	memset(r, 0, sizeof(*r));
	r->vm_fd = vm_fd;
	r->next_gsi = IRQ_IOAPIC_PINS;
	/* KVM's own default: ISA IRQs reach both 8259s and the IOAPIC, the
	 * rest only the IOAPIC. Setting a table replaces it, so restate it. */
	for (unsigned i = 0; i < IRQ_IOAPIC_PINS; i++) {
		if (i < 16)
			add_irqchip(r, i, i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, i % 8);
		add_irqchip(r, i, KVM_IRQCHIP_IOAPIC, i);
	}
	return pthread_mutex_init(&r->lock, NULL) ? CV_EFAIL : 0;
}

void irq_router_destroy(struct irq_router *r)
{
	pthread_mutex_destroy(&r->lock);
}

int irq_msi_alloc(struct irq_router *r, unsigned *gsi)
{
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	if (r->n == IRQ_ROUTES_MAX) {
		cv_err("out of interrupt routes (%d)", IRQ_ROUTES_MAX);
		rc = CV_EFAIL;
	} else {
		*gsi = r->next_gsi++;
		/* Parked: an MSI to the reset value, never unmasked by the guest. */
		r->e[r->n++] = (struct kvm_irq_routing_entry){ .gsi = *gsi, .type = KVM_IRQ_ROUTING_MSI };
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int irq_msi_route(struct irq_router *r, unsigned gsi, uint64_t address, uint32_t data)
{
	int rc = CV_EFAIL;

	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < r->n; i++) {
		struct kvm_irq_routing_entry *e = &r->e[i];

		if (e->gsi != gsi || e->type != KVM_IRQ_ROUTING_MSI)
			continue;
		if (e->u.msi.address_lo == (uint32_t)address && e->u.msi.address_hi == (uint32_t)(address >> 32) &&
		    e->u.msi.data == data) {
			rc = 0;
			break;
		}
		e->u.msi.address_lo = (uint32_t)address;
		e->u.msi.address_hi = (uint32_t)(address >> 32);
		e->u.msi.data = data;
		rc = commit(r);
		break;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int irq_irqfd(int vm_fd, int efd, unsigned gsi, bool assign)
{
	struct kvm_irqfd f = { .fd = (uint32_t)efd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };

	if (ioctl(vm_fd, KVM_IRQFD, &f) < 0) {
		cv_err("KVM_IRQFD gsi %u: %s", gsi, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

int irq_ioeventfd(int vm_fd, int efd, uint64_t addr, unsigned len, bool pio, bool datamatch,
		  uint64_t match, bool assign)
{
	struct kvm_ioeventfd f = {
		.datamatch = match, .addr = addr, .len = len, .fd = efd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	if (ioctl(vm_fd, KVM_IOEVENTFD, &f) < 0) {
		cv_err("KVM_IOEVENTFD at 0x%llx: %s", (unsigned long long)addr, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

void irq_eventfd_signal(int efd)
{
	uint64_t one = 1;

	while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}
