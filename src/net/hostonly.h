/* hostonly=NAME: an isolated network of the host and the VMs that name it.
 *
 * The network is a Linux bridge cvh-NAME with the host's address .1 of its
 * subnet (net=, or a /24 in 10.128.0.0/9 derived from NAME). The first VM
 * creates it, every VM adds a tap, and the VM whose tap was the last port
 * removes it when it stops. Each guest gets its address by DHCP, answered by
 * its own VM's back-end from a lease the VM holds for as long as it runs
 * (a claim named after the address: two VMs never hold the same one).
 * Nothing is routed beyond the network: the bridge has no route but its
 * own subnet, no DHCP router option is given, IPv4 forwarding is off for
 * packets arriving on it, and IPv6 is off on it. */
#ifndef CELLVM_NET_HOSTONLY_H
#define CELLVM_NET_HOSTONLY_H

#include <stdint.h>

#include "net/backend.h"
#include "vmm/config.h"
#include "vmm/event_loop.h"

/* The network's default subnet for a name: 10.(128 + h % 128).(h / 128 % 256).0/24. */
uint32_t hostonly_default_net(const char *name);

/* Reports and returns CV_EINPUT (pool exhausted, subnet clash, no
 * permission) or CV_EFAIL; nothing is left behind on failure. */
int hostonly_open(const struct net_config *nc, unsigned nic, const uint8_t mac[6], struct event_loop *loop,
		  struct net_backend **out);

#endif
