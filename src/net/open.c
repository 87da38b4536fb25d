#include "net/open.h"

#include "net/bridge.h"
#include "net/hostonly.h"
#include "net/nat.h"
#include "net/switchport.h"
#include "net/tap.h"
#include "util/err.h"
#include "util/module.h"

int net_open(const struct net_config *nc, unsigned nic, const uint8_t mac[6], struct event_loop *loop,
	     struct net_backend **out)
{
	const struct nat_module *nat;

	switch (nc->mode) {
	case NET_TAP:
		return tap_open(nc->tap, false, loop, out);
	case NET_NAT:
		return (nat = module_get("nat")) ? nat->open(nc, loop, out) : CV_EFAIL;
	case NET_BRIDGE:
		return bridge_open(nc, nic, loop, out);
	case NET_HOSTONLY:
		return hostonly_open(nc, nic, mac, loop, out);
	case NET_SWITCH:
		return switchport_open(nc->path, mac, loop, out);
	}
	cv_err("unknown network mode %d", (int)nc->mode);
	return CV_EFAIL;
}
