#include "net/nat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libslirp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "net/frameq.h"
#include "snapshot/stream.h"
#include "util/err.h"

/* Frames for the guest that wait while it has no buffers (or is
 * throttled); beyond this slirp's frames are dropped and its TCP resends. */
#define TO_GUEST_MAX (4u << 20)
#define FRAME_MAX 65536
#define EVENTS_PER_POLL 64

/* One fd slirp asked to watch. Entries stay at their index (slirp's poll
 * callbacks address them by index); a closed fd's entry is reused when the
 * number comes back. */
struct watch {
	int fd;
	uint32_t want;       /* epoll events asked for in the current round */
	uint32_t registered; /* what the inner epoll set has */
	uint32_t revents;
};

struct nat_timer {
	struct event_timer t;
	struct nat *nat;
	SlirpTimerId id;
	void *cb_opaque;
};

struct nat {
	struct net_backend b;
	Slirp *slirp;
	struct event_loop *loop;
	int ep;
	bool ep_in_loop;
	struct event_timer poll_timer;
	bool timer_ok;
	struct frameq to_guest;
	struct watch *w;
	size_t nw, wcap;
	uint8_t frame[FRAME_MAX];
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* ---- slirp's poll set on the inner epoll */

static struct watch *watch_of(struct nat *n, int fd)
{
	struct watch *w;

	for (size_t i = 0; i < n->nw; i++)
		if (n->w[i].fd == fd)
			return &n->w[i];
	if (n->nw == n->wcap) {
		size_t cap = n->wcap ? n->wcap * 2 : 16;

		if (!(w = realloc(n->w, cap * sizeof(*w))))
			return NULL;
		n->w = w;
		n->wcap = cap;
	}
	w = &n->w[n->nw++];
	*w = (struct watch){ .fd = fd };
	return w;
}

static uint32_t to_epoll(int ev)
{
	return (ev & SLIRP_POLL_IN ? EPOLLIN : 0) | (ev & SLIRP_POLL_OUT ? EPOLLOUT : 0) |
	       (ev & SLIRP_POLL_PRI ? EPOLLPRI : 0);
}

static int to_slirp(uint32_t ev)
{
	return (ev & EPOLLIN ? SLIRP_POLL_IN : 0) | (ev & EPOLLOUT ? SLIRP_POLL_OUT : 0) |
	       (ev & EPOLLPRI ? SLIRP_POLL_PRI : 0) | (ev & EPOLLERR ? SLIRP_POLL_ERR : 0) |
	       (ev & EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

static int add_poll(int fd, int events, void *opaque)
{
	struct nat *n = opaque;
	struct watch *w = watch_of(n, fd);

	if (!w)
		return -1; /* out of memory: slirp polls nothing for it this round */
	w->want |= to_epoll(events);
	return (int)(w - n->w);
}

static int get_revents(int idx, void *opaque)
{
	struct nat *n = opaque;

	return idx >= 0 && (size_t)idx < n->nw ? to_slirp(n->w[idx].revents) : 0;
}

static void apply(struct nat *n, struct watch *w)
{
	struct epoll_event ev = { .events = w->want, .data.u64 = (uint64_t)(w - n->w) };

	if (w->want == w->registered)
		return;
	if (!w->want) {
		epoll_ctl(n->ep, EPOLL_CTL_DEL, w->fd, NULL);
	} else if (epoll_ctl(n->ep, w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, w->fd, &ev) < 0) {
		/* The fd number was closed and reused behind our back. */
		if (epoll_ctl(n->ep, errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, w->fd, &ev) < 0) {
			w->registered = 0;
			return;
		}
	}
	w->registered = w->want;
}

/* Asks slirp what to watch and for how long, and sets both up. Called
 * after everything that may change slirp's sockets. */
static void sync_poll(struct nat *n)
{
	uint32_t timeout = UINT32_MAX;

	for (size_t i = 0; i < n->nw; i++)
		n->w[i].want = 0;
	slirp_pollfds_fill(n->slirp, &timeout, add_poll, n);
	for (size_t i = 0; i < n->nw; i++)
		apply(n, &n->w[i]);
	if (timeout == UINT32_MAX)
		event_timer_cancel(&n->poll_timer);
	else
		event_timer_arm(&n->poll_timer, (uint64_t)timeout * 1000000ULL);
}

static void run_slirp(struct nat *n)
{
	struct epoll_event ev[EVENTS_PER_POLL];
	int k = epoll_wait(n->ep, ev, EVENTS_PER_POLL, 0);

	for (size_t i = 0; i < n->nw; i++)
		n->w[i].revents = 0;
	for (int i = 0; i < k; i++)
		if (ev[i].data.u64 < n->nw)
			n->w[ev[i].data.u64].revents = ev[i].events;
	/* Also on a timeout with nothing ready: slirp runs its TCP timers. */
	slirp_pollfds_poll(n->slirp, k < 0, get_revents, n);
	sync_poll(n);
}

static void on_sockets(void *opaque, uint32_t events)
{
	(void)events;
	run_slirp(opaque);
}

static void on_poll_timer(void *opaque)
{
	run_slirp(opaque);
}

/* ---- slirp's callbacks */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct nat *n = opaque;

	/* A full queue drops the frame, as a busy link would. */
	frameq_push(&n->to_guest, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	cv_warn("nat: the guest sent something slirp refuses: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return (int64_t)now_ns();
}

static void on_slirp_timer(void *opaque)
{
	struct nat_timer *t = opaque;

	slirp_handle_timer(t->nat->slirp, t->id, t->cb_opaque);
	sync_poll(t->nat);
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct nat_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	*t = (struct nat_timer){ .nat = opaque, .id = id, .cb_opaque = cb_opaque };
	if (event_timer_init(&t->t, t->nat->loop, on_slirp_timer, t)) {
		free(t);
		return NULL;
	}
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct nat_timer *t = timer;

	(void)opaque;
	if (!t)
		return;
	event_timer_destroy(&t->t);
	free(t);
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct nat_timer *t = timer;
	int64_t delay = expire_ms * 1000000LL - (int64_t)now_ns();

	(void)opaque;
	if (t)
		event_timer_arm(&t->t, delay > 0 ? (uint64_t)delay : 0);
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque; /* watched from the next sync_poll on */
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	struct nat *n = opaque;

	/* slirp is about to close it: forget it while the number is ours. */
	for (size_t i = 0; i < n->nw; i++) {
		if (n->w[i].fd != fd)
			continue;
		if (n->w[i].registered)
			epoll_ctl(n->ep, EPOLL_CTL_DEL, fd, NULL);
		n->w[i].want = n->w[i].registered = n->w[i].revents = 0;
	}
}

static void cb_notify(void *opaque)
{
	(void)opaque; /* only guestfwd sockets use it; cellvm offers none */
}

static const SlirpCb callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

/* ---- the back-end */

static int nat_send(struct net_backend *b, const struct iovec *iov, unsigned cnt)
{
	struct nat *n = (struct nat *)b;
	size_t len = 0, skip = NET_HDR_LEN;

	for (unsigned i = 0; i < cnt; i++) {
		size_t l = iov[i].iov_len, s = skip < l ? skip : l;

		skip -= s;
		if (len + l - s > sizeof(n->frame))
			return -EMSGSIZE;
		memcpy(n->frame + len, (const uint8_t *)iov[i].iov_base + s, l - s);
		len += l - s;
	}
	slirp_input(n->slirp, n->frame, (int)len);
	sync_poll(n);
	return 0;
}

static ssize_t nat_recv(struct net_backend *b, uint8_t *buf, size_t cap)
{
	return frameq_pop(&((struct nat *)b)->to_guest, buf, cap);
}

static int nat_offload(struct net_backend *b, unsigned flags)
{
	(void)b;
	return flags ? CV_EFAIL : 0; /* never offered */
}

static void nat_want(struct net_backend *b, bool rx, bool tx)
{
	(void)tx; /* slirp takes every frame at once */
	frameq_want(&((struct nat *)b)->to_guest, rx);
}

static void nat_close(struct net_backend *b)
{
	struct nat *n = (struct nat *)b;

	if (n->slirp)
		slirp_cleanup(n->slirp); /* closes its sockets: forwards stop listening */
	if (n->timer_ok)
		event_timer_destroy(&n->poll_timer);
	if (n->ep_in_loop)
		event_loop_del(n->loop, n->ep);
	if (n->ep >= 0)
		close(n->ep);
	frameq_destroy(&n->to_guest);
	free(n->w);
	free(n);
}

/* libslirp keeps its DHCP leases and IP id counter, and the sockets of
 * guest forwards (which cellvm has none of). Its host sockets cannot be
 * kept: connections through the NAT end with the process that held them,
 * and the guest sees them reset; port forwards listen again. */
static ssize_t put_state(const void *buf, size_t len, void *opaque)
{
	snap_put_bytes(opaque, buf, len);
	return (ssize_t)len;
}

static ssize_t get_state(void *buf, size_t len, void *opaque)
{
	snap_get_bytes(opaque, buf, len);
	return snap_reader_ok(opaque) ? (ssize_t)len : -1;
}

static int nat_save(struct net_backend *b, struct snap_writer *w)
{
	snap_put_u32(w, (uint32_t)slirp_state_version());
	slirp_state_save(((struct nat *)b)->slirp, put_state, w);
	return 0;
}

static int nat_load(struct net_backend *b, struct snap_reader *r)
{
	uint32_t version = snap_get_u32(r);
	const uint8_t *sockets = snap_reader_ok(r) && snap_reader_left(r) ? r->p + r->off : NULL;

	if (snap_reader_ok(r) && (!version || version > (uint32_t)slirp_state_version()))
		snap_reader_fail(r, "NAT state of another libslirp version");
	/* What slirp loads comes first: a list of forward sockets, which
	 * cellvm never saves; refusing one here keeps slirp from parsing
	 * (and allocating for) a hostile socket record. */
	else if (snap_reader_ok(r) && (!sockets || *sockets))
		snap_reader_fail(r, "NAT state with sockets cellvm does not make");
	if (snap_reader_ok(r) && slirp_state_load(((struct nat *)b)->slirp, (int)version, get_state, r) < 0)
		snap_reader_fail(r, "NAT state libslirp does not accept");
	return snap_reader_ok(r) ? 0 : CV_EINPUT;
}

static const struct net_backend_ops nat_ops = {
	.send = nat_send,
	.recv = nat_recv,
	.set_offload = nat_offload,
	.want = nat_want,
	.close = nat_close,
	.save = nat_save,
	.load = nat_load,
};

static int add_forwards(struct nat *n, const struct net_config *nc)
{
	for (unsigned i = 0; i < nc->nfwd; i++) {
		const struct net_hostfwd *f = &nc->fwd[i];
		struct in_addr host = { .s_addr = f->host_addr }, guest = { .s_addr = f->guest_addr };
		char h[16];

		errno = 0;
		if (!slirp_add_hostfwd(n->slirp, f->udp, host, f->host_port, guest, f->guest_port))
			continue;
		inet_ntop(AF_INET, &host, h, sizeof(h));
		cv_err("nat: cannot forward %s %s:%u to the guest: %s", f->udp ? "udp" : "tcp", h, f->host_port,
		       errno ? strerror(errno) : "port in use or not allowed");
		return CV_EINPUT;
	}
	return 0;
}

static int nat_open(const struct net_config *nc, struct event_loop *loop, struct net_backend **out)
{
	SlirpConfig cfg = {
		.version = 4,
		.restricted = nc->restricted,
		.in_enabled = true,
		.vnetwork = { .s_addr = htonl(0x0a000200) },  /* 10.0.2.0 */
		.vnetmask = { .s_addr = htonl(0xffffff00) },
		.vhost = { .s_addr = htonl(0x0a000202) },     /* 10.0.2.2 */
		.vdhcp_start = { .s_addr = htonl(0x0a00020f) }, /* 10.0.2.15 */
		.vnameserver = { .s_addr = htonl(0x0a000203) }, /* 10.0.2.3 */
		.vhostname = "cellvm",
	};
	struct nat *n = calloc(1, sizeof(*n));
	int rc = CV_EFAIL;

	if (!n) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	n->b = (struct net_backend){ .ops = &nat_ops, .offloads = false };
	n->loop = loop;
	n->to_guest.efd = -1;
	if ((n->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		cv_err("nat: epoll_create1: %s", strerror(errno));
		goto fail;
	}
	if (event_loop_add(loop, n->ep, EPOLLIN, on_sockets, n))
		goto fail;
	n->ep_in_loop = true;
	if (event_timer_init(&n->poll_timer, loop, on_poll_timer, n))
		goto fail;
	n->timer_ok = true;
	if (frameq_init(&n->to_guest, loop, TO_GUEST_MAX, &n->b))
		goto fail;
	if (!(n->slirp = slirp_new(&cfg, &callbacks, n))) {
		cv_err("nat: libslirp could not start");
		goto fail;
	}
	if ((rc = add_forwards(n, nc)))
		goto fail;
	sync_poll(n);
	*out = &n->b;
	return 0;
fail:
	nat_close(&n->b);
	return rc;
}

const struct nat_module cellvm_module_nat = { .open = nat_open };
