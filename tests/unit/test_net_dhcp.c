/* The host-only network's DHCP answers: well-formed exchanges, frames that
 * are not for it, and hostile packets (truncated, bad lengths). Frames are
 * copied into exactly-sized heap buffers so ASan catches any over-read. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "net/dhcp.h"

#define CLIENT_MAC 0x52, 0x54, 0x00, 0x11, 0x22, 0x33

static const struct dhcp_lease lease = {
	.server = 0x0a800501, /* 10.128.5.1 */
	.addr = 0x0a800507,   /* 10.128.5.7 */
	.prefix = 24,
	.lease_secs = 3600,
	.server_mac = { 0x02, 0xc7, 1, 2, 3, 4 },
};

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A client message: type, then `opts` (raw option bytes, END added unless
 * no_end). Returns the frame length. */
static size_t client_frame(uint8_t *f, int type, const uint8_t *opts, size_t nopts, bool broadcast, bool no_end)
{
	static const uint8_t mac[6] = { CLIENT_MAC };
	uint8_t *ip = f + 14, *udp = ip + 20, *b = udp + 8, *o;
	size_t blen, n;

	memset(f, 0, 600);
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, 0x0800);
	b[0] = 1, b[1] = 1, b[2] = 6;
	put32(b + 4, 0xdeadbeef);
	if (broadcast)
		b[10] = 0x80;
	memcpy(b + 28, mac, 6);
	put32(b + 236, 0x63825363);
	o = b + 240;
	*o++ = 53, *o++ = 1, *o++ = (uint8_t)type;
	if (nopts)
		memcpy(o, opts, nopts);
	o += nopts;
	if (!no_end)
		*o++ = 255;
	blen = (size_t)(o - b);
	put16(udp, 68);
	put16(udp + 2, 67);
	put16(udp + 4, (unsigned)(8 + blen));
	ip[0] = 0x45;
	put16(ip + 2, (unsigned)(20 + 8 + blen));
	ip[8] = 64;
	ip[9] = 17;
	put32(ip + 16, 0xffffffff);
	n = 14 + 20 + 8 + blen;
	return n;
}

/* dhcp_answer on an exact-size copy. */
static int answer(const uint8_t *f, size_t len, uint8_t *out)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	memcpy(copy, f, len);
	rc = dhcp_answer(copy, len, &lease, out, DHCP_REPLY_MAX);
	free(copy);
	return rc;
}

/* The value of option tag in a reply, or NULL. */
static const uint8_t *reply_opt(const uint8_t *r, int len, uint8_t tag)
{
	const uint8_t *p = r + 14 + 20 + 8 + 240, *end = r + len;

	while (p < end && *p != 255) {
		if (*p == 0) {
			p++;
			continue;
		}
		if (*p == tag)
			return p + 2;
		p += 2 + p[1];
	}
	return NULL;
}

static void check_reply(const uint8_t *r, int len, int type, bool broadcast)
{
	static const uint8_t mac[6] = { CLIENT_MAC }, bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	const uint8_t *ip = r + 14, *udp = ip + 20;
	uint32_t sum;
	unsigned ulen = (unsigned)(udp[4] << 8 | udp[5]);

	assert_true(len >= 14 + 20 + 8 + 300);
	assert_memory_equal(r, broadcast ? bcast : mac, 6);
	assert_memory_equal(r + 6, lease.server_mac, 6);
	assert_int_equal(dhcp_ip_checksum(ip, 20, 0), 0);
	assert_int_equal(get32(ip + 12), lease.server);
	assert_int_equal(udp[1], 67);
	assert_int_equal(udp[3], 68);
	assert_int_equal((size_t)len, 14 + 20 + (size_t)ulen);
	/* The UDP checksum verifies over the pseudo-header. */
	sum = (lease.server >> 16) + (lease.server & 0xffff) + (get32(ip + 16) >> 16) + (get32(ip + 16) & 0xffff) + 17 +
	      ulen;
	assert_int_equal(dhcp_ip_checksum(udp, ulen, sum), 0);
	assert_int_equal(udp[8], 2); /* BOOTREPLY */
	assert_int_equal(get32(udp + 8 + 4), 0xdeadbeef);
	assert_int_equal(*reply_opt(r, len, 53), type);
	assert_int_equal(get32(reply_opt(r, len, 54)), lease.server);
}

static void test_discover_offer(void **state)
{
	uint8_t f[600], r[DHCP_REPLY_MAX];
	size_t n = client_frame(f, 1, NULL, 0, false, false);
	int len = answer(f, n, r);

	(void)state;
	check_reply(r, len, 2, false);
	assert_int_equal(get32(r + 14 + 28 + 16), lease.addr); /* yiaddr */
	assert_int_equal(get32(r + 14 + 16), lease.addr);      /* unicast to it */
	assert_int_equal(get32(reply_opt(r, len, 1)), 0xffffff00);
	assert_int_equal(get32(reply_opt(r, len, 51)), 3600);
	assert_null(reply_opt(r, len, 3)); /* no router: nothing beyond the network */

	n = client_frame(f, 1, NULL, 0, true, false);
	len = answer(f, n, r);
	check_reply(r, len, 2, true);
	assert_int_equal(get32(r + 14 + 16), 0xffffffff);
}

static void test_request_ack_nak(void **state)
{
	uint8_t f[600], r[DHCP_REPLY_MAX];
	uint8_t good[] = { 50, 4, 10, 128, 5, 7, 54, 4, 10, 128, 5, 1 };
	uint8_t wrong[] = { 50, 4, 10, 128, 5, 99 };
	uint8_t other_server[] = { 50, 4, 10, 128, 5, 7, 54, 4, 10, 9, 9, 9 };
	size_t n;
	int len;

	(void)state;
	len = answer(f, client_frame(f, 3, good, sizeof(good), false, false), r);
	check_reply(r, len, 5, false);
	assert_int_equal(get32(r + 14 + 28 + 16), lease.addr);
	len = answer(f, client_frame(f, 3, wrong, sizeof(wrong), false, false), r);
	check_reply(r, len, 6, true); /* NAKs are broadcast */
	assert_int_equal(get32(r + 14 + 28 + 16), 0);
	assert_null(reply_opt(r, len, 51));
	/* Another server's offer was chosen: stay quiet. */
	assert_int_equal(answer(f, client_frame(f, 3, other_server, sizeof(other_server), false, false), r), 0);
	/* Renewal: no option 50, ciaddr set. */
	n = client_frame(f, 3, NULL, 0, false, false);
	put32(f + 14 + 28 + 12, lease.addr);
	len = answer(f, n, r);
	check_reply(r, len, 5, false);
	assert_int_equal(get32(r + 14 + 28 + 12), lease.addr);
}

static void test_no_answer_types(void **state)
{
	uint8_t f[600], r[DHCP_REPLY_MAX];

	(void)state;
	assert_int_equal(answer(f, client_frame(f, 7, NULL, 0, false, false), r), 0); /* RELEASE */
	assert_int_equal(answer(f, client_frame(f, 4, NULL, 0, false, false), r), 0); /* DECLINE */
	assert_int_equal(answer(f, client_frame(f, 8, NULL, 0, false, false), r), 0); /* INFORM */
	assert_int_equal(answer(f, client_frame(f, 2, NULL, 0, false, false), r), 0); /* an OFFER from a guest */
}

static void test_not_for_the_server(void **state)
{
	uint8_t f[600], r[DHCP_REPLY_MAX];
	size_t n = client_frame(f, 1, NULL, 0, false, false);

	(void)state;
	f[12] = 0x08, f[13] = 0x06; /* ARP */
	assert_int_equal(answer(f, n, r), -1);
	n = client_frame(f, 1, NULL, 0, false, false);
	put16(f + 14 + 20 + 2, 53); /* DNS */
	assert_int_equal(answer(f, n, r), -1);
	n = client_frame(f, 1, NULL, 0, false, false);
	f[14 + 9] = 6; /* TCP */
	assert_int_equal(answer(f, n, r), -1);
	n = client_frame(f, 1, NULL, 0, false, false);
	put16(f + 14 + 6, 0x2000); /* more fragments */
	assert_int_equal(answer(f, n, r), -1);
	n = client_frame(f, 1, NULL, 0, false, false);
	f[14] = 0x44; /* IHL 4: shorter than an IPv4 header */
	assert_int_equal(answer(f, n, r), -1);
	n = client_frame(f, 1, NULL, 0, false, false);
	f[14] = 0x65; /* IPv6 version nibble */
	assert_int_equal(answer(f, n, r), -1);
}

static void test_hostile_lengths(void **state)
{
	uint8_t f[600], r[DHCP_REPLY_MAX];
	uint8_t past_end[] = { 12, 200, 'x' };
	uint8_t bad_type_len[] = { 53, 2, 1, 1 };
	size_t n = client_frame(f, 1, NULL, 0, false, false);

	(void)state;
	/* Every truncation of a valid DISCOVER: never a reply, never a read
	 * past the end (ASan); the IP length then exceeds the frame. */
	for (size_t len = 0; len < n; len++)
		assert_true(answer(f, len, r) <= 0);
	/* UDP length shorter than a BOOTP message, or longer than the IP packet. */
	put16(f + 14 + 20 + 4, 8 + 100);
	assert_int_equal(answer(f, n, r), 0);
	n = client_frame(f, 1, NULL, 0, false, false);
	put16(f + 14 + 20 + 4, 8 + 2000);
	assert_int_equal(answer(f, n, r), 0);
	/* Bad magic cookie, wrong hardware type. */
	n = client_frame(f, 1, NULL, 0, false, false);
	f[14 + 28 + 236] = 0;
	assert_int_equal(answer(f, n, r), 0);
	n = client_frame(f, 1, NULL, 0, false, false);
	f[14 + 28 + 1] = 6;
	assert_int_equal(answer(f, n, r), 0);
	/* An option whose length runs past the packet; no END; a message
	 * type of the wrong length. */
	assert_int_equal(answer(f, client_frame(f, 1, past_end, sizeof(past_end), false, true), r), 0);
	assert_int_equal(answer(f, client_frame(f, 1, NULL, 0, false, true), r), 0);
	assert_int_equal(answer(f, client_frame(f, 1, bad_type_len, sizeof(bad_type_len), false, false), r), 0);
	/* A reply buffer that is too small is refused, not overrun. */
	n = client_frame(f, 1, NULL, 0, false, false);
	assert_int_equal(dhcp_answer(f, n, &lease, r, DHCP_REPLY_MAX - 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discover_offer),
		cmocka_unit_test(test_request_ack_nak),
		cmocka_unit_test(test_no_answer_types),
		cmocka_unit_test(test_not_for_the_server),
		cmocka_unit_test(test_hostile_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
