/* virtio-vsock's packets (src/virtio/vsock_pkt.c) and its Unix-socket host
 * side (src/virtio/vsock_uds.c), driven as a guest would drive it, hostile
 * guests included: header round trips and verdicts, credit arithmetic
 * across wrap-around, host- and guest-initiated connections, flow control,
 * credit violations, unknown connections, and the bounds on what a guest
 * can make the host hold. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/err.h"
#include "virtio/vsock_pkt.h"
#include "virtio/vsock_uds.h"

#define CID 7

/* ---- packets ------------------------------------------------------------ */

static void test_header_round_trip(void **state)
{
	struct vsock_hdr h = { .src_cid = 0x0102030405060708ULL, .dst_cid = 2, .src_port = 0xdeadbeef,
			       .dst_port = 5, .len = 77, .type = 1, .op = 5, .flags = 3, .buf_alloc = 1 << 18,
			       .fwd_cnt = 0xfffffff0 }, back;
	uint8_t raw[VSOCK_HDR_SIZE];

	(void)state;
	vsock_hdr_encode(&h, raw);
	assert_int_equal(raw[0], 0x08); /* little-endian */
	assert_int_equal(raw[24], 77);
	assert_int_equal(raw[30], 5);
	vsock_hdr_decode(raw, &back);
	assert_true(back.src_cid == h.src_cid && back.dst_cid == h.dst_cid && back.src_port == h.src_port &&
		    back.dst_port == h.dst_port && back.len == h.len && back.type == h.type && back.op == h.op &&
		    back.flags == h.flags && back.buf_alloc == h.buf_alloc && back.fwd_cnt == h.fwd_cnt);
}

static struct vsock_hdr pkt(uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t len)
{
	return (struct vsock_hdr){ .src_cid = CID, .dst_cid = VSOCK_HOST_CID, .src_port = src_port,
				   .dst_port = dst_port, .len = len, .type = VSOCK_TYPE_STREAM, .op = op,
				   .buf_alloc = 65536 };
}

static void test_header_verdicts(void **state)
{
	struct vsock_hdr h = pkt(VSOCK_OP_RW, 1, 2, 100);

	(void)state;
	assert_int_equal(vsock_hdr_check(&h, CID, 100), VSOCK_HDR_OK);
	assert_int_equal(vsock_hdr_check(&h, CID, 99), VSOCK_HDR_RESET); /* longer than the chain */
	h.len = VSOCK_MAX_PAYLOAD + 1;
	assert_int_equal(vsock_hdr_check(&h, CID, UINT32_MAX), VSOCK_HDR_RESET);
	h = pkt(VSOCK_OP_REQUEST, 1, 2, 4); /* only RW carries bytes */
	assert_int_equal(vsock_hdr_check(&h, CID, 4), VSOCK_HDR_RESET);
	h = pkt(VSOCK_OP_RW, 1, 2, 0);
	h.src_cid = CID + 1; /* spoofed source */
	assert_int_equal(vsock_hdr_check(&h, CID, 0), VSOCK_HDR_DROP);
	h = pkt(VSOCK_OP_RW, 1, 2, 0);
	h.dst_cid = 5; /* not for the host */
	assert_int_equal(vsock_hdr_check(&h, CID, 0), VSOCK_HDR_DROP);
	h = pkt(VSOCK_OP_RW, 1, 2, 0);
	h.type = 2; /* seqpacket is not offered */
	assert_int_equal(vsock_hdr_check(&h, CID, 0), VSOCK_HDR_RESET);
	h = pkt(0, 1, 2, 0);
	assert_int_equal(vsock_hdr_check(&h, CID, 0), VSOCK_HDR_RESET);
	h = pkt(8, 1, 2, 0);
	assert_int_equal(vsock_hdr_check(&h, CID, 0), VSOCK_HDR_RESET);
	h = pkt(VSOCK_OP_SHUTDOWN, 1, 2, 0);
	h.flags = 4;
	assert_int_equal(vsock_hdr_check(&h, CID, 0), VSOCK_HDR_RESET);
	h.flags = 3;
	assert_int_equal(vsock_hdr_check(&h, CID, 0), VSOCK_HDR_OK);
}

static void test_credit_arithmetic(void **state)
{
	struct vsock_credit c = { 0 };

	(void)state;
	assert_int_equal(vsock_credit_avail(&c), 0);
	vsock_credit_update(&c, 1000, 0);
	assert_int_equal(vsock_credit_avail(&c), 1000);
	c.tx_cnt = 600;
	assert_int_equal(vsock_credit_avail(&c), 400);
	vsock_credit_update(&c, 1000, 600);
	assert_int_equal(vsock_credit_avail(&c), 1000);
	/* Counters wrap. */
	c.tx_cnt = 100;
	vsock_credit_update(&c, 1000, UINT32_MAX - 99);
	assert_int_equal(vsock_credit_avail(&c), 800);
	/* A receiver claiming more than was sent gets nothing. */
	vsock_credit_update(&c, 1000, 200);
	assert_int_equal(vsock_credit_avail(&c), 0);
	/* So does one shrinking its buffer below what is in flight. */
	vsock_credit_update(&c, 50, 0);
	assert_int_equal(vsock_credit_avail(&c), 0);
}

/* ---- the host side ---------------------------------------------------------- */

struct env {
	char dir[64], path[96];
	struct vsock_uds *m;
	uint8_t buf[VSOCK_MAX_PAYLOAD];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	snprintf(e->dir, sizeof(e->dir), "/tmp/cv-vsock-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/v", e->dir);
	assert_int_equal(vsock_uds_open(e->path, CID, &e->m), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	vsock_uds_close(e->m);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	return 0;
}

static void send_pkt(struct env *e, struct vsock_hdr h, const void *data)
{
	struct iovec v = { (void *)data, h.len };

	vsock_uds_from_guest(e->m, &h, &v, data ? 1 : 0);
}

/* The next packet for the guest (with up to cap payload bytes in e->buf). */
static bool next_pkt(struct env *e, struct vsock_hdr *h, uint32_t cap)
{
	struct iovec v = { e->buf, cap };

	vsock_uds_poll(e->m);
	return vsock_uds_to_guest(e->m, h, &v, 1, cap);
}

static int unix_listen(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 512), 0);
	return fd;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* A host listener for guest connections to host port `port`. */
static int listen_port(struct env *e, uint32_t port)
{
	char lpath[sizeof(((struct sockaddr_un *)0)->sun_path)];

	snprintf(lpath, sizeof(lpath), "%s_%u", e->path, port);
	return unix_listen(lpath);
}

/* A guest connection to host port `port` (listening at path_port): the
 * host's accepted socket. */
static int guest_connects(struct env *e, int lfd, uint32_t src, uint32_t port)
{
	struct vsock_hdr h;
	int fd;

	send_pkt(e, pkt(VSOCK_OP_REQUEST, src, port, 0), NULL);
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_RESPONSE);
	assert_int_equal(h.src_port, port);
	assert_int_equal(h.dst_port, src);
	assert_int_equal(h.dst_cid, CID);
	assert_int_equal(h.buf_alloc, VSOCK_CONN_BUF);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	return fd;
}

static void test_guest_connect_and_data(void **state)
{
	struct env *e = *state;
	char got[16] = { 0 };
	struct vsock_hdr h;
	int lfd, fd;

	lfd = listen_port(e, 52);
	fd = guest_connects(e, lfd, 1000, 52);
	send_pkt(e, pkt(VSOCK_OP_RW, 1000, 52, 5), "hello");
	assert_int_equal(read(fd, got, sizeof(got)), 5);
	assert_string_equal(got, "hello");
	/* Host to guest, within the guest's credit (65536). */
	assert_int_equal(write(fd, "world!", 6), 6);
	assert_true(next_pkt(e, &h, 4096));
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_int_equal(h.len, 6);
	assert_int_equal(h.fwd_cnt, 5); /* what reached the host */
	assert_memory_equal(e->buf, "world!", 6);
	/* The host closes: a full shutdown, then the guest's RST ends it. */
	close(fd);
	assert_true(next_pkt(e, &h, 4096));
	assert_int_equal(h.op, VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	send_pkt(e, pkt(VSOCK_OP_RST, 1000, 52, 0), NULL);
	assert_int_equal(vsock_uds_count(e->m), 0);
	assert_false(next_pkt(e, &h, 4096));
	close(lfd);
}

static void test_guest_connect_without_listener(void **state)
{
	struct env *e = *state;
	struct vsock_hdr h;

	send_pkt(e, pkt(VSOCK_OP_REQUEST, 1000, 53, 0), NULL);
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(h.src_port, 53);
	assert_int_equal(h.dst_port, 1000);
	assert_int_equal(vsock_uds_count(e->m), 0);
}

static void test_host_connect(void **state)
{
	struct env *e = *state;
	struct vsock_hdr h;
	char ok[32] = { 0 };
	int fd = unix_connect(e->path);

	assert_int_equal(write(fd, "CONNECT 99\n", 11), 11);
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 99);
	assert_int_equal(h.src_port, 1u << 30);
	assert_int_equal(h.dst_cid, CID);
	send_pkt(e, pkt(VSOCK_OP_RESPONSE, 99, h.src_port, 0), NULL);
	assert_int_equal(read(fd, ok, sizeof(ok) - 1), 14);
	assert_string_equal(ok, "OK 1073741824\n");
	/* The guest shuts both ways: the host sees the end, the guest a RST. */
	send_pkt(e, pkt(VSOCK_OP_SHUTDOWN, 99, 1u << 30, 0), NULL);
	{
		struct vsock_hdr s = pkt(VSOCK_OP_SHUTDOWN, 99, 1u << 30, 0);

		s.flags = VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND;
		send_pkt(e, s, NULL);
	}
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(read(fd, ok, sizeof(ok)), 0);
	assert_int_equal(vsock_uds_count(e->m), 0);
	close(fd);
}

static void test_host_connect_refused_by_guest(void **state)
{
	struct env *e = *state;
	struct vsock_hdr h;
	char c;
	int fd = unix_connect(e->path);

	assert_int_equal(write(fd, "CONNECT 98\n", 11), 11);
	assert_true(next_pkt(e, &h, 0));
	send_pkt(e, pkt(VSOCK_OP_RST, 98, h.src_port, 0), NULL);
	assert_int_equal(read(fd, &c, 1), 0);
	assert_int_equal(vsock_uds_count(e->m), 0);
	close(fd);
}

/* A guest that never answers a host's CONNECT: after the timeout the
 * host's socket closes and the guest is told to forget the request. */
static void test_host_connect_times_out(void **state)
{
	struct env *e = *state;
	struct pollfd p = { .fd = vsock_uds_fd(e->m), .events = POLLIN };
	struct vsock_hdr h;
	char c;
	int fd = unix_connect(e->path);

	assert_int_equal(write(fd, "CONNECT 97\n", 11), 11);
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_REQUEST);
	/* Waits for the muxer's timer, not for a time of its own. */
	while (vsock_uds_count(e->m) && !vsock_uds_has_rx(e->m)) {
		assert_true(poll(&p, 1, 10000) == 1);
		vsock_uds_poll(e->m);
	}
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(h.dst_port, 97);
	assert_int_equal(read(fd, &c, 1), 0);
	assert_int_equal(vsock_uds_count(e->m), 0);
	close(fd);
}

static void test_bad_commands_close(void **state)
{
	static const char *const bad[] = { "CONNECT\n",	      "CONNECT -1\n", "CONNECT 4294967296\n",
					   "connect 5\n",     "CONNECT 5 \n", "CONNECT 12345678901234567890123\n",
					   "CONNECT 0x10\n" };
	struct env *e = *state;
	struct vsock_hdr h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = unix_connect(e->path);
		char c;

		assert_int_equal(write(fd, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
		vsock_uds_poll(e->m);
		/* Closed, with or without the rest of the line read. */
		if (read(fd, &c, 1) > 0)
			fail_msg("'%s' was not refused", bad[i]);
		close(fd);
	}
	assert_false(next_pkt(e, &h, 0));
	assert_int_equal(vsock_uds_count(e->m), 0);
}

static void test_flow_control(void **state)
{
	struct env *e = *state;
	struct vsock_hdr h, small = pkt(VSOCK_OP_REQUEST, 2000, 54, 0);
	static uint8_t data[1000];
	int lfd, fd;

	lfd = listen_port(e, 54);
	small.buf_alloc = 300; /* the guest takes 300 bytes at a time */
	send_pkt(e, small, NULL);
	assert_true(next_pkt(e, &h, 0));
	fd = accept(lfd, NULL, NULL);
	memset(data, 'x', sizeof(data));
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	assert_true(next_pkt(e, &h, 4096));
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_int_equal(h.len, 300);
	/* Out of credit: one request for more, then silence. */
	assert_true(next_pkt(e, &h, 4096));
	assert_int_equal(h.op, VSOCK_OP_CREDIT_REQUEST);
	assert_false(next_pkt(e, &h, 4096));
	small.op = VSOCK_OP_CREDIT_UPDATE;
	small.fwd_cnt = 300;
	send_pkt(e, small, NULL);
	assert_true(next_pkt(e, &h, 4096));
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_int_equal(h.len, 300);
	close(fd);
	close(lfd);
}

/* A guest sending past the credit it was given is reset, and the host
 * never holds more than VSOCK_CONN_BUF for it. */
static void test_credit_violation_resets(void **state)
{
	struct env *e = *state;
	char c;
	struct vsock_hdr h;
	unsigned sent = 0;
	int lfd, fd;

	lfd = listen_port(e, 55);
	fd = guest_connects(e, lfd, 3000, 55);
	/* The host reads nothing: the socket fills, then the ring. */
	memset(e->buf, 'y', sizeof(e->buf));
	while (sent <= 4 * VSOCK_CONN_BUF && vsock_uds_count(e->m)) {
		struct vsock_hdr d = pkt(VSOCK_OP_RW, 3000, 55, VSOCK_MAX_PAYLOAD);
		struct iovec v = { e->buf, VSOCK_MAX_PAYLOAD };

		vsock_uds_from_guest(e->m, &d, &v, 1);
		sent += VSOCK_MAX_PAYLOAD;
		while (vsock_uds_has_rx(e->m) && next_pkt(e, &h, 0))
			if (h.op == VSOCK_OP_RST)
				break;
	}
	assert_true(sent <= 4 * VSOCK_CONN_BUF);
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(vsock_uds_count(e->m), 0);
	/* The host's socket was closed: what it reads ends. */
	while (read(fd, e->buf, sizeof(e->buf)) > 0)
		;
	assert_int_equal(read(fd, &c, 1), 0);
	close(fd);
	close(lfd);
}

static void test_hostile_packets(void **state)
{
	struct env *e = *state;
	struct vsock_hdr h;
	unsigned rst = 0;
	int lfd, fd;

	/* Packets for connections that do not exist are answered with RST,
	 * at most a bounded number of them queued; RSTs are not answered. */
	for (uint32_t i = 0; i < 1000; i++)
		send_pkt(e, pkt(i % 2 ? VSOCK_OP_RW : VSOCK_OP_CREDIT_REQUEST, i, 9, 0), NULL);
	send_pkt(e, pkt(VSOCK_OP_RST, 1, 9, 0), NULL);
	while (next_pkt(e, &h, 0)) {
		assert_int_equal(h.op, VSOCK_OP_RST);
		rst++;
	}
	assert_true(rst > 0 && rst <= 64);

	/* A second REQUEST on an open connection resets it. */
	lfd = listen_port(e, 56);
	fd = guest_connects(e, lfd, 4000, 56);
	send_pkt(e, pkt(VSOCK_OP_REQUEST, 4000, 56, 0), NULL);
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(vsock_uds_count(e->m), 0);
	close(fd);

	/* A RESPONSE to nothing the host asked for resets too. */
	fd = guest_connects(e, lfd, 4001, 56);
	send_pkt(e, pkt(VSOCK_OP_RESPONSE, 4001, 56, 0), NULL);
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_RST);
	close(fd);

	/* Data after the guest said it would send no more resets. */
	fd = guest_connects(e, lfd, 4002, 56);
	{
		struct vsock_hdr s = pkt(VSOCK_OP_SHUTDOWN, 4002, 56, 0);

		s.flags = VSOCK_SHUTDOWN_SEND;
		send_pkt(e, s, NULL);
	}
	send_pkt(e, pkt(VSOCK_OP_RW, 4002, 56, 3), "abc");
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_RST);
	close(fd);
	close(lfd);
	assert_int_equal(vsock_uds_count(e->m), 0);
}

static void test_connection_table_is_bounded(void **state)
{
	struct env *e = *state;
	struct vsock_hdr h;
	int lfd;

	lfd = listen_port(e, 57);
	for (uint32_t i = 0; i < VSOCK_MAX_CONNS + 10; i++) {
		send_pkt(e, pkt(VSOCK_OP_REQUEST, 10000 + i, 57, 0), NULL);
		assert_true(next_pkt(e, &h, 0));
		assert_int_equal(h.op, i < VSOCK_MAX_CONNS ? VSOCK_OP_RESPONSE : VSOCK_OP_RST);
	}
	assert_int_equal(vsock_uds_count(e->m), VSOCK_MAX_CONNS);
	/* A reset of the device drops them all. */
	vsock_uds_reset(e->m);
	assert_int_equal(vsock_uds_count(e->m), 0);
	assert_false(next_pkt(e, &h, 0));
	close(lfd);
}

/* Connections that end while they wait for the guest's buffers leave
 * nothing queued behind: their slots are reused many times over. */
static void test_slots_reused_while_queued(void **state)
{
	struct env *e = *state;
	struct vsock_hdr h;
	int lfd;

	lfd = listen_port(e, 58);
	for (uint32_t i = 0; i < 4 * VSOCK_MAX_CONNS; i++) {
		int fd;

		send_pkt(e, pkt(VSOCK_OP_REQUEST, 20000 + i % 3, 58, 0), NULL); /* RESPONSE queued */
		send_pkt(e, pkt(VSOCK_OP_RST, 20000 + i % 3, 58, 0), NULL);	 /* gone before it went */
		fd = accept(lfd, NULL, NULL);
		assert_true(fd >= 0);
		close(fd);
	}
	send_pkt(e, pkt(VSOCK_OP_REQUEST, 30000, 58, 0), NULL);
	assert_true(next_pkt(e, &h, 0));
	assert_int_equal(h.op, VSOCK_OP_RESPONSE);
	assert_int_equal(h.dst_port, 30000);
	assert_false(next_pkt(e, &h, 0));
	close(lfd);
}

static void test_live_socket_is_refused(void **state)
{
	struct env *e = *state;
	struct vsock_uds *other;

	assert_int_equal(vsock_uds_open(e->path, CID, &other), CV_EINPUT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip),
		cmocka_unit_test(test_header_verdicts),
		cmocka_unit_test(test_credit_arithmetic),
		cmocka_unit_test_setup_teardown(test_guest_connect_and_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_connect_without_listener, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect_refused_by_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_commands_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_control, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_violation_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_table_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slots_reused_while_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_socket_is_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
