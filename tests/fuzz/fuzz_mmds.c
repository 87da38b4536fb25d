/* libFuzzer target: the MMDS's network stack (src/mmds/stack.c, tcp.c,
 * http.c) taking frames the guest sends and answering them. The input is
 * a first byte (bit 0: V2, bit 1: imds_compat), then steps: a kind byte,
 * a 16-bit length, that many bytes. Kind 0 is a whole frame; kind 1 a TCP
 * segment the harness puts into a valid IPv4 frame to the MMDS, its ACK
 * number taken relative to the last SYN-ACK's sequence (so the fuzzer
 * gets past the random initial sequence number and addresses); other
 * kinds drain the answers. */
#include "fuzz.h"
#include "mmds/stack.h"
#include "net/backend.h"

#define MMDS_ADDR 0xa9fea9feu

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wrap_tcp(uint8_t *f, const uint8_t *seg, size_t len, uint32_t base)
{
	uint8_t *t = f + NET_HDR_LEN + 34;

	static const uint8_t eth_ip[] = { 0x06, 0x01, 0x23, 0x45, 0x67, 0x01, 0x52, 0x54, 0, 1, 2, 3, 8, 0,
					  0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15,
					  169, 254, 169, 254 };

	memset(f, 0, NET_HDR_LEN);
	memcpy(f + NET_HDR_LEN, eth_ip, sizeof(eth_ip));
	f[NET_HDR_LEN + 16] = (uint8_t)((20 + len) >> 8);
	f[NET_HDR_LEN + 17] = (uint8_t)(20 + len);
	memcpy(t, seg, len);
	if (len >= 12) {
		uint32_t ack = be32(t + 8) + base;

		for (int i = 0; i < 4; i++)
			t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mmds_store store;
	static bool ready;
	struct mmds_service svc = { &store, size && (data[0] & 1) ? MMDS_V2 : MMDS_V1, size && (data[0] & 2) };
	struct event_loop loop;
	struct net_intercept *ic;
	size_t off = size ? 1 : 0;
	uint32_t base = 0;

	if (!ready) {
		json_t *doc = json_loads("{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-1\",\"list\":[1,\"x\"]}}}", 0,
					 NULL);

		if (mmds_store_init(&store, "fuzz") || mmds_store_put(&store, doc, 51200) != MMDS_OK)
			abort();
		json_decref(doc);
		ready = true;
	}
	if (event_loop_init(&loop) || !(ic = mmds_stack_new(&svc, MMDS_ADDR, &loop)))
		abort();
	while (off + 3 <= size) {
		uint8_t kind = data[off];
		size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
		uint8_t *f, out[NET_HDR_LEN + 1600];
		struct iovec iov[2];

		off += 3;
		if (len > size - off)
			len = size - off;
		f = malloc(len + NET_HDR_LEN + 34 + 1);
		if (kind % 4 == 0) {
			memcpy(f, data + off, len);
			/* Split in two buffers, as a guest's descriptor chain may be. */
			iov[0] = (struct iovec){ f, len / 2 };
			iov[1] = (struct iovec){ f + len / 2, len - len / 2 };
			ic->ops->take(ic, iov, 2);
		} else if (kind % 4 == 1) {
			wrap_tcp(f, data + off, len, base);
			iov[0] = (struct iovec){ f, NET_HDR_LEN + 34 + len };
			ic->ops->take(ic, iov, 1);
		} else {
			size_t n;

			for (int i = 0; i < 64 && (n = ic->ops->give(ic, out, sizeof(out))); i++) {
				const uint8_t *tcp = out + NET_HDR_LEN + 34;

				if (n >= NET_HDR_LEN + 54 && out[NET_HDR_LEN + 23] == 6 && (tcp[13] & 0x02))
					base = be32(tcp + 4) + 1;
			}
		}
		free(f);
		off += len;
	}
	ic->ops->destroy(ic);
	event_loop_destroy(&loop);
	return 0;
}
