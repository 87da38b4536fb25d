#include "net/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_arp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQ_MAX 512
#define RESP_MAX 32768

struct req {
	struct nlmsghdr h;
	uint8_t body[REQ_MAX];
};

static void *tail(struct req *r)
{
	return (uint8_t *)&r->h + NLMSG_ALIGN(r->h.nlmsg_len);
}

static void put(struct req *r, const void *data, size_t len)
{
	memcpy(tail(r), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + (uint32_t)len;
}

static struct rtattr *attr(struct req *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = tail(r);

	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

/* Closes a nested attribute opened with attr(r, type, NULL, 0). */
static void nest_end(struct req *r, struct rtattr *a)
{
	a->rta_len = (unsigned short)((uint8_t *)tail(r) - (uint8_t *)a);
}

static void init(struct req *r, uint16_t type, uint16_t flags)
{
	memset(r, 0, sizeof(*r));
	r->h.nlmsg_len = NLMSG_HDRLEN;
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_REQUEST | flags;
	r->h.nlmsg_seq = 1;
}

typedef int (*msg_fn)(void *opaque, const struct nlmsghdr *h);

/* Sends r and reads the answer: the ack (0 or -errno), or for a dump
 * every message passed to fn until NLMSG_DONE. */
static int transact(struct req *r, msg_fn fn, void *opaque)
{
	static uint8_t buf[RESP_MAX] __attribute__((aligned(4)));
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), rc = -EIO;

	if (s < 0)
		return -errno;
	if (!fn)
		r->h.nlmsg_flags |= NLM_F_ACK;
	if (sendto(s, r, r->h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = recv(s, buf, sizeof(buf), 0);
		unsigned int len = (unsigned int)n;

		if (n < 0) {
			rc = -errno;
			goto out;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				rc = 0;
				goto out;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				rc = h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)) ? -EIO : e->error;
				goto out;
			}
			if (fn && (rc = fn(opaque, h)))
				goto out;
		}
		if (!n) {
			rc = -EIO;
			goto out;
		}
	}
out:
	close(s);
	return rc;
}

/* ---- links */

struct link_query {
	struct nl_link *out;
	int count_master; /* nl_bridge_ports: count links with this master */
	int count;
};

static void parse_link(const struct nlmsghdr *h, struct nl_link *l)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	int len = (int)IFLA_PAYLOAD(h);

	memset(l, 0, sizeof(*l));
	l->index = ifi->ifi_index;
	for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6)
			memcpy(l->mac, RTA_DATA(a), 6);
		else if (a->rta_type == IFLA_MASTER && RTA_PAYLOAD(a) >= 4)
			memcpy(&l->master, RTA_DATA(a), 4);
		else if (a->rta_type == IFLA_LINKINFO) {
			int ilen = (int)RTA_PAYLOAD(a);

			for (const struct rtattr *i = RTA_DATA(a); RTA_OK(i, ilen); i = RTA_NEXT(i, ilen))
				if (i->rta_type == IFLA_INFO_KIND && RTA_PAYLOAD(i) >= 6 &&
				    !memcmp(RTA_DATA(i), "bridge", 6) &&
				    (RTA_PAYLOAD(i) == 6 || ((const char *)RTA_DATA(i))[6] == 0))
					l->is_bridge = true;
		}
	}
}

static int on_link(void *opaque, const struct nlmsghdr *h)
{
	struct link_query *q = opaque;
	struct nl_link l;

	if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
		return 0;
	parse_link(h, &l);
	if (q->out)
		*q->out = l;
	else if (l.master == q->count_master)
		q->count++;
	return 0;
}

int nl_link_get(const char *name, struct nl_link *out)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct link_query q = { .out = out };
	struct req r;
	int rc;

	if (!*name || strlen(name) >= IFNAMSIZ)
		return -ENODEV;
	out->index = 0;
	init(&r, RTM_GETLINK, 0);
	put(&r, &ifi, sizeof(ifi));
	attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
	/* A single-link GET answers with the link, then no DONE: the ack
	 * flag is not set, so read just the one message. */
	r.h.nlmsg_flags |= NLM_F_ACK;
	rc = transact(&r, on_link, &q);
	if (rc == -ENODEV || (!rc && !out->index))
		return -ENODEV;
	return rc;
}

int nl_bridge_add(const char *name, const uint8_t mac[6])
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rtattr *info;
	struct req r;

	init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	put(&r, &ifi, sizeof(ifi));
	attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
	attr(&r, IFLA_ADDRESS, mac, 6);
	info = attr(&r, IFLA_LINKINFO, NULL, 0);
	attr(&r, IFLA_INFO_KIND, "bridge", 6);
	nest_end(&r, info);
	return transact(&r, NULL, NULL);
}

int nl_link_del(int index)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = index };
	struct req r;

	init(&r, RTM_DELLINK, 0);
	put(&r, &ifi, sizeof(ifi));
	return transact(&r, NULL, NULL);
}

int nl_link_up(int index, int master)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = IFF_UP,
				 .ifi_change = IFF_UP };
	struct req r;

	init(&r, RTM_NEWLINK, 0);
	put(&r, &ifi, sizeof(ifi));
	if (master > 0)
		attr(&r, IFLA_MASTER, &master, sizeof(master));
	return transact(&r, NULL, NULL);
}

int nl_bridge_ports(int index)
{
	struct rtgenmsg g = { .rtgen_family = AF_UNSPEC };
	struct link_query q = { .count_master = index };
	struct req r;
	int rc;

	init(&r, RTM_GETLINK, NLM_F_DUMP);
	put(&r, &g, sizeof(g));
	rc = transact(&r, on_link, &q);
	return rc ? rc : q.count;
}

/* ---- addresses */

int nl_addr_add(int index, uint32_t addr, unsigned prefix)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = (unsigned char)prefix,
				 .ifa_index = (unsigned)index };
	uint32_t a = htonl(addr), bcast = htonl(addr | (prefix ? ~0u >> prefix : ~0u));
	struct req r;

	if (prefix >= 32)
		bcast = a;
	init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
	put(&r, &ifa, sizeof(ifa));
	attr(&r, IFA_LOCAL, &a, 4);
	attr(&r, IFA_ADDRESS, &a, 4);
	attr(&r, IFA_BROADCAST, &bcast, 4);
	return transact(&r, NULL, NULL);
}

struct addr_walk {
	int (*fn)(void *opaque, int index, uint32_t addr, unsigned prefix);
	void *opaque;
};

static int on_addr(void *opaque, const struct nlmsghdr *h)
{
	struct addr_walk *w = opaque;
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	int len;

	if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) || ifa->ifa_family != AF_INET)
		return 0;
	len = (int)IFA_PAYLOAD(h);
	for (const struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		uint32_t v;

		if (a->rta_type != IFA_LOCAL || RTA_PAYLOAD(a) != 4)
			continue;
		memcpy(&v, RTA_DATA(a), 4);
		return w->fn(w->opaque, (int)ifa->ifa_index, ntohl(v), ifa->ifa_prefixlen);
	}
	return 0;
}

int nl_addr_each(int (*fn)(void *opaque, int index, uint32_t addr, unsigned prefix), void *opaque)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_INET };
	struct addr_walk w = { fn, opaque };
	struct req r;

	init(&r, RTM_GETADDR, NLM_F_DUMP);
	put(&r, &ifa, sizeof(ifa));
	return transact(&r, on_addr, &w);
}
