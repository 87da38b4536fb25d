/* Address-range dispatch for port I/O and MMIO exits. Devices register at
 * set-up time, before any vCPU runs, so lookups take no lock. */
#ifndef CELLVM_VMM_BUS_H
#define CELLVM_VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

#define BUS_MAX_RANGES 64

typedef void (*bus_handler)(void *opaque, uint64_t addr, uint8_t *data, unsigned size, bool write);

struct bus_range {
	uint64_t base, len;
	bus_handler fn;
	void *opaque;
};

struct bus {
	struct bus_range r[BUS_MAX_RANGES];
	unsigned n;
};

/* Fails (returns -1) on overlap or when the bus is full. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler fn, void *opaque);

/* Dispatches an access; reads of unclaimed addresses return all ones.
 * Returns false if nothing claimed it. */
bool bus_access(const struct bus *b, uint64_t addr, uint8_t *data, unsigned size, bool write);

#endif
