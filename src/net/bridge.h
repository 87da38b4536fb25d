/* bridge=BR: a tap made by cellvm and attached to an existing Linux
 * bridge; it goes away (leaving the bridge) when the back-end closes. */
#ifndef CELLVM_NET_BRIDGE_H
#define CELLVM_NET_BRIDGE_H

#include "net/backend.h"
#include "vmm/config.h"
#include "vmm/event_loop.h"

/* Reports and returns CV_EINPUT for a missing bridge, an existing tap
 * name or missing permission; nothing is left behind on failure. */
int bridge_open(const struct net_config *nc, unsigned nic, struct event_loop *loop, struct net_backend **out);

/* The building block hostonly shares: the tap `given` (or cv<pid>-<nic>)
 * created and made a port of the bridge (index, name for messages). */
int bridge_port_open(const char *given, unsigned nic, int bridge, const char *bridge_name,
		     struct event_loop *loop, struct net_backend **out);

#endif
