#include "virtio/vsock_pkt.h"


static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = n; i--;)
		v = v << 8 | p[i];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Offsets of struct virtio_vsock_hdr (packed). */
void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *h)
{
	h->src_cid = get_le(raw, 8);
	h->dst_cid = get_le(raw + 8, 8);
	h->src_port = (uint32_t)get_le(raw + 16, 4);
	h->dst_port = (uint32_t)get_le(raw + 20, 4);
	h->len = (uint32_t)get_le(raw + 24, 4);
	h->type = (uint16_t)get_le(raw + 28, 2);
	h->op = (uint16_t)get_le(raw + 30, 2);
	h->flags = (uint32_t)get_le(raw + 32, 4);
	h->buf_alloc = (uint32_t)get_le(raw + 36, 4);
	h->fwd_cnt = (uint32_t)get_le(raw + 40, 4);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_SIZE])
{
	put_le(raw, h->src_cid, 8);
	put_le(raw + 8, h->dst_cid, 8);
	put_le(raw + 16, h->src_port, 4);
	put_le(raw + 20, h->dst_port, 4);
	put_le(raw + 24, h->len, 4);
	put_le(raw + 28, h->type, 2);
	put_le(raw + 30, h->op, 2);
	put_le(raw + 32, h->flags, 4);
	put_le(raw + 36, h->buf_alloc, 4);
	put_le(raw + 40, h->fwd_cnt, 4);
}

enum vsock_hdr_verdict vsock_hdr_check(const struct vsock_hdr *h, uint64_t guest_cid, uint64_t avail)
{
	if (h->src_cid != guest_cid || h->dst_cid != VSOCK_HOST_CID)
		return VSOCK_HDR_DROP;
	if (h->type != VSOCK_TYPE_STREAM || h->op == VSOCK_OP_INVALID || h->op > VSOCK_OP_CREDIT_REQUEST)
		return VSOCK_HDR_RESET;
	if (h->len > avail || h->len > VSOCK_MAX_PAYLOAD || (h->len && h->op != VSOCK_OP_RW))
		return VSOCK_HDR_RESET;
	if (h->op == VSOCK_OP_SHUTDOWN && (h->flags & ~(VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)))
		return VSOCK_HDR_RESET;
	return VSOCK_HDR_OK;
}

uint32_t vsock_credit_avail(const struct vsock_credit *c)
{
	uint32_t in_flight = c->tx_cnt - c->fwd_cnt;

	return in_flight > c->buf_alloc ? 0 : c->buf_alloc - in_flight;
}

void vsock_credit_update(struct vsock_credit *c, uint32_t buf_alloc, uint32_t fwd_cnt)
{
	c->buf_alloc = buf_alloc;
	c->fwd_cnt = fwd_cnt;
}
