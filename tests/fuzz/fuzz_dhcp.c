/* libFuzzer target: the host-only network's DHCP server (src/net/dhcp.c)
 * answering an Ethernet frame the guest sent. The reply buffer has exactly
 * the documented room, on the heap, so ASan sees an overrun. */
#include "fuzz.h"
#include "net/dhcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dhcp_lease lease = {
		.server = 0x0a000001, .addr = 0x0a000002, .prefix = 24, .lease_secs = 3600,
		.server_mac = { 0x02, 0, 0, 0, 0, 1 },
	};
	uint8_t *frame = malloc(size + 1), *out = malloc(DHCP_REPLY_MAX);
	int n;

	memcpy(frame, data, size);
	n = dhcp_answer(frame, size, &lease, out, DHCP_REPLY_MAX);
	if (n > DHCP_REPLY_MAX)
		abort();
	free(frame);
	free(out);
	return 0;
}
