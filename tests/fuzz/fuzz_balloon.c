/* libFuzzer target: what a hostile guest puts in virtio-balloon's queues.
 * The input is laid over the start of guest RAM (descriptor tables, rings,
 * PFN arrays, statistics, reports), every queue is kicked, the statistics
 * timer's work is done, and the rest goes to the snapshot section loader. */
#include <linux/virtio_config.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arch/x86/layout.h"
#include "virtio/balloon.h"

#define RAM (1ULL << 20)
#define QSIZE 16
#define NQ 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void no_signal(struct virtio_dev *d, unsigned q)
{
	(void)d;
	(void)q;
}

static void no_config(struct virtio_dev *d)
{
	(void)d;
}

static const struct virtio_transport transport = { no_signal, no_config };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct balloon_config c = { .on = true, .amount_mib = 1, .stats_s = 1, .reporting = true };
	struct guest_mem m;
	struct event_loop loop;
	struct virtio_dev *d;
	struct snap_reader r;
	size_t in_ram = size < 0x8000 ? size : 0x8000;

	guest_mem_layout(&m, RAM, LAYOUT_MMIO_HOLE);
	m.host = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	m.ram_fd = -1;
	if (m.host == MAP_FAILED || event_loop_init(&loop))
		abort();
	memcpy(m.host, data, in_ram);
	if (!(d = virtio_balloon_new(&m, &loop, &c)))
		abort();
	d->transport = &transport;
	pthread_mutex_lock(&d->lock);
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	d->driver_features = d->device_features;
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned q = 0; q < NQ; q++)
		d->vq[q] = (struct virtq){ .size = QSIZE, .ready = true, .desc_gpa = 0x1000ULL * q * 2,
					   .avail_gpa = 0x1000ULL * q * 2 + 0x100, .used_gpa = 0x1000ULL * q * 2 + 0x1000 };
	virtio_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
				     VIRTIO_CONFIG_S_DRIVER_OK);
	for (unsigned q = 0; q < NQ; q++)
		virtio_kick(d, q);
	pthread_mutex_unlock(&d->lock);
	snap_reader_init(&r, data + in_ram, size - in_ram);
	virtio_balloon_load(d, &r);
	d->ops->destroy(d);
	event_loop_destroy(&loop);
	munmap(m.host, RAM);
	return 0;
}
