/* nat: user-mode NAT with libslirp, no privileges needed. The guest's
 * network is 10.0.2.0/24: the guest gets 10.0.2.15 by DHCP, 10.0.2.2 is
 * the host (connections to it reach the host's loopback), 10.0.2.3 the DNS
 * forwarder. Connections the guest makes become sockets of cellvm's;
 * hostfwd= forwards host ports into the guest; restrict=on cuts the guest
 * off from everything but those forwards (and DHCP). IPv4 only.
 *
 * libslirp's sockets are watched through an epoll set of their own that
 * sits in the VM's event loop as one fd, and its timeouts run on an
 * event-loop timer; it never has a thread. libslirp (with GLib) is the
 * module "nat" (util/module.h). */
#ifndef CELLVM_NET_NAT_H
#define CELLVM_NET_NAT_H

#include "net/backend.h"
#include "vmm/config.h"
#include "vmm/event_loop.h"

struct nat_module {
	/* Reports and returns CV_EINPUT (a forwarded port in use) or CV_EFAIL. */
	int (*open)(const struct net_config *nc, struct event_loop *loop, struct net_backend **out);
};

/* In the module; the rest of cellvm reaches it through module_get(). */
extern const struct nat_module cellvm_module_nat;

#endif
