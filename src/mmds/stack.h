/* The MMDS on one NIC: takes the guest's ARP requests for the MMDS
 * address and every IPv4 packet to it out of the transmit path, and
 * answers through the NIC's receive path (ARP replies from the MMDS's own
 * MAC, TCP to port 80 through mmds/tcp.h, HTTP through mmds/http.h).
 * Every length and offset in a guest's frame is checked against the
 * frame; frames it cannot parse are taken and dropped if they are for the
 * MMDS, left alone otherwise. */
#ifndef CELLVM_MMDS_STACK_H
#define CELLVM_MMDS_STACK_H

#include "mmds/http.h"
#include "net/intercept.h"
#include "vmm/event_loop.h"

#define MMDS_PORT 80

/* An address the MMDS may have (Firecracker's rule): link-local, but not
 * in 169.254.0.0/24 or 169.254.255.0/24. Host order. */
bool mmds_addr_ok(uint32_t addr);

/* addr: the MMDS's IPv4 address (host order). Its retransmission timer
 * runs on loop. NULL when out of memory (reported). */
struct net_intercept *mmds_stack_new(const struct mmds_service *svc, uint32_t addr, struct event_loop *loop);

#endif
