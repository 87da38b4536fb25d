#include "vmm/event_loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "util/err.h"

int event_loop_init(struct event_loop *l)
{
	memset(l, 0, sizeof(*l));
	for (int i = 0; i < EVENT_LOOP_MAX; i++)
		l->h[i].fd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		cv_err("epoll_create1: %s", strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

void event_loop_destroy(struct event_loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

int event_loop_add(struct event_loop *l, int fd, uint32_t events, event_fn fn, void *opaque)
{
	for (int i = 0; i < EVENT_LOOP_MAX; i++) {
		struct epoll_event ev = { .events = events, .data.ptr = &l->h[i] };

		if (l->h[i].fd >= 0)
			continue;
		l->h[i] = (struct event_handler){ .fd = fd, .fn = fn, .opaque = opaque };
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			int e = errno;

			l->h[i].fd = -1;
			if (e == EPERM)
				return EVENT_LOOP_UNPOLLABLE;
			cv_err("epoll_ctl add fd %d: %s", fd, strerror(e));
			return CV_EFAIL;
		}
		return 0;
	}
	cv_err("too many event sources (at most %d)", EVENT_LOOP_MAX);
	return CV_EFAIL;
}

static struct event_handler *find(struct event_loop *l, int fd)
{
	for (int i = 0; i < EVENT_LOOP_MAX; i++)
		if (l->h[i].fd == fd)
			return &l->h[i];
	return NULL;
}

void *event_loop_opaque(struct event_loop *l, int fd)
{
	struct event_handler *h = find(l, fd);

	return h ? h->opaque : NULL;
}

int event_loop_modify(struct event_loop *l, int fd, uint32_t events)
{
	struct event_handler *h = find(l, fd);
	struct epoll_event ev = { .events = events, .data.ptr = h };

	if (!h || epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return CV_EFAIL;
	return 0;
}

void event_loop_del(struct event_loop *l, int fd)
{
	struct event_handler *h = find(l, fd);

	if (!h)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	h->fd = -1;
}

void event_poller_add(struct event_poller *p, struct event_loop *l, bool (*fn)(void *opaque), void *opaque)
{
	*p = (struct event_poller){ .loop = l, .fn = fn, .opaque = opaque, .next = l->pollers };
	l->pollers = p;
}

void event_poller_start(struct event_poller *p)
{
	p->active = true;
}

void event_poller_del(struct event_poller *p)
{
	for (struct event_poller **at = &p->loop->pollers; *at; at = &(*at)->next) {
		if (*at == p) {
			*at = p->next;
			break;
		}
	}
	p->active = false;
}

bool event_loop_polling(const struct event_loop *l)
{
	for (const struct event_poller *p = l->pollers; p; p = p->next)
		if (p->active)
			return true;
	return false;
}

static void run_pollers(struct event_loop *l)
{
	for (struct event_poller *p = l->pollers; p; p = p->next)
		if (p->active)
			p->active = p->fn(p->opaque);
}

int event_loop_run_once(struct event_loop *l, int timeout_ms)
{
	struct epoll_event ev[32];
	bool polling = event_loop_polling(l);
	int n = epoll_wait(l->epfd, ev, 32, polling ? 0 : timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : CV_EFAIL;
	for (int i = 0; i < n; i++) {
		struct event_handler *h = ev[i].data.ptr;

		/* A handler may remove another that is later in this batch. */
		if (h->fd >= 0)
			h->fn(h->opaque, ev[i].events);
	}
	if (polling)
		run_pollers(l);
	return 0;
}

static void on_timer(void *opaque, uint32_t events)
{
	struct event_timer *t = opaque;
	uint64_t expirations;

	(void)events;
	/* Reading clears the readiness; after a re-arm or cancel there is
	 * nothing to read (timerfd_settime drops pending expiries). */
	if (read(t->fd, &expirations, sizeof(expirations)) == sizeof(expirations))
		t->fn(t->opaque);
}

int event_timer_init(struct event_timer *t, struct event_loop *l, void (*fn)(void *opaque), void *opaque)
{
	*t = (struct event_timer){ .loop = l, .fn = fn, .opaque = opaque };
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0) {
		cv_err("timerfd_create: %s", strerror(errno));
		return CV_EFAIL;
	}
	if (event_loop_add(l, t->fd, EPOLLIN, on_timer, t)) {
		close(t->fd);
		t->fd = -1;
		return CV_EFAIL;
	}
	return 0;
}

void event_timer_arm(struct event_timer *t, uint64_t delay_ns)
{
	/* A zero it_value would disarm the timer: round up to 1 ns. Setting
	 * it also drops an expiry not yet dispatched. */
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(delay_ns / 1000000000ULL),
						 .tv_nsec = (long)(delay_ns % 1000000000ULL) } };

	if (!delay_ns)
		its.it_value.tv_nsec = 1;
	timerfd_settime(t->fd, 0, &its, NULL);
}

void event_timer_cancel(struct event_timer *t)
{
	struct itimerspec its = { 0 };

	/* Setting the timer also drops an expiry not yet dispatched. */
	timerfd_settime(t->fd, 0, &its, NULL);
}

void event_timer_destroy(struct event_timer *t)
{
	if (t->fd < 0)
		return;
	event_loop_del(t->loop, t->fd);
	close(t->fd);
	t->fd = -1;
}
