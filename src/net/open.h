/* The network back-end a --net option asks for. */
#ifndef CELLVM_NET_OPEN_H
#define CELLVM_NET_OPEN_H

#include <stdint.h>

#include "net/backend.h"
#include "vmm/config.h"
#include "vmm/event_loop.h"

/* nic: the NIC's index (names its tap); mac: its address. Reports errors;
 * CV_EINPUT for what the user can fix (exit status 2). */
int net_open(const struct net_config *nc, unsigned nic, const uint8_t mac[6], struct event_loop *loop,
	     struct net_backend **out);

#endif
