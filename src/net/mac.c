#include "net/mac.h"

#include <ctype.h>
#include <stdio.h>

bool mac_parse(const char *s, uint8_t mac[6])
{
	unsigned b[6];
	char end;

	/* Exactly "xx:xx:xx:xx:xx:xx": sscanf's %x alone would also take
	 * signs, single digits, leading blanks and a "0x" prefix. */
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6)
		return false;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return !(mac[0] & 1); /* multicast addresses cannot be a NIC's */
}

void mac_derive(const char *vm_name, unsigned nic, uint8_t mac[6])
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const char *p = vm_name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ (nic & 0xff)) * 16777619u;
	h = (h ^ (nic >> 8)) * 16777619u;
	/* 52:54:00 is the prefix virtual NICs customarily use (locally
	 * administered would also do); the rest identifies VM and NIC. */
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}
