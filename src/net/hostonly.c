#include "net/hostonly.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/bridge.h"
#include "net/claim.h"
#include "net/dhcp.h"
#include "net/frameq.h"
#include "net/netlink.h"
#include "util/err.h"

#define LOCK_TIMEOUT_MS 30000
#define LEASE_SECS 86400
/* A DHCP message fits in one untagged frame; larger frames are not one. */
#define PEEK_MAX 1536
#define REPLIES_MAX (64 * 1024)

struct hostonly {
	struct net_backend b;
	struct net_backend *tap;
	struct frameq replies;
	struct dhcp_lease lease;
	int lease_fd;
	char name[16];
	char bridge[16];
	uint8_t peek[PEEK_MAX];
	uint8_t reply[DHCP_REPLY_MAX];
};

static uint32_t fnv(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

uint32_t hostonly_default_net(const char *name)
{
	uint32_t h = fnv(name);

	return 10u << 24 | (128 + (h & 127)) << 16 | ((h >> 7) & 255) << 8;
}

static void addr_str(uint32_t a, char buf[16])
{
	struct in_addr in = { .s_addr = htonl(a) };

	inet_ntop(AF_INET, &in, buf, 16);
}

static uint32_t mask_of(unsigned prefix)
{
	return prefix ? ~0u << (32 - prefix) : 0;
}

/* ---- the network: lock, subnet checks, bridge */

struct net_plan {
	const char *name;
	char bridge[16];
	uint32_t net, host;
	unsigned prefix;
	int bridge_index; /* for the checks: the bridge, if it exists */
	bool host_addr_found;
	char clash[64];
};

static int lock_network(const char *name)
{
	char claim[64];
	int fd;

	snprintf(claim, sizeof(claim), "cellvm/hostonly/%s/lock", name);
	fd = claim_wait(claim, LOCK_TIMEOUT_MS);
	if (fd < 0)
		cv_err("host-only network '%s': cannot take its lock: %s", name, strerror(-fd));
	return fd;
}

/* nl_addr_each callback: records the bridge's own host address, and the
 * first address elsewhere whose subnet overlaps the network's. */
static int check_addr(void *opaque, int index, uint32_t addr, unsigned prefix)
{
	struct net_plan *p = opaque;
	uint32_t m = mask_of(prefix < p->prefix ? prefix : p->prefix);
	char ifname[IF_NAMESIZE] = "?", a[16];

	if (index == p->bridge_index) {
		if (addr == p->host && prefix == p->prefix)
			p->host_addr_found = true;
		return 0;
	}
	if ((addr & m) != (p->net & m))
		return 0;
	if_indextoname((unsigned)index, ifname);
	addr_str(addr, a);
	snprintf(p->clash, sizeof(p->clash), "%s/%u on %s", a, prefix, ifname);
	return 1;
}

static int sysctl_write(const char *path, const char *v, bool optional)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return optional && errno == ENOENT ? 0 : -errno;
	if (write(fd, v, strlen(v)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* A new bridge for the network: fixed MAC, no forwarding from it, no
 * IPv6, the host address, up. Removed again on any failure. */
static int create_bridge(struct net_plan *p)
{
	char path[96];
	uint8_t mac[6];
	struct nl_link br;
	uint32_t h = fnv(p->bridge);
	const char *step;
	int rc;

	mac[0] = 0x02; /* locally administered, unicast */
	mac[1] = 0xc7;
	memcpy(mac + 2, &h, 4);
	if ((rc = nl_bridge_add(p->bridge, mac))) {
		cv_err("host-only network '%s': cannot create bridge '%s': %s%s", p->name, p->bridge, strerror(-rc),
		       rc == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
		return rc == -EPERM || rc == -EEXIST ? CV_EINPUT : CV_EFAIL;
	}
	if ((rc = nl_link_get(p->bridge, &br))) {
		step = "look it up";
		goto fail_nodel;
	}
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding", p->bridge);
	step = "turn off forwarding";
	if ((rc = sysctl_write(path, "0", false)))
		goto fail;
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", p->bridge);
	step = "turn off IPv6";
	if ((rc = sysctl_write(path, "1", true)))
		goto fail;
	step = "add the host address";
	if ((rc = nl_addr_add(br.index, p->host, p->prefix)))
		goto fail;
	step = "bring it up";
	if ((rc = nl_link_up(br.index, 0)))
		goto fail;
	return 0;
fail:
	nl_link_del(br.index);
fail_nodel:
	cv_err("host-only network '%s': cannot %s on bridge '%s': %s", p->name, step, p->bridge, strerror(-rc));
	return CV_EFAIL;
}

/* Makes sure the network's bridge exists and is this network. Returns its
 * index (> 0), or an error after reporting. */
static int ensure_bridge(struct net_plan *p)
{
	struct nl_link br;
	char want[16];
	int rc = nl_link_get(p->bridge, &br);

	addr_str(p->net, want);
	if (rc && rc != -ENODEV) {
		cv_err("host-only network '%s': cannot look up bridge '%s': %s", p->name, p->bridge, strerror(-rc));
		return CV_EFAIL;
	}
	p->bridge_index = rc ? -1 : br.index;
	if ((rc = nl_addr_each(check_addr, p)) < 0) {
		cv_err("host-only network '%s': cannot list addresses: %s", p->name, strerror(-rc));
		return CV_EFAIL;
	}
	if (rc) {
		cv_err("host-only network '%s': its subnet %s/%u overlaps %s (choose another with net=)", p->name,
		       want, p->prefix, p->clash);
		return CV_EINPUT;
	}
	if (p->bridge_index > 0) {
		if (!br.is_bridge || !p->host_addr_found) {
			cv_err("host-only network '%s': '%s' exists but is not this network's bridge (no %s/%u on it; "
			       "was it made with another net=?)",
			       p->name, p->bridge, want, p->prefix);
			return CV_EINPUT;
		}
		return br.index;
	}
	if ((rc = create_bridge(p)))
		return rc;
	return nl_link_get(p->bridge, &br) ? CV_EFAIL : br.index;
}

/* Removes the bridge if no port is left (the caller holds the lock). */
static void drop_bridge_if_unused(const char *bridge)
{
	struct nl_link br;

	if (!nl_link_get(bridge, &br) && br.is_bridge && nl_bridge_ports(br.index) == 0)
		nl_link_del(br.index);
}

/* Claims a free address for `mac`, starting at one derived from it so a
 * VM tends to get the same address each boot. */
static int take_lease(struct net_plan *p, const uint8_t mac[6], uint32_t *addr)
{
	uint32_t size = (~mask_of(p->prefix)) - 2; /* less network, host .1 and broadcast */
	uint32_t h = 2166136261u, first;
	char claim[64], a[16];

	for (int i = 0; i < 6; i++)
		h = (h ^ mac[i]) * 16777619u;
	first = h % size;
	for (uint32_t i = 0; i < size; i++) {
		int fd;

		*addr = p->net + 2 + (first + i) % size;
		addr_str(*addr, a);
		snprintf(claim, sizeof(claim), "cellvm/hostonly/%s/lease/%s", p->name, a);
		fd = claim_try(claim);
		if (fd >= 0)
			return fd;
		if (fd != -EADDRINUSE) {
			cv_err("host-only network '%s': cannot claim address %s: %s", p->name, a, strerror(-fd));
			return CV_EFAIL;
		}
	}
	addr_str(p->net, a);
	cv_err("host-only network '%s': address pool exhausted (all %u guest addresses of %s/%u are in use)", p->name,
	       size, a, p->prefix);
	return CV_EINPUT;
}

/* ---- the back-end: the tap, with DHCP answered on the way */

static int ho_send(struct net_backend *b, const struct iovec *iov, unsigned n)
{
	struct hostonly *h = (struct hostonly *)b;
	size_t total = 0, off = 0;
	int len;

	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total > NET_HDR_LEN && total - NET_HDR_LEN <= PEEK_MAX) {
		/* Gather the frame (after the header) to look at it. */
		for (unsigned i = 0; i < n; i++) {
			const uint8_t *p = iov[i].iov_base;
			size_t l = iov[i].iov_len, skip = off < NET_HDR_LEN ? NET_HDR_LEN - off : 0;

			if (skip < l)
				memcpy(h->peek + off + skip - NET_HDR_LEN, p + skip, l - skip);
			off += l;
		}
		len = dhcp_answer(h->peek, total - NET_HDR_LEN, &h->lease, h->reply, sizeof(h->reply));
		if (len >= 0) {
			if (len > 0)
				frameq_push(&h->replies, h->reply, (size_t)len);
			return 0; /* for this network's DHCP server: never on the wire */
		}
	}
	return h->tap->ops->send(h->tap, iov, n);
}

static ssize_t ho_recv(struct net_backend *b, uint8_t *buf, size_t cap)
{
	struct hostonly *h = (struct hostonly *)b;

	if (!frameq_empty(&h->replies))
		return frameq_pop(&h->replies, buf, cap);
	return h->tap->ops->recv(h->tap, buf, cap);
}

static int ho_offload(struct net_backend *b, unsigned flags)
{
	struct hostonly *h = (struct hostonly *)b;

	return h->tap->ops->set_offload(h->tap, flags);
}

static void ho_want(struct net_backend *b, bool rx, bool tx)
{
	struct hostonly *h = (struct hostonly *)b;

	h->tap->ops->want(h->tap, rx, tx);
	frameq_want(&h->replies, rx);
}

static void ho_tap_ready(void *opaque, bool rx, bool tx)
{
	struct hostonly *h = opaque;

	if (h->b.ready)
		h->b.ready(h->b.nic, rx, tx);
}

static void ho_close(struct net_backend *b)
{
	struct hostonly *h = (struct hostonly *)b;
	int lock;

	if (h->tap)
		h->tap->ops->close(h->tap); /* our tap: it leaves the bridge and goes */
	frameq_destroy(&h->replies);
	if (h->lease_fd >= 0)
		close(h->lease_fd);
	/* The last VM out removes the network; under the lock, so a VM that
	 * is joining either already has its port or creates a new bridge. */
	lock = lock_network(h->name);
	drop_bridge_if_unused(h->bridge);
	if (lock >= 0)
		close(lock);
	free(h);
}

static const struct net_backend_ops hostonly_ops = {
	.send = ho_send,
	.recv = ho_recv,
	.set_offload = ho_offload,
	.want = ho_want,
	.close = ho_close,
};

int hostonly_open(const struct net_config *nc, unsigned nic, const uint8_t mac[6], struct event_loop *loop,
		  struct net_backend **out)
{
	struct net_plan p = { .name = nc->name };
	struct hostonly *h;
	struct nl_link br;
	int lock, index, rc;

	p.prefix = nc->net_prefix ? nc->net_prefix : 24;
	p.net = nc->net_prefix ? nc->net_addr : hostonly_default_net(nc->name);
	p.host = p.net + 1;
	snprintf(p.bridge, sizeof(p.bridge), "cvh-%.11s", nc->name);
	if (!(h = calloc(1, sizeof(*h)))) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	h->lease_fd = -1;
	h->replies.efd = -1;
	snprintf(h->name, sizeof(h->name), "%s", nc->name);
	snprintf(h->bridge, sizeof(h->bridge), "%s", p.bridge);
	if ((lock = lock_network(nc->name)) < 0) {
		free(h);
		return CV_EFAIL;
	}
	if ((rc = index = ensure_bridge(&p)) < 0)
		goto fail;
	if ((rc = h->lease_fd = take_lease(&p, mac, &h->lease.addr)) < 0)
		goto fail;
	if ((rc = bridge_port_open(nc->tap, nic, index, p.bridge, loop, &h->tap)))
		goto fail;
	h->b = (struct net_backend){ .ops = &hostonly_ops, .offloads = h->tap->offloads };
	h->tap->ready = ho_tap_ready;
	h->tap->nic = h;
	h->lease.server = p.host;
	h->lease.prefix = p.prefix;
	h->lease.lease_secs = LEASE_SECS;
	if (!nl_link_get(p.bridge, &br))
		memcpy(h->lease.server_mac, br.mac, 6);
	if ((rc = frameq_init(&h->replies, loop, REPLIES_MAX, &h->b)))
		goto fail;
	close(lock);
	*out = &h->b;
	return 0;
fail:
	if (h->tap)
		h->tap->ops->close(h->tap);
	if (h->lease_fd >= 0)
		close(h->lease_fd);
	drop_bridge_if_unused(p.bridge);
	close(lock);
	free(h);
	return rc == CV_EINPUT ? CV_EINPUT : CV_EFAIL;
}
