/* The few rtnetlink requests cellvm's bridged back-ends make: look up,
 * create and delete links, enslave a tap to a bridge, add and list IPv4
 * addresses. Each call opens its own socket in the caller's network
 * namespace. Errors are returned as -errno; nothing is reported here. */
#ifndef CELLVM_NET_NETLINK_H
#define CELLVM_NET_NETLINK_H

#include <stdbool.h>
#include <stdint.h>

struct nl_link {
	int index;
	bool is_bridge;
	uint8_t mac[6];
	int master; /* 0: none */
};

/* -ENODEV when there is no link of that name. */
int nl_link_get(const char *name, struct nl_link *out);
/* A fixed MAC keeps the bridge's address from following its ports. */
int nl_bridge_add(const char *name, const uint8_t mac[6]);
int nl_link_del(int index);
/* Brings the link up and, with master > 0, makes it a port of master. */
int nl_link_up(int index, int master);
/* Number of links whose master is `index`, or -errno. */
int nl_bridge_ports(int index);
/* addr in host order. */
int nl_addr_add(int index, uint32_t addr, unsigned prefix);

/* Calls fn for every IPv4 address (host order) of every link; stops at and
 * returns fn's first non-zero result. */
int nl_addr_each(int (*fn)(void *opaque, int index, uint32_t addr, unsigned prefix), void *opaque);

#endif
