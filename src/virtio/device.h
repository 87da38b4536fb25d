/* A virtio device as its transport sees it: features, status, queues and
 * configuration space. Device models fill in virtio_ops and never learn
 * which transport (PCI or MMIO) carries them. */
#ifndef CELLVM_VIRTIO_DEVICE_H
#define CELLVM_VIRTIO_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot/stream.h"
#include "virtio/queue.h"
#include "vmm/event_loop.h"
#include "vmm/memory.h"

/* 16 request queues of a disk; 8 queue pairs and the control queue of a NIC. */
#define VIRTIO_MAX_QUEUES 17

struct virtio_dev;

struct virtio_ops {
	const char *name;
	uint32_t device_id;
	unsigned num_queues;
	uint16_t queue_max;
	/* The driver kicked queue q (event-loop thread, device lock held). */
	void (*notify)(struct virtio_dev *d, unsigned q);
	/* DRIVER_OK with queues ready; a failure puts the device in NEEDS_RESET. */
	int (*activate)(struct virtio_dev *d);
	/* Drop all in-flight work; the core resets queues and status after. */
	void (*reset)(struct virtio_dev *d);
	/* Optional: the driver wrote config bytes [off, off+len). */
	void (*config_write)(struct virtio_dev *d, uint32_t off, uint32_t len);
	/* Frees the device model (after its transport is gone). */
	void (*destroy)(struct virtio_dev *d);
};

/* What the transport does for the device. */
struct virtio_transport {
	void (*signal_queue)(struct virtio_dev *d, unsigned q);
	void (*signal_config)(struct virtio_dev *d);
};

struct virtio_dev {
	const struct virtio_ops *ops;
	void *priv;
	pthread_mutex_t lock; /* taken by transport register access and kicks */
	const struct guest_mem *mem;
	struct event_loop *loop;

	uint64_t device_features, driver_features;
	uint8_t status;
	uint32_t config_generation;
	uint8_t *config;
	uint32_t config_len;
	struct virtq vq[VIRTIO_MAX_QUEUES];

	const struct virtio_transport *transport;
	void *transport_priv;
};

/* `features`: device-specific bits; the core adds VERSION_1, EVENT_IDX and
 * INDIRECT_DESC. */
int virtio_dev_init(struct virtio_dev *d, const struct virtio_ops *ops, void *priv, uint64_t features,
		    uint8_t *config, uint32_t config_len, const struct guest_mem *mem, struct event_loop *loop);
void virtio_dev_destroy(struct virtio_dev *d);

/* Transport-side operations (device lock held by the caller). */
void virtio_set_status(struct virtio_dev *d, uint8_t status);
void virtio_config_access(struct virtio_dev *d, uint32_t off, uint8_t *data, unsigned len, bool write);
void virtio_kick(struct virtio_dev *d, unsigned q);

/* Device-side operations (device lock held). */
bool virtio_ready(const struct virtio_dev *d);
void virtio_signal_used(struct virtio_dev *d, unsigned q);
void virtio_config_changed(struct virtio_dev *d);
/* Takes the next request from queue qi, re-arming guest notifications when
 * the queue runs dry so no kick is missed. False when there is none, or
 * when the guest broke the queue (the device then needs a reset). */
bool virtio_pop(struct virtio_dev *d, unsigned qi, struct virtq_req *r, struct iovec *out, struct iovec *in,
		unsigned max);
/* The guest broke a queue: stop the device until it resets. */
void virtio_needs_reset(struct virtio_dev *d, const char *why);

/* Snapshots. Save/load cover what the driver negotiated and configured:
 * features, status, config space and every queue's placement and
 * indices. A load only sets fields (and checks them against what this
 * device offers); virtio_dev_resume then restarts a live device: maps its
 * queues, activates the back-end and looks at every queue once, as if
 * kicked. Idle: no request taken from a queue is still unanswered. */
int virtio_dev_save(struct virtio_dev *d, struct snap_writer *w);
int virtio_dev_load(struct virtio_dev *d, struct snap_reader *r);
int virtio_dev_resume(struct virtio_dev *d);
bool virtio_dev_idle(struct virtio_dev *d);

#endif
