/* Split virtqueue (virtio 1.2, 2.7): the device side. Everything read from
 * the guest is copied before it is checked, and every buffer is resolved
 * through guest_mem_ptr(); a queue the guest has broken reports
 * VIRTQ_BROKEN and the device must go to NEEDS_RESET. */
#ifndef CELLVM_VIRTIO_QUEUE_H
#define CELLVM_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/memory.h"

/* Longest chain accepted, indirect tables included. */
#define VIRTQ_MAX_CHAIN 1024

struct virtq {
	/* Set by the transport from the driver's configuration. */
	uint16_t size;
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */

	/* Device state. */
	const struct guest_mem *mem;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail; /* next avail entry to take */
	uint16_t used_idx;   /* next used entry to fill */
	uint16_t signalled;  /* used_idx at the last interrupt */
	bool signalled_valid;
	/* The device polls the ring (virtio/poll.h): draining it leaves
	 * guest notifications off. */
	bool polling;
};

/* One request: the chain's readable (out) then writable (in) buffers. */
struct virtq_req {
	uint16_t head;
	unsigned nout, nin;
	uint64_t out_len, in_len;
	struct iovec *out, *in; /* caller-provided arrays */
};

enum { VIRTQ_BROKEN = -1, VIRTQ_EMPTY = 0, VIRTQ_GOT = 1 };

/* Validates the rings' placement and maps them; false if the driver's
 * configuration is unusable. */
bool virtq_start(struct virtq *q, const struct guest_mem *mem);
void virtq_reset(struct virtq *q);

/* Takes the next available chain. `out` and `in` each have room for `max`
 * entries; longer chains are VIRTQ_BROKEN, as are loops, bad indices,
 * out-of-RAM buffers, readable-after-writable order and nested indirect
 * tables. */
int virtq_pop(struct virtq *q, struct virtq_req *req, struct iovec *out, struct iovec *in, unsigned max);

/* Returns a chain taken with virtq_pop (or the last one, to retry later). */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
void virtq_unpop(struct virtq *q);

/* Whether the driver wants an interrupt for what was pushed since the last
 * one (honours EVENT_IDX and NO_INTERRUPT); records that it was sent. */
bool virtq_should_signal(struct virtq *q);

/* Re-arms guest notifications after draining; returns true if more buffers
 * arrived meanwhile (the caller should pop again). */
bool virtq_enable_notify(struct virtq *q);

/* Asks the driver not to kick: the device looks at the ring itself. */
void virtq_disable_notify(struct virtq *q);

/* Whether the driver made buffers available that are not taken yet. */
bool virtq_has_avail(struct virtq *q);

/* Asks for a kick when the driver adds any buffer beyond those already
 * available, for a device that must wait for more room than is posted;
 * returns true if more arrived meanwhile (try again). */
bool virtq_notify_on_more(struct virtq *q);

#endif
