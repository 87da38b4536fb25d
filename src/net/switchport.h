/* switch=PATH: the NIC is a port of the `cellvm switch` listening on the
 * Unix socket PATH. Unprivileged; frames carry no offloads. */
#ifndef CELLVM_NET_SWITCHPORT_H
#define CELLVM_NET_SWITCHPORT_H

#include <stdint.h>

#include "net/backend.h"
#include "vmm/event_loop.h"

/* Joins with the NIC's MAC. Reports and returns CV_EINPUT when no switch
 * listens on path or it refuses the MAC (another VM on it has it). */
int switchport_open(const char *path, const uint8_t mac[6], struct event_loop *loop, struct net_backend **out);

#endif
