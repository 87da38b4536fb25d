#include "virtio/vsock_uds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/err.h"
#include "util/iov.h"

#define CMD_MAX 32 /* "CONNECT 4294967295\n" and some slack */
#define ORPHAN_MAX 64
#define LISTENER_KEY UINT64_MAX
#define TIMER_KEY (UINT64_MAX - 1)
/* How long a host's CONNECT waits for the guest to accept (Firecracker's
 * figure); then the guest is sent a RST and the host's socket closes. */
#define CONNECT_TIMEOUT_NS 2000000000ULL
/* Host ports of host-initiated connections, as Firecracker numbers them. */
#define FIRST_HOST_PORT (1u << 30)

enum conn_state {
	ST_CMD,	    /* host socket accepted, reading "CONNECT PORT\n" */
	ST_WAIT,    /* REQUEST sent to the guest, awaiting its RESPONSE */
	ST_OPEN,    /* data flows */
	ST_DYING,   /* host socket closed; a RST is on its way to the guest */
};

struct conn {
	int fd;
	uint32_t gen; /* tells a reused slot from the one an event was for */
	enum conn_state st;
	uint32_t local_port, peer_port;
	struct vsock_credit peer; /* what the guest may still take */
	uint32_t rx_cnt, fwd_cnt; /* guest bytes received, and of those written to the host */
	uint32_t fwd_told;	  /* fwd_cnt as the guest last heard it */
	uint8_t *buf;		  /* guest bytes the host socket did not take yet (a ring) */
	uint32_t head, len;
	char cmd[CMD_MAX];
	unsigned cmd_len;
	uint64_t deadline;	  /* ST_WAIT: CLOCK_MONOTONIC ns by which the guest must answer */
	uint32_t events;	  /* registered with epoll */
	uint32_t guest_shut;	  /* VSOCK_SHUTDOWN_* the guest sent */
	bool readable, hup, host_eof, queued;
	bool want_request, want_response, want_shutdown, want_credit, want_credit_req, credit_req_sent;
};

struct vsock_uds {
	int epfd, listen_fd, timer_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t cid;
	uint32_t next_port;
	struct conn *conns[VSOCK_MAX_CONNS];
	unsigned nconns;
	uint32_t gen;
	/* Connections with a packet for the guest, in order. */
	uint16_t rxq[VSOCK_MAX_CONNS];
	unsigned rxq_head, rxq_len;
	/* Resets answering packets of no connection (dropped when full). */
	struct vsock_hdr orphan[ORPHAN_MAX];
	unsigned norphans;
};

static uint64_t key(const struct vsock_uds *m, unsigned slot)
{
	return (uint64_t)m->conns[slot]->gen << 32 | slot;
}

static void set_events(struct vsock_uds *m, unsigned slot)
{
	struct conn *c = m->conns[slot];
	uint32_t ev = 0;
	struct epoll_event e;

	if (c->st == ST_CMD || (c->st == ST_OPEN && !c->readable && !c->host_eof &&
				!(c->guest_shut & VSOCK_SHUTDOWN_RCV)))
		ev |= EPOLLIN;
	if (c->len)
		ev |= EPOLLOUT;
	if (ev == c->events || c->fd < 0 || c->hup)
		return;
	e = (struct epoll_event){ .events = ev, .data.u64 = key(m, slot) };
	if (!epoll_ctl(m->epfd, EPOLL_CTL_MOD, c->fd, &e))
		c->events = ev;
}

static void queue(struct vsock_uds *m, unsigned slot)
{
	struct conn *c = m->conns[slot];

	if (c->queued)
		return;
	c->queued = true;
	m->rxq[(m->rxq_head + m->rxq_len++) % VSOCK_MAX_CONNS] = (uint16_t)slot;
}

static void conn_free(struct vsock_uds *m, unsigned slot)
{
	struct conn *c = m->conns[slot];

	if (c->fd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	/* Out of rxq too, or a reused slot could be queued twice and the
	 * ring overflow. */
	if (c->queued) {
		unsigned kept = 0;

		for (unsigned i = 0; i < m->rxq_len; i++) {
			uint16_t s = m->rxq[(m->rxq_head + i) % VSOCK_MAX_CONNS];

			if (s != slot)
				m->rxq[(m->rxq_head + kept++) % VSOCK_MAX_CONNS] = s;
		}
		m->rxq_len = kept;
	}
	free(c->buf);
	free(c);
	m->conns[slot] = NULL;
	m->nconns--;
}

/* Ends a connection abruptly: the host socket closes now, the guest is
 * sent a RST (the slot is freed once it went). */
static void kill_conn(struct vsock_uds *m, unsigned slot)
{
	struct conn *c = m->conns[slot];

	if (c->fd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	if (c->st == ST_CMD) {
		conn_free(m, slot);
		return;
	}
	c->st = ST_DYING;
	queue(m, slot);
}

static int add_conn(struct vsock_uds *m, int fd, enum conn_state st)
{
	struct epoll_event e;
	unsigned slot = 0;
	struct conn *c;

	while (slot < VSOCK_MAX_CONNS && m->conns[slot])
		slot++;
	if (slot == VSOCK_MAX_CONNS || !(c = calloc(1, sizeof(*c))))
		return -1;
	c->fd = fd;
	c->gen = ++m->gen;
	c->st = st;
	c->events = st == ST_CMD ? EPOLLIN : 0;
	m->conns[slot] = c;
	e = (struct epoll_event){ .events = c->events, .data.u64 = key(m, slot) };
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &e)) {
		free(c);
		m->conns[slot] = NULL;
		return -1;
	}
	m->nconns++;
	return (int)slot;
}

static int find(const struct vsock_uds *m, uint32_t local_port, uint32_t peer_port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		const struct conn *c = m->conns[i];

		if (c && c->st != ST_CMD && c->local_port == local_port && c->peer_port == peer_port)
			return (int)i;
	}
	return -1;
}

static bool port_used(const struct vsock_uds *m, uint32_t port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (m->conns[i] && m->conns[i]->st != ST_CMD && m->conns[i]->local_port == port)
			return true;
	return false;
}

/* ---------------------------------------------------------------- host side */

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* Arms the timer for the earliest CONNECT still waiting for the guest. */
static void arm_timer(struct vsock_uds *m)
{
	struct itimerspec its = { 0 };
	uint64_t next = UINT64_MAX;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (m->conns[i] && m->conns[i]->st == ST_WAIT && m->conns[i]->deadline < next)
			next = m->conns[i]->deadline;
	/* A zero it_value would disarm it: deadlines are never 0. */
	if (next != UINT64_MAX)
		its.it_value = (struct timespec){ .tv_sec = (time_t)(next / 1000000000ULL),
						  .tv_nsec = (long)(next % 1000000000ULL) };
	timerfd_settime(m->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void timer_expired(struct vsock_uds *m)
{
	uint64_t expirations, now = now_ns();
	/* Clears the readiness; nothing to read after a re-arm is fine. */
	ssize_t n = read(m->timer_fd, &expirations, sizeof(expirations));

	(void)n;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (m->conns[i] && m->conns[i]->st == ST_WAIT && m->conns[i]->deadline <= now)
			kill_conn(m, i);
	arm_timer(m);
}


/* "CONNECT PORT\n", PORT decimal without sign or leading blanks. */
static bool parse_connect(const char *s, uint32_t *port)
{
	unsigned long long v = 0;
	const char *p = s + 8;

	if (strncmp(s, "CONNECT ", 8) || *p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((v = v * 10 + (unsigned)(*p - '0')) > UINT32_MAX)
			return false;
	*port = (uint32_t)v;
	return !strcmp(p, "\n");
}

/* Reads the command a byte at a time, so nothing after it is taken. */
static void read_cmd(struct vsock_uds *m, unsigned slot)
{
	struct conn *c = m->conns[slot];

	while (c->cmd_len < CMD_MAX - 1) {
		ssize_t n = read(c->fd, &c->cmd[c->cmd_len], 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		if (c->cmd[c->cmd_len++] != '\n')
			continue;
		c->cmd[c->cmd_len] = 0;
		if (!parse_connect(c->cmd, &c->peer_port))
			break;
		do {
			c->local_port = m->next_port++;
			if (m->next_port < FIRST_HOST_PORT)
				m->next_port = FIRST_HOST_PORT;
		} while (port_used(m, c->local_port));
		c->st = ST_WAIT;
		c->deadline = now_ns() + CONNECT_TIMEOUT_NS;
		c->want_request = true;
		arm_timer(m);
		set_events(m, slot);
		queue(m, slot);
		return;
	}
	conn_free(m, slot);
}

static void accept_host(struct vsock_uds *m)
{
	int fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), slot;

	if (fd < 0)
		return;
	/* A full table closes the newcomer: the host sees its socket end. */
	if ((slot = add_conn(m, fd, ST_CMD)) < 0)
		close(fd);
	else
		read_cmd(m, (unsigned)slot); /* the command may be there already */
}

/* writev that never raises SIGPIPE: a host socket closed under us is
 * EPIPE, whatever the process does with the signal. */
static ssize_t send_iov(int fd, const struct iovec *iov, unsigned n)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
	ssize_t w;

	do
		w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	return w;
}

/* Writes the ring to the host socket; false when the socket failed. */
static bool flush(struct conn *c)
{
	while (c->len) {
		uint32_t first = VSOCK_CONN_BUF - c->head < c->len ? VSOCK_CONN_BUF - c->head : c->len;
		struct iovec v[2] = { { c->buf + c->head, first }, { c->buf, c->len - first } };
		ssize_t n = send_iov(c->fd, v, c->len > first ? 2 : 1);

		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0)
			return false;
		c->head = (c->head + (uint32_t)n) % VSOCK_CONN_BUF;
		c->len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	free(c->buf);
	c->buf = NULL;
	c->head = 0;
	return true;
}

/* After guest bytes reached the host: tell the guest when a good part of
 * its window came free, and finish what its shutdown asked for. */
static void after_forward(struct vsock_uds *m, unsigned slot)
{
	struct conn *c = m->conns[slot];

	if (c->fwd_cnt - c->fwd_told >= VSOCK_CONN_BUF / 4) {
		c->want_credit = true;
		queue(m, slot);
	}
	if (!c->len && (c->guest_shut & VSOCK_SHUTDOWN_SEND))
		shutdown(c->fd, SHUT_WR);
	if (!c->len && c->guest_shut == (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)) {
		kill_conn(m, slot);
		return;
	}
	set_events(m, slot);
}

static void host_event(struct vsock_uds *m, unsigned slot, uint32_t ev)
{
	struct conn *c = m->conns[slot];

	if (c->st == ST_CMD) {
		read_cmd(m, slot);
		return;
	}
	if ((ev & EPOLLOUT) && c->len) {
		if (!flush(c)) {
			kill_conn(m, slot);
			return;
		}
		after_forward(m, slot);
	}
	if (ev & (EPOLLHUP | EPOLLERR)) {
		/* Reported whatever we ask for: the socket leaves epoll, and
		 * what the host left unread is read until its end. */
		if (c->st != ST_OPEN || c->len) {
			kill_conn(m, slot);
			return;
		}
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		c->hup = c->readable = true;
		queue(m, slot);
	} else if ((ev & EPOLLIN) && (c->events & EPOLLIN)) {
		c->readable = true;
		set_events(m, slot);
		queue(m, slot);
	}
}

void vsock_uds_poll(struct vsock_uds *m)
{
	struct epoll_event ev[64];
	int n;

	do {
		n = epoll_wait(m->epfd, ev, 64, 0);
		for (int i = 0; i < n; i++) {
			unsigned slot = (unsigned)(ev[i].data.u64 & 0xffffffffu);

			if (ev[i].data.u64 == LISTENER_KEY)
				accept_host(m);
			else if (ev[i].data.u64 == TIMER_KEY)
				timer_expired(m);
			else if (slot < VSOCK_MAX_CONNS && m->conns[slot] && key(m, slot) == ev[i].data.u64)
				host_event(m, slot, ev[i].events);
		}
	} while (n == 64);
}

/* --------------------------------------------------------------- guest side */

void vsock_uds_refuse(struct vsock_uds *m, const struct vsock_hdr *h)
{
	if (h->op == VSOCK_OP_RST || m->norphans == ORPHAN_MAX)
		return;
	m->orphan[m->norphans++] = (struct vsock_hdr){ .src_cid = VSOCK_HOST_CID,
						       .dst_cid = m->cid,
						       .src_port = h->dst_port,
						       .dst_port = h->src_port,
						       .type = VSOCK_TYPE_STREAM,
						       .op = VSOCK_OP_RST };
}

/* The guest connects to host port P: the listener at "path_P". */
static void guest_connect(struct vsock_uds *m, const struct vsock_hdr *h)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, slot;

	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", m->path, h->dst_port) >= (int)sizeof(a.sun_path) ||
	    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		vsock_uds_refuse(m, h);
		return;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) || (slot = add_conn(m, fd, ST_OPEN)) < 0) {
		close(fd);
		vsock_uds_refuse(m, h);
		return;
	}
	m->conns[slot]->local_port = h->dst_port;
	m->conns[slot]->peer_port = h->src_port;
	vsock_credit_update(&m->conns[slot]->peer, h->buf_alloc, h->fwd_cnt);
	m->conns[slot]->want_response = true;
	set_events(m, (unsigned)slot);
	queue(m, (unsigned)slot);
}

/* Guest data for the host: straight to the socket, the rest into the
 * ring, which the credit the guest was given always has room for. */
static bool guest_data(struct conn *c, const struct iovec *payload, unsigned n, uint32_t len)
{
	uint64_t done = 0;

	if (c->st != ST_OPEN || (c->guest_shut & VSOCK_SHUTDOWN_SEND) || len > VSOCK_CONN_BUF - (c->rx_cnt - c->fwd_cnt))
		return false;
	c->rx_cnt += len;
	if (!c->len) {
		ssize_t w = send_iov(c->fd, payload, n);

		if (w < 0 && errno != EAGAIN)
			return false;
		done = w > 0 ? (uint64_t)w : 0;
		c->fwd_cnt += (uint32_t)done;
	}
	if (done == len)
		return true;
	if (!c->buf && !(c->buf = malloc(VSOCK_CONN_BUF)))
		return false;
	while (done < len) {
		uint32_t tail = (c->head + c->len) % VSOCK_CONN_BUF;
		uint32_t room = tail >= c->head && c->len < VSOCK_CONN_BUF ? VSOCK_CONN_BUF - tail : c->head - tail;
		uint64_t k = iov_to_buf(payload, n, done, c->buf + tail, len - done < room ? len - done : room);

		if (!k)
			return false; /* a payload shorter than its header says */
		c->len += (uint32_t)k;
		done += k;
	}
	return true;
}

void vsock_uds_from_guest(struct vsock_uds *m, const struct vsock_hdr *h, const struct iovec *payload, unsigned n)
{
	int s = find(m, h->dst_port, h->src_port);
	unsigned slot;
	struct conn *c;

	if (s < 0) {
		if (h->op == VSOCK_OP_REQUEST)
			guest_connect(m, h);
		else
			vsock_uds_refuse(m, h);
		return;
	}
	slot = (unsigned)s;
	c = m->conns[slot];
	if (h->op == VSOCK_OP_RST) {
		conn_free(m, slot);
		return;
	}
	if (c->st == ST_DYING)
		return;
	vsock_credit_update(&c->peer, h->buf_alloc, h->fwd_cnt);
	switch (h->op) {
	case VSOCK_OP_RESPONSE: {
		char ok[32];
		int len = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
		struct iovec v = { ok, (size_t)len };

		/* A fresh socket takes a dozen bytes at once, or is broken. */
		if (c->st != ST_WAIT || send_iov(c->fd, &v, 1) != len) {
			kill_conn(m, slot);
			return;
		}
		c->st = ST_OPEN;
		break;
	}
	case VSOCK_OP_RW:
		if (!guest_data(c, payload, n, h->len)) {
			kill_conn(m, slot);
			return;
		}
		break;
	case VSOCK_OP_SHUTDOWN:
		c->guest_shut |= h->flags;
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->want_credit = true;
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	default: /* a second REQUEST */
		kill_conn(m, slot);
		return;
	}
	/* Every header carries the guest's credit: room may have come free. */
	if (vsock_credit_avail(&c->peer))
		c->credit_req_sent = false;
	if (c->want_credit || (c->readable && vsock_credit_avail(&c->peer)))
		queue(m, slot);
	after_forward(m, slot);
}

/* ------------------------------------------------------------ to the guest */

bool vsock_uds_has_rx(const struct vsock_uds *m)
{
	return m->norphans || m->rxq_len;
}

static void fill_hdr(const struct vsock_uds *m, struct conn *c, struct vsock_hdr *h, uint16_t op)
{
	*h = (struct vsock_hdr){ .src_cid = VSOCK_HOST_CID,
				 .dst_cid = m->cid,
				 .src_port = c->local_port,
				 .dst_port = c->peer_port,
				 .type = VSOCK_TYPE_STREAM,
				 .op = op,
				 .buf_alloc = VSOCK_CONN_BUF,
				 .fwd_cnt = c->fwd_cnt };
	c->fwd_told = c->fwd_cnt;
}

/* Host bytes for the guest, as much as its buffer and credit allow. */
static int read_host(struct conn *c, struct vsock_hdr *h, const struct iovec *iov, unsigned n, uint32_t cap)
{
	uint32_t avail = vsock_credit_avail(&c->peer);
	struct iovec part[64];
	unsigned np;
	ssize_t r;

	if (!avail) {
		if (c->credit_req_sent)
			return 0;
		c->credit_req_sent = true;
		h->op = VSOCK_OP_CREDIT_REQUEST;
		return 1;
	}
	np = iov_slice(iov, n, 0, avail < cap ? avail : cap, part, 64);
	do
		r = readv(c->fd, part, (int)np);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN) {
		c->readable = false;
		return 0;
	}
	if (r < 0)
		return -1;
	if (r == 0) {
		/* The host will send no more; a full close ends both ways. */
		c->host_eof = true;
		c->readable = false;
		h->op = VSOCK_OP_SHUTDOWN;
		h->flags = VSOCK_SHUTDOWN_SEND | (c->hup ? VSOCK_SHUTDOWN_RCV : 0);
		return 1;
	}
	h->op = VSOCK_OP_RW;
	h->len = (uint32_t)r;
	c->peer.tx_cnt += (uint32_t)r;
	return 1;
}

/* One packet of connection slot, or false when it had none after all. */
static bool conn_packet(struct vsock_uds *m, unsigned slot, struct vsock_hdr *h, const struct iovec *iov,
			unsigned n, uint32_t cap)
{
	struct conn *c = m->conns[slot];
	int got;

	fill_hdr(m, c, h, VSOCK_OP_RW);
	if (c->st == ST_DYING) {
		h->op = VSOCK_OP_RST;
		conn_free(m, slot);
		return true;
	}
	if (c->want_request || c->want_response) {
		h->op = c->want_request ? VSOCK_OP_REQUEST : VSOCK_OP_RESPONSE;
		c->want_request = c->want_response = false;
		return true;
	}
	if (c->st == ST_OPEN && c->readable && !(c->guest_shut & VSOCK_SHUTDOWN_RCV) && !c->host_eof) {
		got = read_host(c, h, iov, n, cap);
		if (got < 0) {
			kill_conn(m, slot);
			return false;
		}
		set_events(m, slot);
		if (got)
			return true;
	}
	if (c->want_credit) {
		h->op = VSOCK_OP_CREDIT_UPDATE;
		c->want_credit = false;
		return true;
	}
	return false;
}

static bool has_work(const struct conn *c)
{
	return c->st == ST_DYING || c->want_request || c->want_response || c->want_credit ||
	       (c->st == ST_OPEN && c->readable && !c->host_eof && !(c->guest_shut & VSOCK_SHUTDOWN_RCV) &&
		(vsock_credit_avail(&c->peer) || !c->credit_req_sent));
}

bool vsock_uds_to_guest(struct vsock_uds *m, struct vsock_hdr *h, const struct iovec *iov, unsigned n, uint32_t cap)
{
	if (m->norphans) {
		*h = m->orphan[--m->norphans];
		return true;
	}
	while (m->rxq_len) {
		unsigned slot = m->rxq[m->rxq_head];
		bool got;

		m->rxq_head = (m->rxq_head + 1) % VSOCK_MAX_CONNS;
		m->rxq_len--;
		m->conns[slot]->queued = false;
		got = conn_packet(m, slot, h, iov, n, cap);
		/* More of it waits behind the others (fairness between streams). */
		if (m->conns[slot] && has_work(m->conns[slot]))
			queue(m, slot);
		if (got)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------- lifecycle */

void vsock_uds_reset(struct vsock_uds *m)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (m->conns[i])
			conn_free(m, i);
	m->rxq_len = m->rxq_head = 0;
	m->norphans = 0;
}

unsigned vsock_uds_count(const struct vsock_uds *m)
{
	return m->nconns;
}

int vsock_uds_fd(const struct vsock_uds *m)
{
	return m->epfd;
}

/* A socket file nobody accepts on is a killed VMM's: take it over. */
static int clear_stale(const struct sockaddr_un *a)
{
	struct stat st;
	int fd, rc;

	if (lstat(a->sun_path, &st))
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		cv_err("vsock uds_path '%s' exists and is not a socket", a->sun_path);
		return CV_EINPUT;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return CV_EFAIL;
	rc = connect(fd, (const struct sockaddr *)a, sizeof(*a));
	close(fd);
	if (!rc) {
		cv_err("vsock uds_path '%s' is in use by another process", a->sun_path);
		return CV_EINPUT;
	}
	unlink(a->sun_path);
	return 0;
}

int vsock_uds_open(const char *path, uint64_t guest_cid, struct vsock_uds **out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = LISTENER_KEY };
	struct epoll_event te = { .events = EPOLLIN, .data.u64 = TIMER_KEY };
	struct vsock_uds *m;
	int rc;

	/* Room for "_4294967295" too: guest connections reach path_PORT. */
	if (strlen(path) + 11 >= sizeof(a.sun_path)) {
		cv_err("vsock uds_path '%s' is too long (at most %zu bytes)", path, sizeof(a.sun_path) - 12);
		return CV_EINPUT;
	}
	memcpy(a.sun_path, path, strlen(path));
	if ((rc = clear_stale(&a)))
		return rc;
	if (!(m = calloc(1, sizeof(*m)))) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	memcpy(m->path, path, strlen(path) + 1);
	m->cid = guest_cid;
	m->next_port = FIRST_HOST_PORT;
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	m->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->epfd < 0 || m->timer_fd < 0 || m->listen_fd < 0 || bind(m->listen_fd, (struct sockaddr *)&a, sizeof(a))) {
		cv_err("vsock: cannot listen on '%s': %s", path, strerror(errno));
		rc = errno == EACCES || errno == ENOENT || errno == EADDRINUSE ? CV_EINPUT : CV_EFAIL;
		if (m->listen_fd >= 0)
			close(m->listen_fd);
		if (m->timer_fd >= 0)
			close(m->timer_fd);
		if (m->epfd >= 0)
			close(m->epfd);
		free(m);
		return rc;
	}
	if (listen(m->listen_fd, 128) || epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->listen_fd, &e) ||
	    epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->timer_fd, &te)) {
		cv_err("vsock: cannot listen on '%s': %s", path, strerror(errno));
		m->path[0] = 0;
		unlink(path);
		vsock_uds_close(m);
		return CV_EFAIL;
	}
	*out = m;
	return 0;
}

void vsock_uds_close(struct vsock_uds *m)
{
	if (!m)
		return;
	vsock_uds_reset(m);
	close(m->listen_fd);
	close(m->timer_fd);
	close(m->epfd);
	if (m->path[0])
		unlink(m->path);
	free(m);
}
