/* Adaptive polling of a split virtqueue (src/virtio/poll.c) against a fake
 * driver: while the device polls, the driver is told not to kick; when the
 * window is over the device turns kicks back on before its last look, so
 * a buffer the driver adds at any moment is either seen by the device or
 * followed by a kick. Time is passed in, never read. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "vq_fixture.h"
#include "virtio/poll.h"

#define WINDOW_US 50
#define T0 1000000ULL
#define IN_WINDOW (T0 + WINDOW_US * 1000ULL - 1)
#define AFTER (T0 + WINDOW_US * 1000ULL)

/* Whether a driver that just published a buffer would kick the device
 * (what Linux's virtqueue_kick_prepare decides). */
static bool driver_kicks(struct env *e)
{
	uint16_t now = avail(e)->idx;

	if (e->q.event_idx)
		return vring_need_event(get_avail_event(e), now, (uint16_t)(now - 1));
	return !(used(e)->flags & VRING_USED_F_NO_NOTIFY);
}

/* A buffer the driver adds, and whether it kicked for it. */
static bool driver_adds(struct env *e)
{
	offer(e, 0);
	return driver_kicks(e);
}

static void take_all(struct env *e)
{
	while (pop(e, VIRTQ_MAX_CHAIN) == VIRTQ_GOT)
		virtq_push(&e->q, e->req.head, 0);
}

/* The queue served one request and is idle with kicks on. */
static void idle_queue(struct env *e, bool event_idx, struct vq_poll *p, uint32_t window_us)
{
	start(e, QSIZE, event_idx);
	set_chain(e, 1, 1, 64);
	offer(e, 0);
	take_all(e);
	assert_false(virtq_enable_notify(&e->q));
	vq_poll_init(p, &e->q, window_us);
}

static void test_no_window_no_polling(void **state)
{
	struct env *e = *state;
	struct vq_poll p;

	idle_queue(e, false, &p, 0);
	assert_false(vq_poll_begin(&p, T0));
	assert_false(vq_poll_active(&p));
	assert_int_equal(vq_poll_step(&p, T0), VQ_POLL_STOP);
	assert_true(driver_adds(e));
}

static void polls_without_kicks(bool event_idx)
{
	struct env *e = env_new(LAYOUT_MMIO_HOLE);
	struct vq_poll p;

	idle_queue(e, event_idx, &p, WINDOW_US);
	assert_true(vq_poll_begin(&p, T0));
	assert_true(vq_poll_active(&p));
	assert_int_equal(vq_poll_step(&p, T0), VQ_POLL_WAIT);
	/* The driver adds buffers without kicking; each round finds them. */
	for (int i = 0; i < 40; i++) {
		assert_false(driver_adds(e));
		assert_int_equal(vq_poll_step(&p, IN_WINDOW), VQ_POLL_WORK);
		/* Draining a polled queue leaves kicks off. */
		take_all(e);
		assert_false(driver_adds(e));
		assert_int_equal(vq_poll_step(&p, IN_WINDOW), VQ_POLL_WORK);
		take_all(e);
		assert_int_equal(vq_poll_step(&p, IN_WINDOW), VQ_POLL_WAIT);
	}
	/* A completion restarts the window. */
	assert_true(vq_poll_begin(&p, AFTER));
	assert_int_equal(vq_poll_step(&p, AFTER), VQ_POLL_WAIT);
	teardown((void **)&e);
}

static void test_polls_without_kicks(void **state)
{
	(void)state;
	polls_without_kicks(false);
	polls_without_kicks(true);
}

/* Nothing came: the window ends with kicks on and the next buffer kicks. */
static void ends_with_kicks_on(bool event_idx)
{
	struct env *e = env_new(LAYOUT_MMIO_HOLE);
	struct vq_poll p;

	idle_queue(e, event_idx, &p, WINDOW_US);
	assert_true(vq_poll_begin(&p, T0));
	assert_int_equal(vq_poll_step(&p, IN_WINDOW), VQ_POLL_WAIT);
	assert_int_equal(vq_poll_step(&p, AFTER), VQ_POLL_STOP);
	assert_false(vq_poll_active(&p));
	assert_int_equal(vq_poll_step(&p, AFTER), VQ_POLL_STOP);
	assert_true(driver_adds(e));
	teardown((void **)&e);
}

static void test_ends_with_kicks_on(void **state)
{
	(void)state;
	ends_with_kicks_on(false);
	ends_with_kicks_on(true);
}

/* The race: the driver adds a buffer while kicks are still off, after the
 * device's last look inside the window. It does not kick; the device's
 * final look, after turning kicks on, must find it. */
static void last_look_finds_a_silent_buffer(bool event_idx)
{
	struct env *e = env_new(LAYOUT_MMIO_HOLE);
	struct vq_poll p;

	idle_queue(e, event_idx, &p, WINDOW_US);
	assert_true(vq_poll_begin(&p, T0));
	assert_int_equal(vq_poll_step(&p, IN_WINDOW), VQ_POLL_WAIT);
	assert_false(driver_adds(e));
	assert_int_equal(vq_poll_step(&p, AFTER), VQ_POLL_WORK);
	assert_false(vq_poll_active(&p));
	/* An ordinary drain follows: it re-arms, and the next buffer kicks. */
	assert_int_equal(pop(e, VIRTQ_MAX_CHAIN), VIRTQ_GOT);
	virtq_push(&e->q, e->req.head, 0);
	assert_false(virtq_enable_notify(&e->q));
	assert_true(driver_adds(e));
	teardown((void **)&e);
}

static void test_last_look_finds_a_silent_buffer(void **state)
{
	(void)state;
	last_look_finds_a_silent_buffer(false);
	last_look_finds_a_silent_buffer(true);
}

/* EVENT_IDX: however far the device gets while polling, avail_event stays
 * behind the driver, so no add is ever a kick. */
static void test_event_idx_stays_behind_across_wrap(void **state)
{
	struct env *e = *state;
	struct vq_poll p;

	idle_queue(e, true, &p, WINDOW_US);
	assert_true(vq_poll_begin(&p, T0));
	for (unsigned i = 0; i < 70000; i++) {
		assert_false(driver_adds(e));
		assert_int_equal(vq_poll_step(&p, IN_WINDOW), VQ_POLL_WORK);
		take_all(e);
	}
}

/* A reset zeroes the queue: polling is simply over, the rings untouched. */
static void test_reset_stops_polling(void **state)
{
	struct env *e = *state;
	struct vq_poll p;

	idle_queue(e, false, &p, WINDOW_US);
	assert_true(vq_poll_begin(&p, T0));
	virtq_reset(&e->q);
	assert_false(vq_poll_active(&p));
	assert_int_equal(vq_poll_step(&p, IN_WINDOW), VQ_POLL_STOP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_window_no_polling, setup, teardown),
		cmocka_unit_test(test_polls_without_kicks),
		cmocka_unit_test(test_ends_with_kicks_on),
		cmocka_unit_test(test_last_look_finds_a_silent_buffer),
		cmocka_unit_test_setup_teardown(test_event_idx_stays_behind_across_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_stops_polling, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
