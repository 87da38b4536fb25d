#include "hw/i8042.h"

#include <string.h>

#define CMD_PULSE_RESET 0xfe

void i8042_init(struct i8042 *k, void (*event)(void *ctx, enum power_event ev), void *ctx)
{
	k->event = event;
	k->ctx = ctx;
}

void i8042_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write)
{
	struct i8042 *k = opaque;

	if (!write) {
		/* Status: both buffers empty, so reset writers never wait. */
		memset(data, 0, size);
		return;
	}
	if (port == I8042_PORT_CMD && data[0] == CMD_PULSE_RESET)
		k->event(k->ctx, POWER_RESET);
}
