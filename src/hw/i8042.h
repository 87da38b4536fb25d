/* The part of the i8042 keyboard controller a VM needs: its status port and
 * the CPU reset line (command 0xfe), which `reboot=k` kernels pulse. */
#ifndef CELLVM_HW_I8042_H
#define CELLVM_HW_I8042_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/pm.h"

#define I8042_PORT_DATA 0x60
#define I8042_PORT_CMD 0x64

struct i8042 {
	void (*event)(void *ctx, enum power_event ev);
	void *ctx;
};

void i8042_init(struct i8042 *k, void (*event)(void *ctx, enum power_event ev), void *ctx);
void i8042_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write);

#endif
