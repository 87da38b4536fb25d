/* A small TCP server for one local address and port (the MMDS's ADDR:80),
 * made for request/response protocols over a virtual wire: passive opens
 * only, in-order data (out-of-order segments are dropped and answered with
 * an ACK), the peer's window respected (with a 1-byte probe when it is
 * shut), retransmission of unacknowledged segments with a doubling
 * timeout, FIN and RST both ways, a bounded number of connections (an idle
 * one is evicted for a new one) and of pending resets. Memory per
 * connection is bounded: a request must fit in TCP_RCV_BUF bytes.
 * No options but MSS, no window scaling, no SACK. Not thread-safe: the
 * caller serializes. Time is the caller's (now_ms), for tests. */
#ifndef CELLVM_MMDS_TCP_H
#define CELLVM_MMDS_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TCP_MAX_CONNS 30   /* Firecracker's */
#define TCP_MAX_RESETS 100 /* Firecracker's */
#define TCP_RCV_BUF 2500   /* Firecracker's largest request, plus one */
#define TCP_MSS 1460
#define TCP_HDR_MAX 24     /* what tcp_output writes ahead of the payload */
#define TCP_RTO_MS 200
#define TCP_RTO_MAX_MS 5000
#define TCP_MAX_RETRIES 15
#define TCP_IDLE_EVICT_MS 10000

/* The protocol served: given what a connection received so far, the
 * number of bytes that make one whole request (0: not yet; -1: it can
 * never be one: the connection is reset), with its response in *resp
 * (malloc'ed, may be empty); *close asks for a FIN after it. */
struct tcp_app {
	long (*serve)(void *ctx, const uint8_t *buf, size_t len, uint64_t now_ms, char **resp, size_t *resp_len,
		      bool *close);
	void *ctx;
};

struct tcp_server;

/* Addresses in host order; iss_seed varies initial sequence numbers. */
struct tcp_server *tcp_server_new(uint32_t laddr, uint16_t lport, const struct tcp_app *app, uint32_t iss_seed);
void tcp_server_free(struct tcp_server *t);

/* A segment (TCP header + payload) that raddr sent to laddr; anything
 * malformed is dropped. */
void tcp_input(struct tcp_server *t, uint32_t raddr, const uint8_t *seg, size_t len, uint64_t now_ms);
/* The next segment to send (TCP header + payload, checksummed for the
 * pseudo header laddr -> *raddr) into buf: its length, or 0. */
size_t tcp_output(struct tcp_server *t, uint8_t *buf, size_t cap, uint64_t now_ms, uint32_t *raddr);
/* When a timer would have something to send: ms from now, or -1. */
long tcp_next_timeout(const struct tcp_server *t, uint64_t now_ms);
/* Open connections (for tests and bounds). */
unsigned tcp_connections(const struct tcp_server *t);

/* Internet checksum of the TCP pseudo header and segment. */
uint16_t tcp_checksum(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len);

#endif
