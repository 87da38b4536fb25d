/* libFuzzer target: a snapshot state file as a restoring cellvm reads it.
 * The file parser first; then every section is fed to every section
 * decoder (configuration, disks, vCPU, platform devices, PCI config
 * space, virtio device), as a hostile file could label any bytes as any section. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/vcpu_state.h"
#include "hw/i8042.h"
#include "hw/pci.h"
#include "hw/pm.h"
#include "hw/rtc.h"
#include "hw/serial.h"
#include "snapshot/config.h"
#include "snapshot/file.h"
#include "snapshot/memchain.h"
#include "virtio/device.h"
#include "vmm/disks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void no_irq(void *ctx, unsigned irq, int level)
{
	(void)ctx;
	(void)irq;
	(void)level;
}

static void no_power(void *ctx, enum power_event ev)
{
	(void)ctx;
	(void)ev;
}

static void no_notify(struct virtio_dev *d, unsigned q)
{
	(void)d;
	(void)q;
}

static time_t fixed_now(void)
{
	return 1700000000;
}

static const struct virtio_ops fuzz_ops = {
	.name = "fuzz", .device_id = 4, .num_queues = 2, .queue_max = 256, .notify = no_notify,
};

static void decode_all(const struct snap_section *s)
{
	static struct snap_config cfg;
	static struct mem_chain chain;
	static struct x86_vcpu_state vcpu;
	static struct serial serial;
	static struct i8042 kbd;
	static struct rtc rtc;
	static struct pm pm;
	static struct pci_dev pci;
	static struct virtio_dev dev;
	static uint8_t config[8];
	/* Disks that are not there: the section decodes, the check refuses. */
	static const struct vm_config disks = { .ndisks = 2,
						.disks = { { .path = "/nonexistent/a.img" },
							   { .path = "/nonexistent/b.img" } } };
	static int ready;
	struct snap_reader r;

	if (!ready) {
		serial_init(&serial, -1, 4, no_irq, NULL);
		i8042_init(&kbd, no_power, no_irq, NULL);
		rtc_init(&rtc, fixed_now);
		pm_init(&pm, no_power, NULL);
		pci_dev_header(&pci, 0x1af4, 0x1044, 0x00ff00, 0x1af4, 0x1100, 1);
		virtio_dev_init(&dev, &fuzz_ops, NULL, 0, config, sizeof(config), NULL, NULL);
		ready = 1;
	}
	snap_reader_init(&r, s->data, s->len);
	snap_config_decode(&r, SNAP_CONFIG_VERSION, &cfg);
	snap_reader_init(&r, s->data, s->len);
	mem_chain_init(&chain, 4);
	if (!mem_chain_decode(&r, &chain))
		mem_chain_free(&chain);
	snap_reader_init(&r, s->data, s->len);
	if (!x86_vcpu_decode(&r, &vcpu))
		x86_vcpu_state_free(&vcpu);
	snap_reader_init(&r, s->data, s->len);
	serial_load(&serial, &r);
	snap_reader_init(&r, s->data, s->len);
	i8042_load(&kbd, &r);
	snap_reader_init(&r, s->data, s->len);
	rtc_load(&rtc, &r);
	snap_reader_init(&r, s->data, s->len);
	pm_load(&pm, &r);
	snap_reader_init(&r, s->data, s->len);
	pci_dev_load(&pci, &r);
	snap_reader_init(&r, s->data, s->len);
	virtio_dev_load(&dev, &r);
	snap_reader_init(&r, s->data, s->len);
	vm_disks_check(&disks, s->len & 1, &r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_file f;
	char err[256];

	if (snap_file_parse(data, size, &f, err, sizeof(err)))
		return 0;
	for (unsigned i = 0; i < f.n; i++)
		decode_all(&f.sec[i]);
	snap_file_free(&f);
	return 0;
}
