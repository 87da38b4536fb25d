/* Frames a back-end makes itself (user-mode NAT output, DHCP replies) and
 * hands to the NIC when it asks: a bounded FIFO, and an eventfd the event
 * loop watches while the NIC wants frames, so the NIC hears about them
 * through its back-end's ready() like about any other. */
#ifndef CELLVM_NET_FRAMEQ_H
#define CELLVM_NET_FRAMEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "net/backend.h"
#include "vmm/event_loop.h"

struct frameq_item;

struct frameq {
	struct frameq_item *head, *tail;
	size_t bytes, max_bytes;
	int efd;
	bool watched; /* the eventfd is in the loop with EPOLLIN */
	struct event_loop *loop;
	struct net_backend *be; /* whose ready() is called */
};

/* Holds up to max_bytes of frames; ready() goes to be->ready. */
int frameq_init(struct frameq *q, struct event_loop *loop, size_t max_bytes, struct net_backend *be);
void frameq_destroy(struct frameq *q);
/* Queues a frame (Ethernet, without virtio-net header; a zero header is
 * put in front). False if the queue is full and the frame was dropped. */
bool frameq_push(struct frameq *q, const void *frame, size_t len);
/* The oldest frame with its header into buf, as net_backend_ops.recv
 * does: its length, or 0 if there is none (a frame larger than cap is
 * dropped). */
ssize_t frameq_pop(struct frameq *q, uint8_t *buf, size_t cap);
bool frameq_empty(const struct frameq *q);
/* Whether ready(rx) should be called while frames wait. */
void frameq_want(struct frameq *q, bool rx);

#endif
