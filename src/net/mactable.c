#include "net/mactable.h"

#include <string.h>

void mactable_init(struct mactable *t)
{
	memset(t, 0, sizeof(*t));
}

static bool fresh(const struct mac_entry *e, uint64_t now_ns)
{
	return e->used && now_ns - e->seen_ns < MACTABLE_AGE_NS;
}

static const struct mac_entry *find(const struct mactable *t, const uint8_t mac[6])
{
	for (int i = 0; i < MACTABLE_SIZE; i++)
		if (t->e[i].used && !memcmp(t->e[i].mac, mac, 6))
			return &t->e[i];
	return NULL;
}

int mactable_learn(struct mactable *t, const uint8_t mac[6], int port, uint64_t now_ns)
{
	struct mac_entry *e = (struct mac_entry *)find(t, mac), *victim = NULL;
	int before;

	if (mac[0] & 1)
		return -1; /* a group address is never a sender's */
	if (e) {
		before = fresh(e, now_ns) ? e->port : -1;
		e->port = port;
		e->seen_ns = now_ns;
		return before;
	}
	/* A free or aged-out slot, else the one seen longest ago. */
	for (int i = 0; i < MACTABLE_SIZE; i++) {
		struct mac_entry *c = &t->e[i];

		if (!fresh(c, now_ns)) {
			victim = c;
			break;
		}
		if (!victim || c->seen_ns < victim->seen_ns)
			victim = c;
	}
	*victim = (struct mac_entry){ .used = true, .port = port, .seen_ns = now_ns };
	memcpy(victim->mac, mac, 6);
	return -1;
}

int mactable_lookup(const struct mactable *t, const uint8_t mac[6], uint64_t now_ns)
{
	const struct mac_entry *e;

	if (mac[0] & 1)
		return -1;
	e = find(t, mac);
	return e && fresh(e, now_ns) ? e->port : -1;
}

void mactable_forget_port(struct mactable *t, int port)
{
	for (int i = 0; i < MACTABLE_SIZE; i++)
		if (t->e[i].used && t->e[i].port == port)
			t->e[i].used = false;
}
