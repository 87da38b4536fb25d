#include "hw/i8042.h"

#include <string.h>

#include "util/err.h"

/* Status register */
#define STS_OBF 0x01
#define STS_SYS 0x04
#define STS_CMD 0x08
#define STS_UNLOCKED 0x10

/* Command byte */
#define CTR_KBDINT 0x01
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20

/* Controller commands (port 0x64) */
#define CMD_READ_CTR 0x20
#define CMD_WRITE_CTR 0x60
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE 0xa8
#define CMD_AUX_TEST 0xa9
#define CMD_SELF_TEST 0xaa
#define CMD_KBD_TEST 0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE 0xae
#define CMD_READ_INPUT 0xc0
#define CMD_READ_OUTPUT 0xd0
#define CMD_WRITE_OUTPUT 0xd1
#define CMD_WRITE_KBD_OUT 0xd2
#define CMD_WRITE_AUX_OUT 0xd3
#define CMD_WRITE_AUX 0xd4
#define CMD_PULSE_RESET 0xfe

/* Keyboard commands and answers */
#define KBD_SET_LEDS 0xed
#define KBD_ECHO 0xee
#define KBD_SCAN_SET 0xf0
#define KBD_GET_ID 0xf2
#define KBD_TYPEMATIC 0xf3
#define KBD_ENABLE 0xf4
#define KBD_DISABLE 0xf5
#define KBD_DEFAULTS 0xf6
#define KBD_RESEND 0xfe
#define KBD_RESET 0xff
#define KBD_ACK 0xfa
#define KBD_NAK 0xfe
#define KBD_BAT_OK 0xaa

/* As a BIOS leaves it: keyboard interrupt on, POST passed, no AUX port, and
 * no set 2 -> set 1 translation, so Linux drives the keyboard directly. */
#define CTR_RESET (CTR_KBDINT | CTR_SYS | CTR_AUXDIS)

int i8042_init(struct i8042 *k, void (*event)(void *ctx, enum power_event ev),
	       void (*set_irq)(void *ctx, unsigned irq, int level), void *ctx)
{
	memset(k, 0, sizeof(*k));
	if (pthread_mutex_init(&k->lock, NULL))
		return CV_EFAIL;
	k->event = event;
	k->set_irq = set_irq;
	k->ctx = ctx;
	k->ctr = CTR_RESET;
	k->scanning = true;
	return 0;
}

void i8042_destroy(struct i8042 *k)
{
	pthread_mutex_destroy(&k->lock);
}

/* Moves the next keyboard byte to the output buffer when it is free and
 * the keyboard interface is on; IRQ 1 is an edge, so it is pulsed. */
static void deliver(struct i8042 *k)
{
	if (k->out_full || !k->q_len || (k->ctr & CTR_KBDDIS))
		return;
	k->out = k->q[k->q_head];
	k->q_head = (k->q_head + 1) % I8042_QUEUE;
	k->q_len--;
	k->out_full = true;
	if ((k->ctr & CTR_KBDINT) && k->set_irq) {
		k->set_irq(k->ctx, I8042_IRQ, 1);
		k->set_irq(k->ctx, I8042_IRQ, 0);
	}
}

static bool kbd_push(struct i8042 *k, const uint8_t *b, size_t n)
{
	if (k->q_len + n > I8042_QUEUE)
		return false;
	for (size_t i = 0; i < n; i++)
		k->q[(k->q_head + k->q_len++) % I8042_QUEUE] = b[i];
	k->last_sent = b[n - 1];
	deliver(k);
	return true;
}

/* A controller's own answer replaces whatever the buffer held, as on the
 * real one-byte register; it raises no interrupt (drivers poll for it). */
static void controller_answer(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->out_full = true;
}

/* A byte the host sends to the keyboard: a command or its parameter. */
static void keyboard_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->kbd_pending;

	/* A new command cancels key codes not yet read. */
	k->q_len = 0;
	k->kbd_pending = 0;
	if (cmd == KBD_SCAN_SET && v == 0) {
		kbd_push(k, (const uint8_t[]){ KBD_ACK, 2 }, 2); /* set 2 is the only one */
		return;
	}
	if (cmd) {
		kbd_push(k, (const uint8_t[]){ KBD_ACK }, 1);
		return;
	}
	switch (v) {
	case KBD_SET_LEDS:
	case KBD_TYPEMATIC:
	case KBD_SCAN_SET:
		k->kbd_pending = v;
		kbd_push(k, (const uint8_t[]){ KBD_ACK }, 1);
		break;
	case KBD_GET_ID:
		kbd_push(k, (const uint8_t[]){ KBD_ACK, 0xab, 0x83 }, 3); /* an MF2 keyboard */
		break;
	case KBD_ECHO:
		kbd_push(k, (const uint8_t[]){ KBD_ECHO }, 1);
		break;
	case KBD_RESEND:
		kbd_push(k, &k->last_sent, 1);
		break;
	case KBD_RESET:
		k->scanning = true;
		kbd_push(k, (const uint8_t[]){ KBD_ACK, KBD_BAT_OK }, 2);
		break;
	case KBD_ENABLE:
	case KBD_DEFAULTS:
		k->scanning = true;
		kbd_push(k, (const uint8_t[]){ KBD_ACK }, 1);
		break;
	case KBD_DISABLE:
		k->scanning = false;
		kbd_push(k, (const uint8_t[]){ KBD_ACK }, 1);
		break;
	default:
		/* 0xf7..0xfd (set 3 key types) are accepted; anything else is
		 * not a command this keyboard knows. */
		kbd_push(k, (const uint8_t[]){ v >= 0xf7 ? KBD_ACK : KBD_NAK }, 1);
		break;
	}
}

/* The data byte of a two-byte controller command. */
static void controller_data(struct i8042 *k, uint8_t cmd, uint8_t v)
{
	switch (cmd) {
	case CMD_WRITE_CTR:
		k->ctr = v;
		deliver(k);
		break;
	case CMD_WRITE_OUTPUT:
		if (!(v & 1)) /* bit 0 low holds the CPU in reset */
			k->event(k->ctx, POWER_RESET);
		break;
	case CMD_WRITE_KBD_OUT:
		kbd_push(k, &v, 1);
		break;
	case CMD_WRITE_AUX_OUT:
		/* No AUX port: the byte comes back marked as keyboard data,
		 * which tells Linux at once that the AUX loop does not work. */
		controller_answer(k, v);
		break;
	default: /* CMD_WRITE_AUX: nothing is attached there */
		break;
	}
}

static void command(struct i8042 *k, uint8_t cmd)
{
	k->pending = 0;
	switch (cmd) {
	case CMD_READ_CTR:
		controller_answer(k, k->ctr);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTPUT:
	case CMD_WRITE_KBD_OUT:
	case CMD_WRITE_AUX_OUT:
	case CMD_WRITE_AUX:
		k->pending = cmd;
		break;
	case CMD_AUX_DISABLE:
		k->ctr |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->ctr &= (uint8_t)~CTR_AUXDIS;
		break;
	case CMD_AUX_TEST:
		controller_answer(k, 0x01); /* clock line stuck low: no AUX device */
		break;
	case CMD_SELF_TEST:
		k->ctr |= CTR_SYS;
		controller_answer(k, 0x55);
		break;
	case CMD_KBD_TEST:
		controller_answer(k, 0x00);
		break;
	case CMD_KBD_DISABLE:
		k->ctr |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->ctr &= (uint8_t)~CTR_KBDDIS;
		deliver(k);
		break;
	case CMD_READ_INPUT:
		controller_answer(k, 0x80); /* keyboard not inhibited */
		break;
	case CMD_READ_OUTPUT:
		controller_answer(k, 0x03); /* A20 on, CPU running */
		break;
	case CMD_PULSE_RESET:
		k->event(k->ctx, POWER_RESET);
		break;
	default:
		break;
	}
}

void i8042_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write)
{
	struct i8042 *k = opaque;

	pthread_mutex_lock(&k->lock);
	if (!write) {
		memset(data, 0, size);
		if (port == I8042_PORT_CMD) {
			data[0] = STS_UNLOCKED | (k->out_full ? STS_OBF : 0) | (k->ctr & CTR_SYS ? STS_SYS : 0) |
				  (k->cmd_last ? STS_CMD : 0);
		} else {
			data[0] = k->out;
			k->out_full = false;
			deliver(k);
		}
	} else if (port == I8042_PORT_CMD) {
		k->cmd_last = true;
		command(k, data[0]);
	} else {
		uint8_t cmd = k->pending;

		k->cmd_last = false;
		k->pending = 0;
		if (cmd)
			controller_data(k, cmd, data[0]);
		else
			keyboard_write(k, data[0]);
	}
	pthread_mutex_unlock(&k->lock);
}

int i8042_ctrl_alt_del(struct i8042 *k)
{
	/* Scan code set 2: Ctrl, Alt, Del (extended) down, then up in reverse. */
	static const uint8_t keys[] = { 0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14 };
	bool ok;

	pthread_mutex_lock(&k->lock);
	ok = k->scanning && kbd_push(k, keys, sizeof(keys));
	pthread_mutex_unlock(&k->lock);
	return ok ? 0 : CV_EINPUT;
}

static const struct snap_field i8042_fields[] = {
	SNAP_FIELD(struct i8042, ctr),	     SNAP_FIELD(struct i8042, pending),	  SNAP_FIELD(struct i8042, kbd_pending),
	SNAP_FLAG(struct i8042, cmd_last),   SNAP_FLAG(struct i8042, out_full),	  SNAP_FIELD(struct i8042, out),
	SNAP_FLAG(struct i8042, scanning),   SNAP_FIELD(struct i8042, last_sent), SNAP_ARRAY(struct i8042, q),
	SNAP_FIELD(struct i8042, q_head),    SNAP_FIELD(struct i8042, q_len),
};

static bool i8042_valid(const void *copy)
{
	const struct i8042 *k = copy;

	return k->q_head < I8042_QUEUE && k->q_len <= I8042_QUEUE;
}

int i8042_save(void *dev, struct snap_writer *w)
{
	struct i8042 *k = dev;

	pthread_mutex_lock(&k->lock);
	snap_put_fields(w, k, i8042_fields, SNAP_NFIELDS(i8042_fields));
	pthread_mutex_unlock(&k->lock);
	return 0;
}

int i8042_load(void *dev, struct snap_reader *r)
{
	struct i8042 *k = dev;
	int rc;

	pthread_mutex_lock(&k->lock);
	rc = snap_load_fields(r, k, sizeof(*k), i8042_fields, SNAP_NFIELDS(i8042_fields), i8042_valid);
	pthread_mutex_unlock(&k->lock);
	return rc;
}
