/* MC146818 RTC on a fake host clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hw/rtc.h"

enum { SEC = 0x00, MIN = 0x02, HOUR = 0x04, WDAY = 0x06, MDAY = 0x07, MONTH = 0x08, YEAR = 0x09,
       REG_A = 0x0a, REG_B = 0x0b, REG_C = 0x0c, REG_D = 0x0d, CENTURY = 0x32 };

#define NMI_MASK 0x80
#define B_SET 0x80
#define B_24H_BINARY 0x06
#define A_UIP 0x80

static time_t host_now; /* what the fake host clock says */

static time_t fake_now(void)
{
	return host_now;
}

static time_t utc(int year, int mon, int mday, int hour, int min, int sec)
{
	struct tm tm = { .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = mday,
			 .tm_hour = hour, .tm_min = min, .tm_sec = sec };

	return timegm(&tm);
}

static int setup(void **state)
{
	struct rtc *r = malloc(sizeof(*r));

	if (!r || rtc_init(r, fake_now))
		return -1;
	host_now = utc(2026, 11, 21, 23, 45, 7); /* a Saturday */
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	rtc_destroy(*state);
	free(*state);
	return 0;
}

static uint8_t rd(struct rtc *r, uint8_t reg)
{
	uint8_t v = reg;

	rtc_io(r, RTC_PORT_INDEX, &v, 1, true);
	v = 0xee;
	rtc_io(r, RTC_PORT_DATA, &v, 1, false);
	return v;
}

static void wr(struct rtc *r, uint8_t reg, uint8_t v)
{
	rtc_io(r, RTC_PORT_INDEX, &reg, 1, true);
	rtc_io(r, RTC_PORT_DATA, &v, 1, true);
}

struct clock_regs {
	uint8_t sec, min, hour, wday, mday, month, year, century;
};

static void assert_clock(struct rtc *r, struct clock_regs want)
{
	struct clock_regs got = { rd(r, SEC), rd(r, MIN), rd(r, HOUR), rd(r, WDAY),
				  rd(r, MDAY), rd(r, MONTH), rd(r, YEAR), rd(r, CENTURY) };

	if (memcmp(&got, &want, sizeof(got)))
		fail_msg("clock reads %02x:%02x:%02x wday %02x %02x-%02x-%02x%02x, want "
			 "%02x:%02x:%02x wday %02x %02x-%02x-%02x%02x",
			 got.hour, got.min, got.sec, got.wday, got.mday, got.month, got.century, got.year,
			 want.hour, want.min, want.sec, want.wday, want.mday, want.month, want.century, want.year);
}

static void test_fake_clock_is_what_we_think(void **state)
{
	(void)state;
	assert_int_equal(host_now, 1795304707);
}

static void test_bcd_by_default(void **state)
{
	assert_int_equal(rd(*state, REG_B) & B_24H_BINARY, 0x02); /* 24-hour, BCD */
	assert_clock(*state, (struct clock_regs){ 0x07, 0x45, 0x23, 0x07, 0x21, 0x11, 0x26, 0x20 });
}

static void test_binary_mode(void **state)
{
	wr(*state, REG_B, B_24H_BINARY);
	assert_int_equal(rd(*state, REG_B), B_24H_BINARY);
	assert_clock(*state, (struct clock_regs){ 7, 45, 23, 7, 21, 11, 26, 20 });
}

static void test_clock_follows_host(void **state)
{
	host_now += 60 * 60 + 10; /* 00:45:17 the next day, a Sunday */
	assert_clock(*state, (struct clock_regs){ 0x17, 0x45, 0x00, 0x01, 0x22, 0x11, 0x26, 0x20 });
}

static void test_set_hour_keeps_running(void **state)
{
	struct rtc *r = *state;

	wr(r, HOUR, 0x05);
	assert_clock(r, (struct clock_regs){ 0x07, 0x45, 0x05, 0x07, 0x21, 0x11, 0x26, 0x20 });
	host_now += 10;
	assert_clock(r, (struct clock_regs){ 0x17, 0x45, 0x05, 0x07, 0x21, 0x11, 0x26, 0x20 });
	/* The guest's clock is an offset from the host's, not a frozen copy. */
	host_now += 15 * 60;
	assert_int_equal(rd(r, MIN), 0x00);
	assert_int_equal(rd(r, HOUR), 0x06);
}

static void test_set_time_in_binary(void **state)
{
	struct rtc *r = *state;

	wr(r, REG_B, B_24H_BINARY);
	wr(r, SEC, 59);
	wr(r, MIN, 59);
	assert_clock(r, (struct clock_regs){ 59, 59, 23, 7, 21, 11, 26, 20 });
	host_now += 1; /* midnight: the date rolls over */
	assert_clock(r, (struct clock_regs){ 0, 0, 0, 1, 22, 11, 26, 20 });
}

static void test_set_date(void **state)
{
	struct rtc *r = *state;

	wr(r, YEAR, 0x30);
	wr(r, MONTH, 0x02);
	wr(r, MDAY, 0x29); /* 2030 is no leap year: normalized to 1 March */
	assert_clock(r, (struct clock_regs){ 0x07, 0x45, 0x23, 0x06, 0x01, 0x03, 0x30, 0x20 });
	wr(r, CENTURY, 0x19);
	assert_int_equal(rd(r, CENTURY), 0x19);
	assert_int_equal(rd(r, YEAR), 0x30);
	assert_int_equal(rd(r, MONTH), 0x03);
	/* The weekday is derived, not settable. */
	wr(r, WDAY, 0x02);
	assert_int_equal(rd(r, WDAY), 0x07); /* 1 March 1930 was a Saturday */
}

static void test_status_registers(void **state)
{
	struct rtc *r = *state;

	assert_int_equal(rd(r, REG_A) & A_UIP, 0);
	assert_int_equal(rd(r, REG_A), 0x26);
	wr(r, REG_A, A_UIP | 0x20);
	assert_int_equal(rd(r, REG_A), 0x20); /* UIP is read-only */
	assert_int_equal(rd(r, REG_C), 0);
	assert_int_equal(rd(r, REG_D), 0x80);
	wr(r, REG_D, 0x00);
	assert_int_equal(rd(r, REG_D), 0x80);
	/* SET is accepted but not latched: the clock keeps counting. */
	wr(r, REG_B, B_SET | 0x02);
	assert_int_equal(rd(r, REG_B), 0x02);
}

static void test_nmi_mask_bit_ignored(void **state)
{
	struct rtc *r = *state;
	uint8_t v = NMI_MASK | HOUR;

	rtc_io(r, RTC_PORT_INDEX, &v, 1, true);
	rtc_io(r, RTC_PORT_DATA, &v, 1, false);
	assert_int_equal(v, 0x23);
	/* Writes through a masked index land in the same register. */
	v = NMI_MASK | 0x40;
	rtc_io(r, RTC_PORT_INDEX, &v, 1, true);
	v = 0x5a;
	rtc_io(r, RTC_PORT_DATA, &v, 1, true);
	assert_int_equal(rd(r, 0x40), 0x5a);
}

static void test_cmos_ram_and_index_port(void **state)
{
	struct rtc *r = *state;
	uint8_t v = 0;

	wr(r, 0x7f, 0xa5);
	wr(r, 0x10, 0x3c);
	assert_int_equal(rd(r, 0x7f), 0xa5);
	assert_int_equal(rd(r, 0x10), 0x3c);
	assert_int_equal(rd(r, 0x11), 0);
	rtc_io(r, RTC_PORT_INDEX, &v, 1, false);
	assert_int_equal(v, 0xff); /* the index register is write-only */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_fake_clock_is_what_we_think),
		T(test_bcd_by_default),
		T(test_binary_mode),
		T(test_clock_follows_host),
		T(test_set_hour_keeps_running),
		T(test_set_time_in_binary),
		T(test_set_date),
		T(test_status_registers),
		T(test_nmi_mask_bit_ignored),
		T(test_cmos_ram_and_index_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
