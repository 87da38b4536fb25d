/* The VMM's event loop: one epoll set served by the main thread. Device
 * back-ends (queue kicks, tap fds, I/O completions) register here, so their
 * work runs off the vCPU threads. */
#ifndef CELLVM_VMM_EVENT_LOOP_H
#define CELLVM_VMM_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

/* Room for every queue's kick of 8 disks of 16 queues, and the rest. */
#define EVENT_LOOP_MAX 256

typedef void (*event_fn)(void *opaque, uint32_t events);

struct event_handler {
	int fd;
	event_fn fn;
	void *opaque;
};

struct event_poller;

struct event_loop {
	int epfd;
	struct event_handler h[EVENT_LOOP_MAX];
	struct event_poller *pollers; /* registered pollers, a list */
};

int event_loop_init(struct event_loop *l);
void event_loop_destroy(struct event_loop *l);

#define EVENT_LOOP_UNPOLLABLE 1

/* Calls fn(opaque, revents) from event_loop_run_once whenever fd has one of
 * `events` (EPOLLIN, EPOLLOUT, ...). Returns 0, EVENT_LOOP_UNPOLLABLE for
 * files epoll cannot watch (regular files, /dev/null), or CV_EFAIL. */
int event_loop_add(struct event_loop *l, int fd, uint32_t events, event_fn fn, void *opaque);
int event_loop_modify(struct event_loop *l, int fd, uint32_t events);
void event_loop_del(struct event_loop *l, int fd);
/* The opaque pointer registered for fd, or NULL. */
void *event_loop_opaque(struct event_loop *l, int fd);

/* Waits up to timeout_ms (-1: forever) and dispatches what is ready;
 * while a poller is active it does not wait, and runs the pollers after
 * the dispatch. */
int event_loop_run_once(struct event_loop *l, int timeout_ms);

/* Busy polling (a virtqueue's adaptive polling): an active poller keeps
 * the loop from sleeping and has fn(opaque) called on every round until
 * fn returns false. Registered for the poller's lifetime; started from a
 * handler of the same loop. */
struct event_poller {
	struct event_loop *loop;
	bool (*fn)(void *opaque);
	void *opaque;
	bool active;
	struct event_poller *next;
};

void event_poller_add(struct event_poller *p, struct event_loop *l, bool (*fn)(void *opaque), void *opaque);
void event_poller_start(struct event_poller *p);
void event_poller_del(struct event_poller *p);
/* Whether a poller is active: a loop nested in another (the VM's in the
 * runner's) has the outer loop call it without waiting. */
bool event_loop_polling(const struct event_loop *l);

/* A one-shot timer served by the loop (a timerfd, so waiting costs no
 * polling): fn(opaque) runs from event_loop_run_once once the delay has
 * passed. Used where a device must pause and resume (rate limits) and by
 * back-ends with their own timeouts (user-mode NAT). */
struct event_timer {
	struct event_loop *loop;
	int fd;
	void (*fn)(void *opaque);
	void *opaque;
};

int event_timer_init(struct event_timer *t, struct event_loop *l, void (*fn)(void *opaque), void *opaque);
/* (Re)arms the timer to fire once, delay_ns from now; replaces a pending expiry. */
void event_timer_arm(struct event_timer *t, uint64_t delay_ns);
void event_timer_cancel(struct event_timer *t);
void event_timer_destroy(struct event_timer *t);

#endif
