/* virtio-vsock packets (virtio 1.2, 5.10.6): the 44-byte little-endian
 * header every packet starts with, its checks, and the credit arithmetic
 * of stream flow control. Pure functions: no sockets, no queues. */
#ifndef CELLVM_VIRTIO_VSOCK_PKT_H
#define CELLVM_VIRTIO_VSOCK_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VSOCK_HDR_SIZE 44
#define VSOCK_HOST_CID 2
/* The largest payload a packet may carry (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
#define VSOCK_MAX_PAYLOAD (64 * 1024)

enum {
	VSOCK_TYPE_STREAM = 1,
};

enum {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};

#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_SIZE]);

enum vsock_hdr_verdict {
	VSOCK_HDR_OK,
	VSOCK_HDR_DROP, /* not addressed from this guest to the host: ignore it */
	VSOCK_HDR_RESET, /* well addressed but unusable: answer RST */
};

/* Judges a guest's packet of `avail` payload bytes (the chain after the
 * header). Addresses must be guest_cid -> host; the type a stream; the op
 * known; len no larger than the chain nor VSOCK_MAX_PAYLOAD, and zero
 * unless the op is RW; shutdown flags only the two defined bits. */
enum vsock_hdr_verdict vsock_hdr_check(const struct vsock_hdr *h, uint64_t guest_cid, uint64_t avail);

/* One direction's credit (5.10.6.3): the receiver advertises its buffer
 * (buf_alloc) and how much it has consumed (fwd_cnt); the sender counts
 * what it sent (tx_cnt). Counters wrap (u32), so differences are taken
 * modulo 2^32. */
struct vsock_credit {
	uint32_t buf_alloc, fwd_cnt; /* the receiver's last word */
	uint32_t tx_cnt;	     /* bytes the sender has sent */
};

/* Bytes the sender may still send; 0 when the receiver's numbers are
 * impossible (it claims to have consumed more than was sent). */
uint32_t vsock_credit_avail(const struct vsock_credit *c);
/* Records the receiver's numbers from a packet's header. */
void vsock_credit_update(struct vsock_credit *c, uint32_t buf_alloc, uint32_t fwd_cnt);

#endif
