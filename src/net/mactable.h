/* The learning table of cellvm's switch: which port a MAC address was last
 * seen on. Small and flat (a switch joins a handful of VMs); when full, the
 * entry seen longest ago makes room; entries not refreshed for
 * MACTABLE_AGE_NS are forgotten, as a hardware switch ages its table. */
#ifndef CELLVM_NET_MACTABLE_H
#define CELLVM_NET_MACTABLE_H

#include <stdbool.h>
#include <stdint.h>

#define MACTABLE_SIZE 256
#define MACTABLE_AGE_NS (300ULL * 1000000000ULL)

struct mac_entry {
	uint8_t mac[6];
	bool used;
	int port;
	uint64_t seen_ns;
};

struct mactable {
	struct mac_entry e[MACTABLE_SIZE];
};

void mactable_init(struct mactable *t);
/* Records that frames from `mac` come in on `port`. Returns the port it
 * was on before (-1: unknown or aged out). Multicast sources are ignored. */
int mactable_learn(struct mactable *t, const uint8_t mac[6], int port, uint64_t now_ns);
/* The port for a destination, or -1 (unknown, aged out, or multicast:
 * flood). */
int mactable_lookup(const struct mactable *t, const uint8_t mac[6], uint64_t now_ns);
/* Forgets every address learned on a port that went away. */
void mactable_forget_port(struct mactable *t, int port);

#endif
