#include "vmm/devices.h"

#include <stdio.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "block/block.h"
#include "util/err.h"
#include "net/mac.h"
#include "mmds/stack.h"
#include "net/open.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "vmm/vm.h"

static int backend_save(void *opaque, struct snap_writer *w)
{
	struct net_backend *be = opaque;

	return be->ops->save(be, w);
}

static int backend_load(void *opaque, struct snap_reader *r)
{
	struct net_backend *be = opaque;

	return be->ops->load(be, r);
}

/* A virtio device's section: 2 sizes the PCI transport's vector arrays
 * by the device's queues; 1 still loads. */
#define VIRTIO_STATE_VERSION 2

/* ISA IRQs no platform device uses; one per virtio-mmio device. */
static const unsigned mmio_irqs[] = { 5, 6, 7, 10, 11, 12, 14, 15, 3 };

/* A virtio device's section: the device, then its transport's registers
 * (loaded in that order: the transport's resume looks at the device). */
static int virtio_save(void *opaque, struct snap_writer *w)
{
	struct vm_device *d = opaque;
	int rc;

	snap_put_u32(w, d->dev->ops->device_id);
	snap_put_u8(w, (uint8_t)d->kind);
	if ((rc = virtio_dev_save(d->dev, w)))
		return rc;
	return d->kind == TRANSPORT_PCI ? virtio_pci_save(&d->t.pci, w) : virtio_mmio_save(&d->t.mmio, w);
}

static int virtio_load(void *opaque, struct snap_reader *r)
{
	struct vm_device *d = opaque;
	uint32_t id = snap_get_u32(r);
	uint8_t kind = snap_get_u8(r);

	if (snap_reader_ok(r) && (id != d->dev->ops->device_id || kind != d->kind))
		snap_reader_fail(r, "another kind of virtio device or transport");
	if (!snap_reader_ok(r))
		return CV_EINPUT;
	if (virtio_dev_load(d->dev, r))
		return CV_EINPUT;
	return d->kind == TRANSPORT_PCI ? virtio_pci_load(&d->t.pci, r) : virtio_mmio_load(&d->t.mmio, r);
}

static int attach(struct vm *vm, struct virtio_dev *dev, char *cmdline, size_t cap)
{
	struct vm_device *d;
	unsigned i = vm->ndevs;
	char id[SNAP_ID_MAX];

	if (!dev)
		return CV_EFAIL;
	if (i == VM_MAX_DEVICES || i == sizeof(mmio_irqs) / sizeof(mmio_irqs[0])) {
		dev->ops->destroy(dev);
		cv_err("too many virtio devices");
		return CV_EINPUT;
	}
	d = &vm->devs[vm->ndevs++];
	d->dev = dev;
	d->kind = vm->cfg->transport;
	snprintf(id, sizeof(id), "virtio%u-%s", i, dev->ops->name);
	if (d->kind == TRANSPORT_PCI) {
		if (virtio_pci_init(&d->t.pci, dev, &vm->pci, &vm->irq, vm->fd))
			return CV_EFAIL;
		d->attached = true;
		return state_register_versions(&vm->state, id, 1, VIRTIO_STATE_VERSION, virtio_save, virtio_load, d,
					       &d->t.pci.pci, NULL);
	}
	if (virtio_mmio_init(&d->t.mmio, dev, vm->fd, &vm->mmio, LAYOUT_VIRTIO_MMIO + i * VIRTIO_MMIO_SIZE,
			     mmio_irqs[i]))
		return CV_EFAIL;
	d->attached = true;
	if (state_register_versions(&vm->state, id, 1, VIRTIO_STATE_VERSION, virtio_save, virtio_load, d, &d->t.mmio,
				    NULL))
		return CV_EFAIL;
	return virtio_mmio_cmdline(&d->t.mmio, cmdline, cap);
}

/* Last, so the other devices keep their section ids. Its own section is
 * registered first: loaded before the device resumes, it has the guest
 * told that its connections are gone. */
static int attach_vsock(struct vm *vm, char *cmdline, size_t cap)
{
	struct virtio_dev *dev = virtio_vsock_new(&vm->mem, &vm->loop, vm->cfg->vsock.cid, vm->cfg->vsock.uds);

	if (dev && state_register(&vm->state, "vsock", 1, virtio_vsock_save, virtio_vsock_load, dev, NULL, NULL)) {
		dev->ops->destroy(dev);
		return CV_EFAIL;
	}
	return dev ? attach(vm, dev, cmdline, cap) : CV_EINPUT;
}

/* The MMDS on NIC i (the last device attached), if it carries it. */
static int attach_mmds(struct vm *vm, unsigned i)
{
	const struct vm_config *cfg = vm->cfg;
	struct mmds_service svc = { cfg->mmds_store, cfg->mmds.version, cfg->mmds.imds_compat };
	struct net_intercept *ic;

	if (!cfg->mmds.set || !cfg->mmds_store || !(cfg->mmds.nics & (1u << i)))
		return 0;
	if (!(ic = mmds_stack_new(&svc, cfg->mmds.addr, &vm->loop)))
		return CV_EFAIL;
	virtio_net_set_intercept(vm->devs[vm->ndevs - 1].dev, ic);
	return 0;
}

int devices_open_disk(struct vm *vm, unsigned i, const char *path, struct block **out)
{
	static const enum block_format formats[] = {
		[DISK_FORMAT_AUTO] = BLOCK_FORMAT_AUTO,
		[DISK_FORMAT_RAW] = BLOCK_FORMAT_RAW,
		[DISK_FORMAT_QCOW2] = BLOCK_FORMAT_QCOW2,
	};
	const struct disk_config *dc = &vm->cfg->disks[i];

	return block_open(path, formats[dc->format], dc->readonly, DISK_MAX_INFLIGHT, &vm->loop, out);
}

unsigned devices_disk_queues(const struct vm_config *cfg, unsigned i)
{
	if (cfg->disks[i].queues)
		return cfg->disks[i].queues;
	return cfg->cpus < VIRTIO_BLK_MAX_QUEUES ? cfg->cpus : VIRTIO_BLK_MAX_QUEUES;
}

struct virtio_dev *devices_disk(struct vm *vm, unsigned i)
{
	/* Disks are attached first, in configuration order. */
	return vm->devs[i].dev;
}

struct virtio_dev *devices_nic(struct vm *vm, unsigned i)
{
	/* NICs follow the disks. */
	return vm->devs[vm->cfg->ndisks + i].dev;
}

int devices_create(struct vm *vm, char *cmdline, size_t cap)
{
	const struct vm_config *cfg = vm->cfg;
	int rc;

	for (unsigned i = 0; i < cfg->ndisks; i++) {
		const struct disk_config *dc = &cfg->disks[i];
		struct block *disk;
		struct virtio_dev *dev;

		struct virtio_blk_queues q = { .n = devices_disk_queues(cfg, i), .poll_us = dc->poll_us };

		if ((rc = devices_open_disk(vm, i, dc->path, &disk)))
			return rc;
		dev = virtio_blk_new(&vm->mem, &vm->loop, disk, dc->id, &dc->limit, dc->cache == DISK_CACHE_WRITEBACK, &q);
		if ((rc = attach(vm, dev, cmdline, cap)))
			return rc;
	}
	for (unsigned i = 0; i < cfg->nnics; i++) {
		const struct net_config *nc = &cfg->nics[i];
		struct net_backend *be;
		uint8_t mac[6];

		if (nc->mac_set)
			memcpy(mac, nc->mac, 6);
		else
			mac_derive(cfg->name, i, mac);
		if ((rc = net_open(nc, i, mac, &vm->loop, &be)))
			return rc;
		if ((rc = attach(vm, virtio_net_new(&vm->mem, &vm->loop, be, mac, &nc->rx, &nc->tx), cmdline, cap)) ||
		    (rc = attach_mmds(vm, i)))
			return rc;
		/* The NIC owns the back-end, which lives as long as the VM. */
		if (be->ops->save) {
			char id[SNAP_ID_MAX];

			snprintf(id, sizeof(id), "net%u-backend", i);
			if ((rc = state_register(&vm->state, id, 1, backend_save, backend_load, be, NULL, NULL)))
				return rc;
		}
	}
	/* The data store is the process's; a snapshot carries it with the VM. */
	if (cfg->mmds.set && cfg->mmds_store &&
	    (rc = state_register(&vm->state, "mmds", 1, mmds_store_save, mmds_store_load, cfg->mmds_store, NULL, NULL)))
		return rc;
	if (cfg->console == CONSOLE_VIRTIO) {
		if ((rc = attach(vm, virtio_console_new(&vm->mem, &vm->loop, vm->console_out), cmdline, cap)))
			return rc;
		vm->console_dev = vm->devs[vm->ndevs - 1].dev;
	}
	if (cfg->balloon.on) {
		if ((rc = attach(vm, virtio_balloon_new(&vm->mem, &vm->loop, &cfg->balloon), cmdline, cap)))
			return rc;
		vm->balloon_dev = vm->devs[vm->ndevs - 1].dev;
		if ((rc = state_register(&vm->state, "balloon", 1, virtio_balloon_save, virtio_balloon_load,
					 vm->balloon_dev, NULL, NULL)))
			return rc;
	}
	if ((rc = attach(vm, virtio_rng_new(&vm->mem, &vm->loop, &cfg->entropy.limit), cmdline, cap)))
		return rc;
	vm->rng_dev = vm->devs[vm->ndevs - 1].dev;
	if (!cfg->vsock.set)
		return 0;
	return attach_vsock(vm, cmdline, cap);
}

void devices_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ndevs; i++) {
		struct vm_device *d = &vm->devs[i];

		if (d->attached && d->kind == TRANSPORT_PCI)
			virtio_pci_destroy(&d->t.pci);
		else if (d->attached)
			virtio_mmio_destroy(&d->t.mmio);
		d->dev->ops->destroy(d->dev);
	}
	vm->ndevs = 0;
	vm->console_dev = vm->balloon_dev = vm->rng_dev = NULL;
}
