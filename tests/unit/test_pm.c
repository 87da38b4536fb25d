/* Power control: ACPI PM1 block, reset register 0xcf9, port 0xf4 and the
 * i8042 reset line, with power events recorded. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "hw/i8042.h"
#include "hw/pm.h"
#include "vmm/bus.h"

#define PM1_STS PM_PORT_PM1_EVT
#define PM1_EN (PM_PORT_PM1_EVT + 2)
#define PM1_CNT PM_PORT_PM1_CNT
#define SCI_EN 0x0001
#define SLP_EN 0x2000
#define SLP_TYP(t) ((t) << 10)

struct events {
	unsigned n;
	enum power_event last;
	void *ctx;
};

static struct events ev;

static void record(void *ctx, enum power_event e)
{
	ev.n++;
	ev.last = e;
	ev.ctx = ctx;
}

/* Asserts exactly `n` events since the last call, the last one `e`. */
static void expect_events(unsigned n, enum power_event e)
{
	assert_int_equal(ev.n, n);
	if (n)
		assert_int_equal(ev.last, e);
	memset(&ev, 0, sizeof(ev));
}

static void expect_no_event(void)
{
	expect_events(0, POWER_OFF);
}

static int setup(void **state)
{
	static struct pm pm;

	memset(&ev, 0, sizeof(ev));
	pm_init(&pm, record, &pm);
	*state = &pm;
	return 0;
}

static void io16(struct pm *pm, uint16_t port, uint16_t v)
{
	uint8_t d[2];

	memcpy(d, &v, 2);
	pm_io(pm, port, d, 2, true);
}

static uint16_t in16(struct pm *pm, uint16_t port)
{
	uint8_t d[2] = { 0xee, 0xee };
	uint16_t v;

	pm_io(pm, port, d, 2, false);
	memcpy(&v, d, 2);
	return v;
}

static void io8(void *dev, bus_handler fn, uint16_t port, uint8_t v)
{
	fn(dev, port, &v, 1, true);
}

static uint8_t in8(void *dev, bus_handler fn, uint16_t port)
{
	uint8_t v = 0xee;

	fn(dev, port, &v, 1, false);
	return v;
}

static void test_sci_enabled(void **state)
{
	struct pm *pm = *state;

	assert_int_equal(in16(pm, PM1_CNT) & SCI_EN, SCI_EN);
	assert_int_equal(in8(pm, pm_io, PM1_CNT) & SCI_EN, SCI_EN);
	/* The guest cannot leave ACPI mode. */
	io16(pm, PM1_CNT, 0);
	assert_int_equal(in16(pm, PM1_CNT) & SCI_EN, SCI_EN);
	expect_no_event();
}

static void test_s5_powers_off(void **state)
{
	struct pm *pm = *state;

	io16(pm, PM1_CNT, 0x3400); /* SLP_TYP 5, SLP_EN */
	assert_ptr_equal(ev.ctx, pm);
	expect_events(1, POWER_OFF);
	/* SLP_EN is a write-only trigger: it reads back clear, ready for the next. */
	assert_int_equal(in16(pm, PM1_CNT) & SLP_EN, 0);
	io16(pm, PM1_CNT, SLP_TYP(PM_S5_TYPE) | SLP_EN | SCI_EN);
	expect_events(1, POWER_OFF);
}

static void test_other_sleep_states_refused(void **state)
{
	struct pm *pm = *state;

	for (unsigned t = 0; t < 8; t++) {
		if (t == PM_S5_TYPE)
			continue;
		io16(pm, PM1_CNT, SLP_TYP(t) | SLP_EN);
		expect_no_event();
	}
	/* S5 type without SLP_EN only selects the state. */
	io16(pm, PM1_CNT, SLP_TYP(PM_S5_TYPE));
	expect_no_event();
	assert_int_equal(in16(pm, PM1_CNT), SLP_TYP(PM_S5_TYPE) | SCI_EN);
}

static void test_s5_by_bytes(void **state)
{
	struct pm *pm = *state;

	io8(pm, pm_io, PM1_CNT, 0x01);
	expect_no_event();
	io8(pm, pm_io, PM1_CNT + 1, 0x34);
	expect_events(1, POWER_OFF);
	/* Type first, SLP_EN in a later write of the same byte. */
	io8(pm, pm_io, PM1_CNT + 1, 0x14);
	expect_no_event();
	io8(pm, pm_io, PM1_CNT + 1, 0x34);
	expect_events(1, POWER_OFF);
	/* The low byte is independent of the high one. */
	io8(pm, pm_io, PM1_CNT + 1, 0x14);
	io8(pm, pm_io, PM1_CNT, 0x01);
	assert_int_equal(in16(pm, PM1_CNT), 0x1401);
	expect_no_event();
}

static void test_pm1_status_write_one_to_clear(void **state)
{
	struct pm *pm = *state;

	pm->pm1_sts = 0x8121; /* WAK_STS, PWRBTN_STS, ... as hardware would set them */
	assert_int_equal(in16(pm, PM1_STS), 0x8121);
	io16(pm, PM1_STS, 0x0100);
	assert_int_equal(in16(pm, PM1_STS), 0x8021);
	io16(pm, PM1_STS, 0); /* writing zeros changes nothing */
	assert_int_equal(in16(pm, PM1_STS), 0x8021);
	io8(pm, pm_io, PM1_STS + 1, 0x80);
	assert_int_equal(in16(pm, PM1_STS), 0x0021);
	io8(pm, pm_io, PM1_STS, 0xff);
	assert_int_equal(in16(pm, PM1_STS), 0);
	/* PM1_EN next to it is a plain read/write register. */
	io16(pm, PM1_EN, 0x0120);
	assert_int_equal(in16(pm, PM1_EN), 0x0120);
	io16(pm, PM1_EN, 0x0100);
	assert_int_equal(in16(pm, PM1_EN), 0x0100);
	expect_no_event();
}

static void test_reset_register(void **state)
{
	struct pm *pm = *state;

	io8(pm, pm_io, PM_PORT_RESET, 0x02); /* SYS_RST alone selects, does not reset */
	expect_no_event();
	assert_int_equal(in8(pm, pm_io, PM_PORT_RESET), 0x02);
	io8(pm, pm_io, PM_PORT_RESET, PM_RESET_VALUE);
	expect_events(1, POWER_RESET);
	io8(pm, pm_io, PM_PORT_RESET, 0x00);
	expect_no_event();
}

static void test_poweroff_port(void **state)
{
	struct pm *pm = *state;

	assert_int_equal(in8(pm, pm_io, PM_PORT_POWEROFF), 0xff);
	expect_no_event();
	io8(pm, pm_io, PM_PORT_POWEROFF, 0x00);
	expect_events(1, POWER_OFF);
	io16(pm, PM_PORT_POWEROFF, 0x1234);
	expect_events(1, POWER_OFF);
}

static void test_i8042(void **state)
{
	struct i8042 k;

	(void)state;
	assert_int_equal(i8042_init(&k, record, NULL, &k), 0);
	assert_int_equal(in8(&k, i8042_io, I8042_PORT_CMD) & 0x01, 0); /* nothing to read */
	assert_int_equal(in8(&k, i8042_io, I8042_PORT_DATA), 0);
	for (unsigned c = 0; c < 0x100; c++) {
		if (c == 0xfe)
			continue;
		io8(&k, i8042_io, I8042_PORT_CMD, (uint8_t)c);
	}
	io8(&k, i8042_io, I8042_PORT_DATA, 0xfe); /* data, not a command */
	expect_no_event();
	io8(&k, i8042_io, I8042_PORT_CMD, 0xfe);
	assert_ptr_equal(ev.ctx, &k);
	expect_events(1, POWER_RESET);
	i8042_destroy(&k);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, NULL)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_sci_enabled),
		T(test_s5_powers_off),
		T(test_other_sleep_states_refused),
		T(test_s5_by_bytes),
		T(test_pm1_status_write_one_to_clear),
		T(test_reset_register),
		T(test_poweroff_port),
		T(test_i8042),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
