/* Ethernet MAC addresses for virtual NICs. */
#ifndef CELLVM_NET_MAC_H
#define CELLVM_NET_MAC_H

#include <stdbool.h>
#include <stdint.h>

/* "52:54:00:12:34:56" -> bytes; false unless exactly that form, unicast. */
bool mac_parse(const char *s, uint8_t mac[6]);

/* A stable address from the VM's name and the NIC's index: the same VM
 * gets the same MAC every boot, different VMs and NICs different ones. */
void mac_derive(const char *vm_name, unsigned nic, uint8_t mac[6]);

#endif
