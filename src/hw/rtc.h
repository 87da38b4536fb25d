/* MC146818 CMOS real-time clock at ports 0x70/0x71, running on host time
 * (UTC) plus whatever offset the guest sets. */
#ifndef CELLVM_HW_RTC_H
#define CELLVM_HW_RTC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "snapshot/fields.h"

#define RTC_PORT_INDEX 0x70
#define RTC_PORT_DATA 0x71

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[128];
	int64_t offset; /* guest time minus host time, seconds */
	time_t (*now)(void); /* host clock; replaceable in tests */
};

int rtc_init(struct rtc *r, time_t (*now)(void));
void rtc_destroy(struct rtc *r);
void rtc_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write);

/* CMOS contents and the guest's offset from host time, for snapshots. */
int rtc_save(void *dev, struct snap_writer *w);
int rtc_load(void *dev, struct snap_reader *r);

#endif
