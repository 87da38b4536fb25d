#include "hw/rtc.h"

#include <string.h>

enum {
	SEC = 0x00, MIN = 0x02, HOUR = 0x04, WDAY = 0x06, MDAY = 0x07, MONTH = 0x08, YEAR = 0x09,
	REG_A = 0x0a, REG_B = 0x0b, REG_C = 0x0c, REG_D = 0x0d, CENTURY = 0x32,
};

#define B_SET 0x80
#define B_BINARY 0x04
#define B_24H 0x02
#define D_VRT 0x80

int rtc_init(struct rtc *r, time_t (*now)(void))
{
	memset(r, 0, sizeof(*r));
	r->now = now;
	r->cmos[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate, UIP clear */
	r->cmos[REG_B] = B_24H;
	r->cmos[REG_D] = D_VRT; /* battery good */
	return pthread_mutex_init(&r->lock, NULL) ? -1 : 0;
}

void rtc_destroy(struct rtc *r)
{
	pthread_mutex_destroy(&r->lock);
}

static uint8_t to_reg(const struct rtc *r, unsigned v)
{
	return (r->cmos[REG_B] & B_BINARY) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | (v % 10));
}

static unsigned from_reg(const struct rtc *r, uint8_t v)
{
	return (r->cmos[REG_B] & B_BINARY) ? v : (unsigned)(v >> 4) * 10 + (v & 0x0f);
}

static bool is_time_reg(unsigned i)
{
	return i == SEC || i == MIN || i == HOUR || i == WDAY || i == MDAY || i == MONTH || i == YEAR ||
	       i == CENTURY;
}

static void guest_tm(const struct rtc *r, struct tm *tm)
{
	time_t t = r->now() + r->offset;

	gmtime_r(&t, tm);
}

static uint8_t read_time(const struct rtc *r, unsigned i)
{
	struct tm tm;

	guest_tm(r, &tm);
	switch (i) {
	case SEC: return to_reg(r, tm.tm_sec);
	case MIN: return to_reg(r, tm.tm_min);
	case HOUR: return to_reg(r, tm.tm_hour);
	case WDAY: return to_reg(r, tm.tm_wday + 1);
	case MDAY: return to_reg(r, tm.tm_mday);
	case MONTH: return to_reg(r, tm.tm_mon + 1);
	case YEAR: return to_reg(r, tm.tm_year % 100);
	default: return to_reg(r, (tm.tm_year + 1900) / 100);
	}
}

/* Setting one field moves the guest's clock; the others keep running. */
static void write_time(struct rtc *r, unsigned i, uint8_t v)
{
	struct tm tm;
	unsigned x = from_reg(r, v);
	time_t t;

	guest_tm(r, &tm);
	switch (i) {
	case SEC: tm.tm_sec = (int)x; break;
	case MIN: tm.tm_min = (int)x; break;
	case HOUR: tm.tm_hour = (int)x; break;
	case MDAY: tm.tm_mday = (int)x; break;
	case MONTH: tm.tm_mon = (int)x - 1; break;
	case YEAR: tm.tm_year = (tm.tm_year / 100) * 100 + (int)x; break;
	case CENTURY: tm.tm_year = (int)x * 100 - 1900 + tm.tm_year % 100; break;
	default: return; /* the weekday follows from the date */
	}
	t = timegm(&tm);
	if (t != (time_t)-1)
		r->offset = (int64_t)t - (int64_t)r->now();
}

void rtc_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write)
{
	struct rtc *r = opaque;
	unsigned i;

	pthread_mutex_lock(&r->lock);
	if (port == RTC_PORT_INDEX) {
		if (write)
			r->index = data[0] & 0x7f; /* bit 7 is the NMI mask */
		else
			memset(data, 0xff, size);
		goto out;
	}
	i = r->index;
	if (!write) {
		memset(data, 0, size);
		if (is_time_reg(i))
			data[0] = read_time(r, i);
		else if (i == REG_C)
			data[0] = 0; /* no interrupt sources are modelled */
		else
			data[0] = r->cmos[i];
		goto out;
	}
	if (is_time_reg(i))
		write_time(r, i, data[0]);
	else if (i == REG_B)
		r->cmos[i] = data[0] & ~B_SET;
	else if (i == REG_A)
		r->cmos[i] = data[0] & 0x7f; /* UIP is read-only, always clear */
	else if (i != REG_C && i != REG_D)
		r->cmos[i] = data[0];
out:
	pthread_mutex_unlock(&r->lock);
}

static const struct snap_field rtc_fields[] = {
	SNAP_FIELD(struct rtc, index),
	SNAP_ARRAY(struct rtc, cmos),
	SNAP_FIELD(struct rtc, offset),
};

int rtc_save(void *dev, struct snap_writer *w)
{
	struct rtc *r = dev;

	pthread_mutex_lock(&r->lock);
	snap_put_fields(w, r, rtc_fields, SNAP_NFIELDS(rtc_fields));
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int rtc_load(void *dev, struct snap_reader *rd)
{
	struct rtc *r = dev;
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = snap_load_fields(rd, r, sizeof(*r), rtc_fields, SNAP_NFIELDS(rtc_fields), NULL);
	pthread_mutex_unlock(&r->lock);
	return rc;
}
