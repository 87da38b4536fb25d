/* Split virtqueue (src/virtio/queue.c), after the pop: filling the used
 * ring (wraparound, virtq_unpop) and notification suppression, with and
 * without EVENT_IDX. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vq_fixture.h"

/* ---- used ring ---------------------------------------------------------- */

static void assert_used_elem(struct env *e, uint16_t slot, uint32_t id, uint32_t len)
{
	struct vring_used_elem *u = &used(e)->ring[slot & (e->q.size - 1)];

	assert_int_equal(u->id, id);
	assert_int_equal(u->len, len);
}

static void test_push_fills_used_ring(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 7, DATA_GPA, 64, VRING_DESC_F_WRITE, 0);
	expect_pop(e, 7, VIRTQ_GOT);
	assert_int_equal(used(e)->idx, 0);
	virtq_push(&e->q, e->req.head, 1234);
	assert_int_equal(used(e)->idx, 1);
	assert_int_equal(e->q.used_idx, 1);
	assert_used_elem(e, 0, 7, 1234);
}

static void test_push_wraparound(void **state)
{
	struct env *e = *state;
	const uint16_t base = 0xfff0;

	start(e, QSIZE, false);
	set_avail_idx(e, base);
	used(e)->idx = base;
	e->q.last_avail = e->q.used_idx = base;
	for (unsigned k = 0; k < 40; k++) {
		uint16_t head = (uint16_t)(k * 7 % QSIZE);

		set_desc(e, head, DATA_GPA + k, k, VRING_DESC_F_WRITE, 0);
		expect_pop(e, head, VIRTQ_GOT);
		assert_int_equal(e->req.head, head);
		assert_iov(&e->in[0], e->m.host + DATA_GPA + k, k);
		virtq_push(&e->q, head, k + 100);
		assert_int_equal(used(e)->idx, (uint16_t)(base + k + 1));
		assert_used_elem(e, (uint16_t)(base + k), head, k + 100);
	}
	assert_int_equal(e->q.last_avail, (uint16_t)(base + 40));
	assert_int_equal(pop(e, 4), VIRTQ_EMPTY);
	/* A full ring across the wrap is accepted, one more is not. */
	set_avail_idx(e, (uint16_t)(e->q.last_avail + QSIZE));
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	set_avail_idx(e, (uint16_t)(e->q.last_avail + QSIZE + 1));
	assert_int_equal(pop(e, 4), VIRTQ_BROKEN);
}

static void test_unpop_pops_same_chain(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_desc(e, 4, DATA_GPA, 10, VRING_DESC_F_NEXT, 6);
	set_desc(e, 6, DATA_GPA + 0x100, 20, VRING_DESC_F_WRITE, 0);
	set_desc(e, 1, DATA_GPA, 1, 0, 0);
	offer(e, 4);
	offer(e, 1);
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_int_equal(e->req.head, 4);
	virtq_unpop(&e->q);
	assert_int_equal(e->q.last_avail, 0);
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_int_equal(e->req.head, 4);
	assert_req(e, 1, 1, 10, 20);
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_int_equal(e->req.head, 1);
	assert_int_equal(pop(e, 4), VIRTQ_EMPTY);
}

/* ---- notifications ------------------------------------------------------ */

/* Pushes n one-byte completions of head 0. */
static void push_n(struct env *e, unsigned n)
{
	while (n--)
		virtq_push(&e->q, 0, 1);
}

static void test_signal_no_event_idx(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_used_event(e, 0x7777); /* ignored without EVENT_IDX */
	push_n(e, 1);
	assert_true(virtq_should_signal(&e->q));
	avail(e)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	push_n(e, 1);
	assert_false(virtq_should_signal(&e->q));
	avail(e)->flags = 0;
	push_n(e, 1);
	assert_true(virtq_should_signal(&e->q));
}

static void test_signal_event_idx_first_call(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	set_used_event(e, 100); /* far away, yet the first signal is always sent */
	push_n(e, 1);
	assert_true(virtq_should_signal(&e->q));
	push_n(e, 1);
	assert_false(virtq_should_signal(&e->q));
}

static void test_signal_event_idx_used_event(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	assert_true(virtq_should_signal(&e->q)); /* used_idx 0: arms the state */
	set_used_event(e, 5);
	push_n(e, 3); /* 0 -> 3: entry 5 not yet used */
	assert_false(virtq_should_signal(&e->q));
	push_n(e, 2); /* 3 -> 5: still not */
	assert_false(virtq_should_signal(&e->q));
	push_n(e, 1); /* 5 -> 6: crossed */
	assert_true(virtq_should_signal(&e->q));
	push_n(e, 4); /* 6 -> 10: already signalled for 5 */
	assert_false(virtq_should_signal(&e->q));
	assert_false(virtq_should_signal(&e->q)); /* nothing new */
	set_used_event(e, 10);
	push_n(e, 1); /* 10 -> 11 */
	assert_true(virtq_should_signal(&e->q));
}

static void test_signal_event_idx_ignores_no_interrupt(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	avail(e)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	assert_true(virtq_should_signal(&e->q));
	set_used_event(e, 0);
	push_n(e, 1);
	assert_true(virtq_should_signal(&e->q));
}

static void test_signal_event_idx_wraparound(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	e->q.used_idx = 0xfffd;
	assert_true(virtq_should_signal(&e->q));
	set_used_event(e, 0xffff);
	push_n(e, 1); /* 0xfffd -> 0xfffe */
	assert_false(virtq_should_signal(&e->q));
	push_n(e, 3); /* 0xfffe -> 0x0001 crosses 0xffff */
	assert_true(virtq_should_signal(&e->q));
	set_used_event(e, 0xfff0); /* behind us */
	push_n(e, 2);
	assert_false(virtq_should_signal(&e->q));
}

static void test_enable_notify_event_idx(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, true);
	set_chain(e, 1, 0, 8);
	memset(gpa_ptr(e, USED_GPA + 4 + 8 * QSIZE, 2), 0xee, 2);
	assert_false(virtq_enable_notify(&e->q));
	assert_int_equal(get_avail_event(e), 0);
	offer(e, 0);
	offer(e, 0);
	assert_true(virtq_enable_notify(&e->q)); /* arrived meanwhile */
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_true(virtq_enable_notify(&e->q));
	assert_int_equal(get_avail_event(e), 1);
	assert_int_equal(pop(e, 4), VIRTQ_GOT);
	assert_false(virtq_enable_notify(&e->q));
	assert_int_equal(get_avail_event(e), 2);
	assert_int_equal(used(e)->flags, 0);
}

static void test_enable_notify_no_event_idx(void **state)
{
	struct env *e = *state;

	start(e, QSIZE, false);
	set_chain(e, 1, 0, 8);
	used(e)->flags = VRING_USED_F_NO_NOTIFY;
	assert_false(virtq_enable_notify(&e->q));
	assert_int_equal(used(e)->flags, 0);
	offer(e, 0);
	assert_true(virtq_enable_notify(&e->q));
}

/* With EVENT_IDX a device that drains (pops until empty, re-arming only
 * then, as virtio_pop does) gets one kick per drain: avail_event stays
 * where it was armed, so every buffer added while it drains passes it
 * without a kick (virtio-net's transmit path relies on this). */
static void test_kicks_suppressed_while_draining(void **state)
{
	struct env *e = *state;
	uint16_t old;

	start(e, QSIZE, true);
	set_chain(e, 1, 0, 8);
	assert_false(virtq_enable_notify(&e->q));
	old = avail(e)->idx;
	offer(e, 0);
	assert_true(vring_need_event(get_avail_event(e), avail(e)->idx, old)); /* the kick that starts it */
	for (int round = 0; round < 3; round++) {
		assert_int_equal(pop(e, 4), VIRTQ_GOT);
		virtq_push(&e->q, e->req.head, 0);
		old = avail(e)->idx;
		offer(e, 0);
		offer(e, 0);
		assert_false(vring_need_event(get_avail_event(e), avail(e)->idx, old));
	}
	while (pop(e, 4) == VIRTQ_GOT)
		virtq_push(&e->q, e->req.head, 0);
	assert_false(virtq_enable_notify(&e->q));
	old = avail(e)->idx;
	offer(e, 0);
	assert_true(vring_need_event(get_avail_event(e), avail(e)->idx, old)); /* drained: the next one kicks */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_push_fills_used_ring),
		T(test_kicks_suppressed_while_draining),
		T(test_push_wraparound),
		T(test_unpop_pops_same_chain),
		T(test_signal_no_event_idx),
		T(test_signal_event_idx_first_call),
		T(test_signal_event_idx_used_event),
		T(test_signal_event_idx_ignores_no_interrupt),
		T(test_signal_event_idx_wraparound),
		T(test_enable_notify_event_idx),
		T(test_enable_notify_no_event_idx),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
