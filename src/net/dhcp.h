/* The DHCP server of a host-only network, as packet logic only: it answers
 * a guest's DHCP client message with the one lease that guest's NIC has.
 * Each VM's back-end answers its own guest from the frames the guest sends,
 * so nothing listens on the host and no daemon outlives the VMs. */
#ifndef CELLVM_NET_DHCP_H
#define CELLVM_NET_DHCP_H

#include <stddef.h>
#include <stdint.h>

/* Addresses in host byte order. */
struct dhcp_lease {
	uint32_t server;   /* the host's address on the network; server identifier */
	uint32_t addr;     /* the guest's */
	unsigned prefix;
	uint32_t lease_secs;
	uint8_t server_mac[6];
};

#define DHCP_REPLY_MAX 400

/* frame: an Ethernet frame the guest sent. Returns -1 if it is not a
 * message to a DHCP server (send it on), 0 if it is one that gets no answer
 * (RELEASE, DECLINE, malformed: drop it), or the length of the reply frame
 * written to out (at least DHCP_REPLY_MAX bytes of room). */
int dhcp_answer(const uint8_t *frame, size_t len, const struct dhcp_lease *l, uint8_t *out, size_t cap);

/* The Internet checksum of len bytes, starting from sum. */
uint16_t dhcp_ip_checksum(const void *data, size_t len, uint32_t sum);

#endif
