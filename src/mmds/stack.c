#include "mmds/stack.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "mmds/tcp.h"
#include "net/backend.h"
#include "net/dhcp.h"
#include "util/bytes.h"
#include "util/err.h"
#include "util/iov.h"

#define ETH_LEN 14
#define IP_LEN 20
#define ARP_LEN 28
/* The largest frame to the MMDS that means anything: one TCP segment
 * within the window it advertises. Larger ones are dropped. */
#define FRAME_CAP (NET_HDR_LEN + ETH_LEN + 60 + 60 + TCP_RCV_BUF)

struct mmds_stack {
	struct net_intercept ic;
	struct mmds_service svc;
	uint32_t addr;
	uint8_t guest_mac[6];
	bool arp_pending;
	uint8_t arp_mac[6];
	uint32_t arp_ip;
	uint16_t ip_id;
	struct tcp_server *tcp;
	struct event_timer timer;
	bool timer_ok;
	uint8_t frame[FRAME_CAP];
};

/* Firecracker's MMDS MAC address. */
static const uint8_t mmds_mac[6] = { 0x06, 0x01, 0x23, 0x45, 0x67, 0x01 };

bool mmds_addr_ok(uint32_t a)
{
	return (a >> 16) == 0xa9fe && ((a >> 8) & 0xff) != 0 && ((a >> 8) & 0xff) != 255;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static long serve(void *ctx, const uint8_t *buf, size_t len, uint64_t now, char **resp, size_t *rl, bool *close)
{
	struct mmds_stack *st = ctx;
	struct http_request req;
	int rc = http_parse_request((const char *)buf, len, &req);

	if (rc == HTTP_INCOMPLETE)
		return 0;
	if (rc == HTTP_ERROR) {
		*close = true; /* the stream cannot be resynchronised */
		return mmds_http_error(req.status, req.error, resp, rl) ? -1 : (long)len;
	}
	*close = !req.keep_alive;
	return mmds_http_answer(&st->svc, (const char *)buf, &req, now, resp, rl) ? -1 : (long)req.total_len;
}

/* An ARP request for the MMDS: remember to answer it. */
static bool take_arp(struct mmds_stack *st, const uint8_t *a, size_t len)
{
	if (len < ARP_LEN || be16(a) != 1 || be16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4 || be16(a + 6) != 1 ||
	    be32(a + 24) != st->addr)
		return false;
	memcpy(st->arp_mac, a + 8, 6);
	st->arp_ip = be32(a + 14);
	st->arp_pending = true;
	return true;
}

static void take_ipv4(struct mmds_stack *st, const uint8_t *ip, size_t len)
{
	size_t hl = (size_t)(ip[0] & 15) * 4, tl = be16(ip + 2);

	/* Malformed, fragmented or not TCP: dropped (nothing else is served). */
	if (hl < IP_LEN || tl < hl || tl > len || (be16(ip + 6) & 0x3fff) || ip[9] != 6)
		return;
	tcp_input(st->tcp, be32(ip + 12), ip + hl, tl - hl, now_ms());
}

static bool stack_take(struct net_intercept *ic, const struct iovec *iov, unsigned n)
{
	struct mmds_stack *st = (struct mmds_stack *)ic;
	uint64_t total = iov_total(iov, n);
	/* Only the headers are looked at first: most frames are not the MMDS's. */
	size_t len = (size_t)iov_to_buf(iov, n, 0, st->frame, NET_HDR_LEN + ETH_LEN + ARP_LEN);
	const uint8_t *eth = st->frame + NET_HDR_LEN, *ip = eth + ETH_LEN;

	if (len < NET_HDR_LEN + ETH_LEN)
		return false;
	len -= NET_HDR_LEN + ETH_LEN;
	if (be16(eth + 12) == 0x0806) {
		if (!take_arp(st, ip, len))
			return false;
	} else if (be16(eth + 12) != 0x0800 || len < IP_LEN || ip[0] >> 4 != 4 || be32(ip + 16) != st->addr) {
		return false;
	} else if (total <= FRAME_CAP) {
		len = (size_t)iov_to_buf(iov, n, 0, st->frame, FRAME_CAP) - NET_HDR_LEN - ETH_LEN;
		take_ipv4(st, ip, len);
	}
	memcpy(st->guest_mac, eth + 6, 6);
	return true;
}

/* A zero virtio-net header (checksums are complete) and the Ethernet header. */
static size_t eth_header(uint8_t *buf, const uint8_t dst[6], uint16_t type)
{
	memset(buf, 0, NET_HDR_LEN);
	memcpy(buf + NET_HDR_LEN, dst, 6);
	memcpy(buf + NET_HDR_LEN + 6, mmds_mac, 6);
	put16(buf + NET_HDR_LEN + 12, type);
	return NET_HDR_LEN + ETH_LEN;
}

static size_t arp_reply(struct mmds_stack *st, uint8_t *buf)
{
	static const uint8_t head[8] = { 0, 1, 8, 0, 6, 4, 0, 2 };
	uint8_t *a = buf + eth_header(buf, st->arp_mac, 0x0806);

	memcpy(a, head, sizeof(head));
	memcpy(a + 8, mmds_mac, 6);
	put32(a + 14, st->addr);
	memcpy(a + 18, st->arp_mac, 6);
	put32(a + 24, st->arp_ip);
	st->arp_pending = false;
	return NET_HDR_LEN + ETH_LEN + ARP_LEN;
}

static void arm(struct mmds_stack *st, uint64_t now)
{
	long ms = tcp_next_timeout(st->tcp, now);

	if (ms < 0)
		event_timer_cancel(&st->timer);
	else
		event_timer_arm(&st->timer, (uint64_t)(ms ? ms : 1) * 1000000);
}

static size_t stack_give(struct net_intercept *ic, uint8_t *buf, size_t cap)
{
	struct mmds_stack *st = (struct mmds_stack *)ic;
	size_t off = NET_HDR_LEN + ETH_LEN + IP_LEN, seg;
	uint64_t now = now_ms();
	uint32_t raddr;
	uint8_t *ip;

	if (cap < off + TCP_HDR_MAX)
		return 0;
	if (st->arp_pending)
		return arp_reply(st, buf);
	seg = tcp_output(st->tcp, buf + off, cap - off, now, &raddr);
	arm(st, now);
	if (!seg)
		return 0;
	ip = buf + eth_header(buf, st->guest_mac, 0x0800);
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(IP_LEN + seg));
	put16(ip + 4, st->ip_id++);
	put16(ip + 6, 0x4000); /* don't fragment */
	ip[8] = 64;
	ip[9] = 6;
	put16(ip + 10, 0);
	put32(ip + 12, st->addr);
	put32(ip + 16, raddr);
	put16(ip + 10, dhcp_ip_checksum(ip, IP_LEN, 0));
	return off + seg;
}

static void stack_destroy(struct net_intercept *ic)
{
	struct mmds_stack *st = (struct mmds_stack *)ic;

	if (st->timer_ok)
		event_timer_destroy(&st->timer);
	tcp_server_free(st->tcp);
	free(st);
}

static const struct net_intercept_ops stack_ops = {
	.take = stack_take,
	.give = stack_give,
	.destroy = stack_destroy,
};

static void on_timer(void *opaque)
{
	struct mmds_stack *st = opaque;

	st->ic.wake(st->ic.nic);
}

struct net_intercept *mmds_stack_new(const struct mmds_service *svc, uint32_t addr, struct event_loop *loop)
{
	struct mmds_stack *st = calloc(1, sizeof(*st));
	uint32_t seed = 0;

	if (!st) {
		cv_err("out of memory");
		return NULL;
	}
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint32_t)now_ms();
	st->ic.ops = &stack_ops;
	st->svc = *svc;
	st->addr = addr;
	st->tcp = tcp_server_new(addr, MMDS_PORT, &(struct tcp_app){ serve, st }, seed);
	if (!st->tcp || event_timer_init(&st->timer, loop, on_timer, st)) {
		cv_err("mmds: cannot set up the network stack");
		stack_destroy(&st->ic);
		return NULL;
	}
	st->timer_ok = true;
	return &st->ic;
}
