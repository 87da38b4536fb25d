/* Linux tap devices as a network back-end, with a virtio-net header on
 * every frame, so checksum and segmentation offloads pass through. */
#ifndef CELLVM_NET_TAP_H
#define CELLVM_NET_TAP_H

#include "net/backend.h"
#include "vmm/event_loop.h"

#include <stdbool.h>

/* Opens tap `name`, creating it when it does not exist (needs
 * CAP_NET_ADMIN; a created tap is brought up and vanishes when its back-end
 * is closed). With must_create, an existing interface of that name is an
 * error. Returns 0, or CV_EINPUT / CV_EFAIL after reporting. */
int tap_open(const char *name, bool must_create, struct event_loop *loop, struct net_backend **out);

#endif
