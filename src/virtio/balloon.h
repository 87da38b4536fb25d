/* virtio-balloon (virtio 1.2, 5.5): the host asks the guest for pages
 * (a target), the guest hands them over on the inflate queue and they go
 * back to the host (guest_mem_discard); the statistics queue reports the
 * guest's memory at a polling interval; free page reporting hands idle
 * free pages back without a target; with deflate-on-OOM the guest takes
 * pages back rather than OOM-killing. */
#ifndef CELLVM_VIRTIO_BALLOON_H
#define CELLVM_VIRTIO_BALLOON_H

#include "virtio/device.h"
#include "vmm/config.h"

#define BALLOON_F_STATS_VQ 1
#define BALLOON_F_DEFLATE_ON_OOM 2
#define BALLOON_F_REPORTING 5

/* Statistics tags (5.5.6.3) cellvm keeps: swap in/out, major/minor
 * faults, free, total, available memory, caches, hugetlb allocations and
 * failures, OOM kills, allocation stalls, scans, reclaims. */
#define BALLOON_NSTATS 16

struct balloon_info {
	bool active;              /* the driver took the device */
	bool stats_on;            /* the statistics queue exists */
	unsigned stats_s;         /* polling interval, 0: none */
	uint32_t target_pages, actual_pages;
	uint32_t stats_mask;      /* bit i: the guest gave tag i */
	uint64_t stats[BALLOON_NSTATS];
	uint64_t discarded_pages; /* given back by inflating or reporting */
};

struct virtio_dev *virtio_balloon_new(const struct guest_mem *mem, struct event_loop *loop,
				      const struct balloon_config *c);
/* A new target of `pages` 4 KiB pages; the guest is told. */
void virtio_balloon_set_target(struct virtio_dev *d, uint32_t pages);
/* A new polling interval (the statistics queue must exist, s > 0). */
void virtio_balloon_set_interval(struct virtio_dev *d, unsigned s);
void virtio_balloon_info(struct virtio_dev *d, struct balloon_info *out);

/* The device's own snapshot section (polling interval, last statistics);
 * queues and config space go with the virtio section. */
int virtio_balloon_save(void *dev, struct snap_writer *w);
int virtio_balloon_load(void *dev, struct snap_reader *r);

#endif
