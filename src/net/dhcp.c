#include "net/dhcp.h"

#include <string.h>

#include "util/bytes.h"

#define ETH_LEN 14
#define IP_LEN 20
#define UDP_LEN 8
#define BOOTP_FIXED 236 /* op .. file */
#define COOKIE 0x63825363u
#define BOOTP_MIN 300   /* BOOTP's minimum message: some clients insist */
#define SERVER_PORT 67
#define CLIENT_PORT 68

enum { DISCOVER = 1, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM };
enum { OPT_PAD = 0, OPT_MASK = 1, OPT_REQ_ADDR = 50, OPT_LEASE = 51, OPT_TYPE = 53, OPT_SERVER = 54, OPT_END = 255 };

uint16_t dhcp_ip_checksum(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		sum += be16(p);
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* What the client's options say; false if they are malformed. */
struct client_opts {
	int type;
	uint32_t req_addr, server;
	int has_req_addr, has_server;
};

static int parse_opts(const uint8_t *p, size_t len, struct client_opts *o)
{
	size_t i = 0;

	memset(o, 0, sizeof(*o));
	while (i < len) {
		uint8_t tag = p[i], olen;

		if (tag == OPT_END)
			return 1;
		if (tag == OPT_PAD) {
			i++;
			continue;
		}
		if (i + 2 > len || i + 2 + (size_t)(olen = p[i + 1]) > len)
			return 0; /* the length runs past the packet */
		if (tag == OPT_TYPE && olen == 1)
			o->type = p[i + 2];
		else if (tag == OPT_REQ_ADDR && olen == 4)
			o->req_addr = be32(p + i + 2), o->has_req_addr = 1;
		else if (tag == OPT_SERVER && olen == 4)
			o->server = be32(p + i + 2), o->has_server = 1;
		else if (tag == OPT_TYPE || tag == OPT_REQ_ADDR || tag == OPT_SERVER)
			return 0; /* wrong length for what it is */
		i += 2 + (size_t)olen;
	}
	return 0; /* no END */
}

static uint8_t *opt(uint8_t *p, uint8_t tag, uint8_t len, const void *data)
{
	p[0] = tag;
	p[1] = len;
	memcpy(p + 2, data, len);
	return p + 2 + len;
}

static uint8_t *opt32(uint8_t *p, uint8_t tag, uint32_t v)
{
	uint8_t b[4];

	put32(b, v);
	return opt(p, tag, 4, b);
}

/* Writes the reply of `type` to request `req` (the BOOTP message). */
static int build(const uint8_t *req, int type, const struct dhcp_lease *l, uint8_t *out)
{
	uint8_t *ip = out + ETH_LEN, *udp = ip + IP_LEN, *b = udp + UDP_LEN, *o, t = (uint8_t)type;
	static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	int broadcast = (req[10] & 0x80) || type == NAK;
	uint32_t yiaddr = type == NAK ? 0 : l->addr, dst, sum;
	uint16_t csum;
	size_t blen, total;

	memset(out, 0, DHCP_REPLY_MAX);
	/* BOOTP: op reply, htype/hlen/hops copied, xid, secs 0, flags, ciaddr, yiaddr, chaddr. */
	b[0] = 2;
	memcpy(b + 1, req + 1, 2);
	memcpy(b + 4, req + 4, 4);   /* xid */
	memcpy(b + 10, req + 10, 2); /* flags */
	if (type == ACK)
		memcpy(b + 12, req + 12, 4); /* ciaddr of a renewing client */
	put32(b + 16, yiaddr);
	memcpy(b + 24, req + 24, 4);  /* giaddr */
	memcpy(b + 28, req + 28, 16); /* chaddr */
	put32(b + BOOTP_FIXED, COOKIE);
	o = b + BOOTP_FIXED + 4;
	o = opt(o, OPT_TYPE, 1, &t);
	o = opt32(o, OPT_SERVER, l->server);
	if (type != NAK) {
		o = opt32(o, OPT_LEASE, l->lease_secs);
		o = opt32(o, OPT_MASK, l->prefix ? ~0u << (32 - l->prefix) : 0);
	}
	*o++ = OPT_END;
	blen = (size_t)(o - b);
	if (blen < BOOTP_MIN)
		blen = BOOTP_MIN; /* zero padding */

	/* UDP and IPv4 from the server to the client. */
	dst = broadcast || !yiaddr ? 0xffffffffu : yiaddr;
	put16(udp, SERVER_PORT);
	put16(udp + 2, CLIENT_PORT);
	put16(udp + 4, (uint16_t)(UDP_LEN + blen));
	total = IP_LEN + UDP_LEN + blen;
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)total);
	ip[8] = 64; /* TTL */
	ip[9] = 17; /* UDP */
	put32(ip + 12, l->server);
	put32(ip + 16, dst);
	put16(ip + 10, dhcp_ip_checksum(ip, IP_LEN, 0));
	/* Pseudo-header: addresses, protocol, UDP length. */
	sum = (l->server >> 16) + (l->server & 0xffff) + (dst >> 16) + (dst & 0xffff) + 17 + UDP_LEN + (uint32_t)blen;
	csum = dhcp_ip_checksum(udp, UDP_LEN + blen, sum);
	put16(udp + 6, csum ? csum : 0xffff); /* 0 would mean "no checksum" */

	memcpy(out, broadcast ? bcast_mac : req + 28, 6);
	memcpy(out + 6, l->server_mac, 6);
	put16(out + 12, 0x0800);
	return (int)(ETH_LEN + total);
}

int dhcp_answer(const uint8_t *frame, size_t len, const struct dhcp_lease *l, uint8_t *out, size_t cap)
{
	const uint8_t *ip = frame + ETH_LEN, *udp, *b;
	size_t ihl, ip_total, udp_len;
	struct client_opts o;
	int reply;

	/* Only untagged IPv4 UDP to port 67, unfragmented, is for us. */
	if (len < ETH_LEN + IP_LEN || be16(frame + 12) != 0x0800 || (ip[0] >> 4) != 4 || ip[9] != 17)
		return -1;
	ihl = (size_t)(ip[0] & 15) * 4;
	ip_total = be16(ip + 2);
	if (ihl < IP_LEN || ip_total < ihl + UDP_LEN || ETH_LEN + ip_total > len || (be16(ip + 6) & 0x3fff))
		return -1;
	udp = ip + ihl;
	if (be16(udp + 2) != SERVER_PORT)
		return -1;
	/* From here on it is addressed to the network's DHCP server, which
	 * is this code: malformed messages are dropped, not passed on. */
	udp_len = be16(udp + 4);
	if (udp_len < UDP_LEN + BOOTP_FIXED + 4 || udp_len > ip_total - ihl || cap < DHCP_REPLY_MAX)
		return 0;
	b = udp + UDP_LEN;
	if (b[0] != 1 || b[1] != 1 || b[2] != 6 || be32(b + BOOTP_FIXED) != COOKIE)
		return 0; /* not an Ethernet BOOTREQUEST */
	if (!parse_opts(b + BOOTP_FIXED + 4, udp_len - UDP_LEN - BOOTP_FIXED - 4, &o))
		return 0;
	switch (o.type) {
	case DISCOVER:
		reply = OFFER;
		break;
	case REQUEST:
		if (o.has_server && o.server != l->server)
			return 0; /* the client chose another server's offer */
		if ((o.has_req_addr ? o.req_addr : be32(b + 12)) == l->addr)
			reply = ACK;
		else
			reply = NAK;
		break;
	default:
		return 0; /* DECLINE, RELEASE, INFORM and others: nothing to say */
	}
	return build(b, reply, l, out);
}
