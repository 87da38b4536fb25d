/* The MMDS's TCP endpoint fed crafted segments (handshake, data, ACKs,
 * window, retransmission, FIN, RST, connection bounds) and its network
 * stack fed whole frames (ARP, IPv4, a full HTTP exchange). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmds/stack.h"
#include "mmds/tcp.h"
#include "net/backend.h"

#define LADDR 0xa9fea9feu
#define RADDR 0x0a00020fu
enum { FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10 };

struct out {
	uint16_t sport, dport, wnd;
	uint32_t seq, ack;
	uint8_t flags;
	size_t len;
	char data[4096];
};

/* The app: each line is a request, answered "R:" + the line without its
 * newline; "close" asks for a FIN. */
static long line_app(void *ctx, const uint8_t *buf, size_t len, uint64_t now, char **resp, size_t *rl, bool *close)
{
	const uint8_t *nl = memchr(buf, '\n', len);

	(void)ctx;
	(void)now;
	if (!nl)
		return 0;
	*rl = (size_t)(nl - buf) + 2;
	*resp = malloc(*rl);
	memcpy(*resp, "R:", 2);
	memcpy(*resp + 2, buf, *rl - 2);
	*close = !strncmp((const char *)buf, "close", 5);
	return nl - buf + 1;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

static void send_seg(struct tcp_server *t, uint16_t sport, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
		     const char *data, uint64_t now)
{
	uint8_t b[2048] = { 0 };
	size_t n = data ? strlen(data) : 0;

	b[0] = (uint8_t)(sport >> 8);
	b[1] = (uint8_t)sport;
	b[2] = 0;
	b[3] = 80;
	for (int i = 0; i < 4; i++) {
		b[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
		b[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
	}
	b[12] = 5 << 4;
	b[13] = flags;
	b[14] = (uint8_t)(wnd >> 8);
	b[15] = (uint8_t)wnd;
	if (n)
		memcpy(b + 20, data, n);
	tcp_input(t, RADDR, b, 20 + n, now);
}

/* The next segment out; false if none. Checks its checksum. */
static bool next(struct tcp_server *t, uint64_t now, struct out *o)
{
	uint8_t b[4096];
	uint32_t ra;
	size_t n = tcp_output(t, b, sizeof(b), now, &ra), hl;

	if (!n)
		return false;
	assert_int_equal(ra, RADDR);
	assert_int_equal(tcp_checksum(LADDR, RADDR, b, n), 0);
	hl = (size_t)(b[12] >> 4) * 4;
	*o = (struct out){ .sport = rd16(b), .dport = rd16(b + 2), .seq = rd32(b + 4), .ack = rd32(b + 8),
			   .flags = b[13], .wnd = rd16(b + 14), .len = n - hl };
	memcpy(o->data, b + hl, o->len);
	return true;
}

/* A connection from port p through the handshake: our ISN 1000, its ISN returned. */
static uint32_t handshake(struct tcp_server *t, uint16_t p, uint64_t now)
{
	struct out o;

	send_seg(t, p, 1000, 0, SYN, 65535, NULL, now);
	assert_true(next(t, now, &o));
	assert_int_equal(o.flags, SYN | ACK);
	assert_int_equal(o.ack, 1001);
	assert_int_equal(o.dport, p);
	send_seg(t, p, 1001, o.seq + 1, ACK, 65535, NULL, now);
	assert_false(next(t, now, &o));
	return o.seq;
}

static struct tcp_server *server(void)
{
	struct tcp_app app = { line_app, NULL };
	struct tcp_server *t = tcp_server_new(LADDR, 80, &app, 7);

	assert_non_null(t);
	return t;
}

static void test_request_response_close(void **state)
{
	struct tcp_server *t = server();
	struct out o;
	uint32_t iss;

	(void)state;
	iss = handshake(t, 4000, 0);
	/* Two requests in one segment: answered one after the other, each once acknowledged. */
	send_seg(t, 4000, 1001, iss + 1, ACK | PSH, 65535, "ab\ncd\n", 0);
	assert_true(next(t, 0, &o));
	assert_int_equal(o.len, 4);
	assert_memory_equal(o.data, "R:ab", 4);
	assert_int_equal(o.ack, 1007);
	assert_false(next(t, 0, &o));
	send_seg(t, 4000, 1007, iss + 5, ACK, 65535, NULL, 1);
	assert_true(next(t, 1, &o));
	assert_memory_equal(o.data, "R:cd", 4);
	assert_int_equal(o.seq, iss + 5);
	/* Their FIN: acknowledged with ours, once the answer is. */
	send_seg(t, 4000, 1007, iss + 9, ACK | FIN, 65535, NULL, 2);
	assert_true(next(t, 2, &o));
	assert_int_equal(o.flags, ACK | FIN);
	assert_int_equal(o.ack, 1008);
	assert_int_equal(tcp_connections(t), 1);
	send_seg(t, 4000, 1008, iss + 10, ACK, 65535, NULL, 3);
	assert_int_equal(tcp_connections(t), 0);
	assert_false(next(t, 3, &o));
	tcp_server_free(t);
}

static void test_retransmit_out_of_order_window(void **state)
{
	struct tcp_server *t = server();
	struct out o;
	uint32_t iss;

	(void)state;
	iss = handshake(t, 4001, 0);
	/* Out of order: dropped, answered with the ACK it expects. */
	send_seg(t, 4001, 1005, iss + 1, ACK, 65535, "zz\n", 0);
	assert_true(next(t, 0, &o));
	assert_int_equal(o.ack, 1001);
	assert_int_equal(o.len, 0);
	/* A window of 2: the answer goes out 2 bytes at a time. */
	send_seg(t, 4001, 1001, iss + 1, ACK, 2, "hello\n", 0);
	assert_true(next(t, 0, &o));
	assert_int_equal(o.len, 2);
	assert_false(next(t, 0, &o));
	/* Not acknowledged: sent again after the timeout, and again later (doubling). */
	assert_true(tcp_next_timeout(t, 0) == TCP_RTO_MS);
	assert_false(next(t, TCP_RTO_MS - 1, &o));
	assert_true(next(t, TCP_RTO_MS, &o));
	assert_int_equal(o.seq, iss + 1);
	assert_int_equal(o.len, 2);
	assert_true(tcp_next_timeout(t, TCP_RTO_MS) == 2 * TCP_RTO_MS);
	send_seg(t, 4001, 1007, iss + 3, ACK, 0, NULL, 300);
	/* A shut window: nothing until the probe timer, then one byte. */
	assert_true(next(t, 300, &o) == false || o.len == 0);
	assert_true(next(t, 300 + TCP_RTO_MS, &o));
	assert_int_equal(o.len, 1);
	send_seg(t, 4001, 1007, iss + 4, ACK, 100, NULL, 600);
	assert_true(next(t, 600, &o));
	assert_int_equal(o.len, 4);
	assert_memory_equal(o.data, "ello", 4);
	tcp_server_free(t);
}

static void test_resets_and_bounds(void **state)
{
	struct tcp_server *t = server();
	struct out o;
	uint32_t iss;

	(void)state;
	/* No connection: a segment gets a reset, a reset gets nothing. */
	send_seg(t, 5000, 1, 77, ACK, 100, "x", 0);
	assert_true(next(t, 0, &o));
	assert_int_equal(o.flags, RST);
	assert_int_equal(o.seq, 77);
	send_seg(t, 5000, 1, 77, RST, 100, NULL, 0);
	assert_false(next(t, 0, &o));
	/* Another port: reset. */
	{
		uint8_t b[20] = { 0x13, 0x88, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 5 << 4, SYN };

		tcp_input(t, RADDR, b, sizeof(b), 0);
		assert_true(next(t, 0, &o));
		assert_int_equal(o.flags, RST | ACK);
		assert_int_equal(o.ack, 2);
	}
	/* Malformed headers are dropped. */
	{
		uint8_t b[20] = { 0x13, 0x88, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 15 << 4, SYN };

		tcp_input(t, RADDR, b, sizeof(b), 0);
		tcp_input(t, RADDR, b, 10, 0);
		assert_false(next(t, 0, &o));
	}
	/* A reset from the peer ends its connection. */
	iss = handshake(t, 4002, 0);
	send_seg(t, 4002, 1001, iss + 1, RST, 0, NULL, 0);
	assert_int_equal(tcp_connections(t), 0);
	/* At most TCP_MAX_CONNS: the next is refused until one idles long enough to be evicted. */
	for (unsigned i = 0; i < TCP_MAX_CONNS; i++)
		handshake(t, (uint16_t)(6000 + i), 0);
	send_seg(t, 7000, 1000, 0, SYN, 65535, NULL, 1);
	assert_true(next(t, 1, &o));
	assert_int_equal(o.flags, RST | ACK);
	assert_int_equal(tcp_connections(t), TCP_MAX_CONNS);
	send_seg(t, 7000, 1000, 0, SYN, 65535, NULL, TCP_IDLE_EVICT_MS);
	assert_true(next(t, TCP_IDLE_EVICT_MS, &o));
	assert_int_equal(o.flags, RST | ACK); /* the evicted one's */
	assert_true(next(t, TCP_IDLE_EVICT_MS, &o));
	assert_int_equal(o.flags, SYN | ACK);
	assert_int_equal(tcp_connections(t), TCP_MAX_CONNS);
	tcp_server_free(t);
}

static void test_gives_up_and_overflow(void **state)
{
	struct tcp_server *t = server();
	struct out o;
	char big[TCP_RCV_BUF + 10];
	uint64_t now = 0;
	uint32_t iss;

	(void)state;
	/* A request that never ends and fills the buffer: reset. */
	iss = handshake(t, 4003, 0);
	memset(big, 'a', 1400);
	big[1400] = 0;
	send_seg(t, 4003, 1001, iss + 1, ACK, 65535, big, 0);
	assert_true(next(t, 0, &o));
	assert_int_equal(o.wnd, TCP_RCV_BUF - 1400);
	send_seg(t, 4003, 1001 + 1400, iss + 1, ACK, 65535, big, 0);
	assert_true(next(t, 0, &o));
	assert_int_equal(o.flags, RST | ACK);
	assert_int_equal(tcp_connections(t), 0);
	/* A peer that never acknowledges: given up after TCP_MAX_RETRIES. */
	iss = handshake(t, 4004, 0);
	send_seg(t, 4004, 1001, iss + 1, ACK, 65535, "q\n", 0);
	assert_true(next(t, 0, &o));
	for (int i = 0; i < TCP_MAX_RETRIES; i++) {
		now += TCP_RTO_MAX_MS;
		assert_true(next(t, now, &o));
		assert_int_equal(o.len, 3);
	}
	now += TCP_RTO_MAX_MS;
	assert_true(next(t, now, &o));
	assert_int_equal(o.flags, RST | ACK);
	assert_int_equal(tcp_connections(t), 0);
	tcp_server_free(t);
}

/* ---- the stack, frame by frame */

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };

static size_t frame(uint8_t *f, uint16_t type)
{
	memset(f, 0, NET_HDR_LEN);
	memset(f + NET_HDR_LEN, 0xff, 6);
	memcpy(f + NET_HDR_LEN + 6, guest_mac, 6);
	f[NET_HDR_LEN + 12] = (uint8_t)(type >> 8);
	f[NET_HDR_LEN + 13] = (uint8_t)type;
	return NET_HDR_LEN + 14;
}

static bool take(struct net_intercept *ic, uint8_t *f, size_t len)
{
	struct iovec iov = { f, len };

	return ic->ops->take(ic, &iov, 1);
}

static void test_stack_arp_and_filtering(void **state)
{
	struct mmds_store s;
	struct mmds_service svc = { &s, MMDS_V1, false };
	struct event_loop loop;
	struct net_intercept *ic;
	static const uint8_t mmds_ip[4] = { 169, 254, 169, 254 };
	uint8_t f[256], out[2048];
	size_t n, len;

	(void)state;
	assert_int_equal(mmds_store_init(&s, "vm"), 0);
	assert_int_equal(event_loop_init(&loop), 0);
	ic = mmds_stack_new(&svc, LADDR, &loop);
	assert_non_null(ic);
	/* ARP who-has 169.254.169.254 tell 10.0.2.15. */
	n = frame(f, 0x0806);
	memcpy(f + n, (const uint8_t[]){ 0, 1, 8, 0, 6, 4, 0, 1 }, 8);
	memcpy(f + n + 8, guest_mac, 6);
	memcpy(f + n + 14, (const uint8_t[]){ 10, 0, 2, 15 }, 4);
	memcpy(f + n + 24, mmds_ip, 4);
	assert_true(take(ic, f, n + 28));
	len = ic->ops->give(ic, out, sizeof(out));
	assert_int_equal(len, n + 28);
	assert_memory_equal(out + NET_HDR_LEN, guest_mac, 6);
	assert_int_equal(out[n + 7], 2); /* a reply */
	assert_memory_equal(out + n + 14, mmds_ip, 4);
	assert_memory_equal(out + n + 18, guest_mac, 6);
	assert_int_equal(ic->ops->give(ic, out, sizeof(out)), 0);
	/* ARP for someone else, IPv4 elsewhere, IPv6, runts: not the MMDS's. */
	f[n + 27] = 1;
	assert_false(take(ic, f, n + 28));
	assert_false(take(ic, f, 10));
	n = frame(f, 0x0800);
	memset(f + n, 0, 40);
	f[n] = 0x45;
	memcpy(f + n + 16, (const uint8_t[]){ 8, 8, 8, 8 }, 4);
	assert_false(take(ic, f, n + 40));
	assert_false(take(ic, f, n + 10));
	frame(f, 0x86dd);
	assert_false(take(ic, f, n + 40));
	/* To the MMDS but malformed (length beyond the frame, UDP): taken and dropped. */
	n = frame(f, 0x0800);
	f[n] = 0x45;
	f[n + 2] = 0xff;
	f[n + 9] = 6;
	memcpy(f + n + 16, mmds_ip, 4);
	assert_true(take(ic, f, n + 40));
	f[n + 2] = 0;
	f[n + 3] = 40;
	f[n + 9] = 17;
	assert_true(take(ic, f, n + 40));
	assert_int_equal(ic->ops->give(ic, out, sizeof(out)), 0);
	ic->ops->destroy(ic);
	event_loop_destroy(&loop);
	mmds_store_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_response_close),
		cmocka_unit_test(test_retransmit_out_of_order_window),
		cmocka_unit_test(test_resets_and_bounds),
		cmocka_unit_test(test_gives_up_and_overflow),
		cmocka_unit_test(test_stack_arp_and_filtering),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
