#include "net/bridge.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/netlink.h"
#include "net/tap.h"
#include "util/err.h"

int bridge_port_open(const char *given, unsigned nic, int bridge, const char *bridge_name,
		     struct event_loop *loop, struct net_backend **out)
{
	struct net_backend *be;
	struct nl_link tap;
	char name[16];
	int rc;

	if (*given)
		snprintf(name, sizeof(name), "%s", given);
	else
		snprintf(name, sizeof(name), "cv%d-%u", (int)getpid(), nic);
	if ((rc = tap_open(name, true, loop, &be)))
		return rc;
	rc = nl_link_get(name, &tap);
	if (!rc)
		rc = nl_link_up(tap.index, bridge);
	if (rc) {
		cv_err("cannot attach tap '%s' to bridge '%s': %s", name, bridge_name, strerror(-rc));
		be->ops->close(be); /* the tap is ours: closing removes it */
		return CV_EFAIL;
	}
	*out = be;
	return 0;
}

int bridge_open(const struct net_config *nc, unsigned nic, struct event_loop *loop, struct net_backend **out)
{
	struct nl_link br;
	int rc = nl_link_get(nc->name, &br);

	if (rc == -ENODEV) {
		cv_err("bridge '%s' does not exist (create it first, e.g. ip link add %s type bridge)", nc->name,
		       nc->name);
		return CV_EINPUT;
	}
	if (rc) {
		cv_err("cannot look up bridge '%s': %s", nc->name, strerror(-rc));
		return CV_EFAIL;
	}
	if (!br.is_bridge) {
		cv_err("'%s' is not a bridge", nc->name);
		return CV_EINPUT;
	}
	return bridge_port_open(nc->tap, nic, br.index, nc->name, loop, out);
}
