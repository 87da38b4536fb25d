/* The i8042 keyboard controller with a PS/2 keyboard behind it: enough for
 * Linux's i8042 and atkbd drivers to find both at once (self-test, command
 * byte, a keyboard that answers every command, no AUX port, so no probe
 * waits for a timeout), the CPU reset line (command 0xfe, which `reboot=k`
 * kernels pulse), and host-injected key presses (Ctrl+Alt+Del) delivered as
 * scan code set 2 bytes on IRQ 1. Thread-safe: vCPU threads do port I/O,
 * the main thread injects keys. */
#ifndef CELLVM_HW_I8042_H
#define CELLVM_HW_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hw/pm.h"
#include "snapshot/fields.h"

#define I8042_PORT_DATA 0x60
#define I8042_PORT_CMD 0x64
#define I8042_IRQ 1
#define I8042_QUEUE 64

struct i8042 {
	pthread_mutex_t lock;
	void (*event)(void *ctx, enum power_event ev);
	void (*set_irq)(void *ctx, unsigned irq, int level);
	void *ctx;
	uint8_t ctr;     /* the controller's command byte */
	uint8_t pending; /* controller command waiting for its data byte */
	uint8_t kbd_pending; /* keyboard command waiting for its parameter */
	bool cmd_last;   /* the last write went to the command port */
	bool out_full;   /* the output buffer holds `out` */
	uint8_t out;
	bool scanning;   /* the keyboard sends key codes */
	uint8_t last_sent;
	uint8_t q[I8042_QUEUE]; /* keyboard bytes waiting for the output buffer */
	size_t q_head, q_len;
};

int i8042_init(struct i8042 *k, void (*event)(void *ctx, enum power_event ev),
	       void (*set_irq)(void *ctx, unsigned irq, int level), void *ctx);
void i8042_destroy(struct i8042 *k);
void i8042_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write);

/* Presses Ctrl+Alt+Del and releases it. Returns 0, or CV_EINPUT when the
 * guest has not enabled its keyboard or its queue is full. */
int i8042_ctrl_alt_del(struct i8042 *k);

/* Controller and keyboard state, for snapshots. */
int i8042_save(void *dev, struct snap_writer *w);
int i8042_load(void *dev, struct snap_reader *r);

#endif
