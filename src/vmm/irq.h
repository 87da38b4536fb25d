/* Guest interrupt plumbing: the KVM GSI routing table (the in-kernel PIC and
 * IOAPIC pins plus MSI routes allocated by devices), irqfds that inject an
 * interrupt when an eventfd is written, and ioeventfds that turn a guest
 * write to a doorbell address into an eventfd signal without a VM exit to
 * userspace. */
#ifndef CELLVM_VMM_IRQ_H
#define CELLVM_VMM_IRQ_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define IRQ_ROUTES_MAX 512
#define IRQ_IOAPIC_PINS 24

struct irq_router {
	int vm_fd;
	pthread_mutex_t lock;
	unsigned next_gsi;
	unsigned n;
	struct kvm_irq_routing_entry e[IRQ_ROUTES_MAX];
};

int irq_router_init(struct irq_router *r, int vm_fd);
void irq_router_destroy(struct irq_router *r);

/* A new GSI for an MSI route; it delivers nothing until irq_msi_route(). */
int irq_msi_alloc(struct irq_router *r, unsigned *gsi);
/* Points an MSI GSI at (address, data) and commits the table to KVM. */
int irq_msi_route(struct irq_router *r, unsigned gsi, uint64_t address, uint32_t data);

/* Writes to efd inject GSI gsi. */
int irq_irqfd(int vm_fd, int efd, unsigned gsi, bool assign);

/* A guest write of `len` bytes (0: any) to addr signals efd; with
 * datamatch only when the value equals `match`. */
int irq_ioeventfd(int vm_fd, int efd, uint64_t addr, unsigned len, bool pio, bool datamatch,
		  uint64_t match, bool assign);

/* Signals an eventfd (best effort; a full counter already means pending). */
void irq_eventfd_signal(int efd);

#endif
