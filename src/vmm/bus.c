#include "vmm/bus.h"

#include <string.h>

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler fn, void *opaque)
{
	unsigned i;

	if (b->n == BUS_MAX_RANGES || !len || base + len < base)
		return -1;
	for (i = 0; i < b->n; i++)
		if (base < b->r[i].base + b->r[i].len && b->r[i].base < base + len)
			return -1;
	/* Keep sorted for the binary search. */
	for (i = b->n; i > 0 && b->r[i - 1].base > base; i--)
		b->r[i] = b->r[i - 1];
	b->r[i] = (struct bus_range){ .base = base, .len = len, .fn = fn, .opaque = opaque };
	b->n++;
	return 0;
}

bool bus_access(const struct bus *b, uint64_t addr, uint8_t *data, unsigned size, bool write)
{
	unsigned lo = 0, hi = b->n;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		const struct bus_range *r = &b->r[mid];

		if (addr < r->base) {
			hi = mid;
		} else if (addr - r->base >= r->len) {
			lo = mid + 1;
		} else {
			r->fn(r->opaque, addr, data, size, write);
			return true;
		}
	}
	if (!write)
		memset(data, 0xff, size);
	return false;
}
