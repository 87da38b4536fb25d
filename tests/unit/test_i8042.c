/* The i8042 as Linux's i8042 and atkbd drivers probe it: every answer
 * arrives at once (no probe timeouts), no AUX port, an MF2 keyboard, and
 * Ctrl+Alt+Del as scan code set 2 bytes with an IRQ 1 edge per byte. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hw/i8042.h"
#include "util/err.h"

static unsigned resets, rising_edges;
static int level;

static void on_power(void *ctx, enum power_event e)
{
	(void)ctx;
	resets += e == POWER_RESET;
}

static void on_irq(void *ctx, unsigned irq, int l)
{
	(void)ctx;
	assert_int_equal(irq, I8042_IRQ);
	rising_edges += !level && l;
	level = l;
}

static struct i8042 k;

static int setup(void **state)
{
	(void)state;
	resets = rising_edges = 0;
	level = 0;
	return i8042_init(&k, on_power, on_irq, NULL);
}

static int teardown(void **state)
{
	(void)state;
	i8042_destroy(&k);
	return 0;
}

static uint8_t status(void)
{
	uint8_t v;

	i8042_io(&k, I8042_PORT_CMD, &v, 1, false);
	return v;
}

static uint8_t data(void)
{
	uint8_t v;

	assert_true(status() & 0x01); /* something to read */
	i8042_io(&k, I8042_PORT_DATA, &v, 1, false);
	return v;
}

static void cmd(uint8_t c)
{
	i8042_io(&k, I8042_PORT_CMD, &c, 1, true);
}

static void out(uint8_t c)
{
	i8042_io(&k, I8042_PORT_DATA, &c, 1, true);
}

static void test_controller_probe(void **state)
{
	(void)state;
	assert_int_equal(status() & 0x13, 0x10); /* not locked, buffers empty */
	cmd(0xaa);
	assert_int_equal(data(), 0x55);
	cmd(0x20);
	assert_int_equal(data(), 0x25); /* kbd IRQ, POST ok, AUX off, no translation */
	cmd(0x60);
	out(0x24);
	cmd(0x20);
	assert_int_equal(data(), 0x24);
	cmd(0xab);
	assert_int_equal(data(), 0x00);
	assert_int_equal(status() & 0x01, 0);
	assert_int_equal(rising_edges, 0); /* controller answers are polled */
}

static void test_no_aux_port_answers_at_once(void **state)
{
	(void)state;
	/* AUX loopback comes back as keyboard data (no AUX bit): Linux gives
	 * up on AUX without waiting, and the AUX test says "clock stuck". */
	cmd(0xd3);
	out(0x5a);
	assert_int_equal(status() & 0x21, 0x01);
	cmd(0xa9);
	assert_int_equal(data(), 0x01);
	assert_int_equal(status() & 0x01, 0);
}

static void test_keyboard_commands(void **state)
{
	(void)state;
	out(0xf2); /* get ID */
	assert_int_equal(data(), 0xfa);
	assert_int_equal(data(), 0xab);
	assert_int_equal(data(), 0x83);
	out(0xed); /* LEDs + parameter */
	assert_int_equal(data(), 0xfa);
	out(0x00);
	assert_int_equal(data(), 0xfa);
	out(0xf0); /* which scan set? */
	assert_int_equal(data(), 0xfa);
	out(0x00);
	assert_int_equal(data(), 0xfa);
	assert_int_equal(data(), 0x02);
	out(0xff); /* reset: ACK, self-test passed */
	assert_int_equal(data(), 0xfa);
	assert_int_equal(data(), 0xaa);
	out(0x42); /* not a command */
	assert_int_equal(data(), 0xfe);
	assert_int_equal(rising_edges, 11); /* one edge per byte */
}

static void test_ctrl_alt_del(void **state)
{
	static const uint8_t expect[] = { 0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14 };

	(void)state;
	assert_int_equal(i8042_ctrl_alt_del(&k), 0);
	for (size_t i = 0; i < sizeof(expect); i++)
		assert_int_equal(data(), expect[i]);
	assert_int_equal(status() & 0x01, 0);
	assert_int_equal(rising_edges, sizeof(expect));
}

static void test_keys_wait_while_keyboard_disabled(void **state)
{
	(void)state;
	cmd(0xad); /* disable the keyboard interface */
	assert_int_equal(i8042_ctrl_alt_del(&k), 0);
	assert_int_equal(status() & 0x01, 0);
	cmd(0xae);
	assert_int_equal(data(), 0x14);
}

static void test_ctrl_alt_del_refused_when_not_scanning_or_full(void **state)
{
	(void)state;
	out(0xf5); /* the guest disabled scanning */
	assert_int_equal(data(), 0xfa);
	assert_int_equal(i8042_ctrl_alt_del(&k), CV_EINPUT);
	out(0xf4);
	assert_int_equal(data(), 0xfa);
	cmd(0xad);
	for (int i = 0; i < I8042_QUEUE / 11; i++)
		assert_int_equal(i8042_ctrl_alt_del(&k), 0);
	assert_int_equal(i8042_ctrl_alt_del(&k), CV_EINPUT);
}

static void test_reset_lines(void **state)
{
	(void)state;
	cmd(0xd1);
	out(0x03); /* A20 on, reset line high: nothing */
	assert_int_equal(resets, 0);
	cmd(0xd1);
	out(0x02);
	assert_int_equal(resets, 1);
	cmd(0xfe);
	assert_int_equal(resets, 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_controller_probe),
		T(test_no_aux_port_answers_at_once),
		T(test_keyboard_commands),
		T(test_ctrl_alt_del),
		T(test_keys_wait_while_keyboard_disabled),
		T(test_ctrl_alt_del_refused_when_not_scanning_or_full),
		T(test_reset_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
