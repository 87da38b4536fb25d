#include "net/switchport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/switch_proto.h"
#include "util/err.h"

#define HELLO_TIMEOUT_S 10

struct switchport {
	struct net_backend b;
	int fd;
	struct event_loop *loop;
	uint32_t events;
	bool gone; /* the switch closed the connection */
	const char *path;
};

static void switch_gone(struct switchport *s)
{
	if (s->gone)
		return;
	s->gone = true;
	cv_warn("switch '%s' went away; the NIC is cut off", s->path);
	event_loop_modify(s->loop, s->fd, 0);
	s->events = 0;
}

static int sp_send(struct net_backend *b, const struct iovec *iov, unsigned n)
{
	struct switchport *s = (struct switchport *)b;
	struct iovec v[64];
	struct msghdr m = { .msg_iov = v };
	size_t skip = NET_HDR_LEN;

	if (s->gone)
		return -EPIPE;
	/* The same iovecs, less the virtio-net header (zero: no offloads). */
	for (unsigned i = 0; i < n && m.msg_iovlen < 64; i++) {
		size_t l = iov[i].iov_len, k = skip < l ? skip : l;

		skip -= k;
		if (l > k)
			v[m.msg_iovlen++] = (struct iovec){ (uint8_t *)iov[i].iov_base + k, l - k };
	}
	if (sendmsg(s->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		return 0;
	if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
		switch_gone(s);
	return -errno;
}

static ssize_t sp_recv(struct net_backend *b, uint8_t *buf, size_t cap)
{
	struct switchport *s = (struct switchport *)b;
	ssize_t n;

	if (s->gone || cap <= NET_HDR_LEN)
		return 0;
	n = recv(s->fd, buf + NET_HDR_LEN, cap - NET_HDR_LEN, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		switch_gone(s);
		return 0;
	}
	if (n < 0)
		return 0;
	memset(buf, 0, NET_HDR_LEN);
	return n + NET_HDR_LEN;
}

static int sp_offload(struct net_backend *b, unsigned flags)
{
	(void)b;
	return flags ? CV_EFAIL : 0; /* never offered */
}

static void sp_want(struct net_backend *b, bool rx, bool tx)
{
	struct switchport *s = (struct switchport *)b;
	uint32_t ev = (rx ? EPOLLIN : 0) | (tx ? EPOLLOUT : 0);

	if (!s->gone && ev != s->events && !event_loop_modify(s->loop, s->fd, ev))
		s->events = ev;
}

static void sp_close(struct net_backend *b)
{
	struct switchport *s = (struct switchport *)b;

	event_loop_del(s->loop, s->fd);
	close(s->fd);
	free(s);
}

static void on_event(void *opaque, uint32_t events)
{
	struct switchport *s = opaque;

	if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) {
		switch_gone(s);
		return;
	}
	if (s->b.ready)
		s->b.ready(s->b.nic, events & (EPOLLIN | EPOLLHUP), events & EPOLLOUT);
}

static const struct net_backend_ops switchport_ops = {
	.send = sp_send,
	.recv = sp_recv,
	.set_offload = sp_offload,
	.want = sp_want,
	.close = sp_close,
};

/* Connects and says hello; the fd, or an error after reporting. */
static int join(const char *path, const uint8_t mac[6])
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = HELLO_TIMEOUT_S };
	uint8_t hello[SWITCH_HELLO_LEN] = { 'C', 'V', 'S', 'W', SWITCH_VERSION }, reply[SWITCH_REPLY_LEN + 1];
	int fd, buf = SWITCH_SOCKBUF;
	ssize_t n;

	if (strlen(path) >= sizeof(a.sun_path)) {
		cv_err("invalid switch path '%s': longer than %zu bytes", path, sizeof(a.sun_path) - 1);
		return CV_EINPUT;
	}
	strcpy(a.sun_path, path);
	memcpy(hello + 5, mac, 6);
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0) {
		cv_err("switch: socket: %s", strerror(errno));
		return CV_EFAIL;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;

		close(fd);
		cv_err("no switch listening on '%s': %s (start one with: cellvm switch %s)", path, strerror(e), path);
		return CV_EINPUT;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (send(fd, hello, sizeof(hello), MSG_NOSIGNAL) != sizeof(hello) ||
	    (n = recv(fd, reply, sizeof(reply), 0)) != SWITCH_REPLY_LEN || memcmp(reply, SWITCH_MAGIC, 4)) {
		close(fd);
		cv_err("switch '%s' did not answer (is it a cellvm switch?)", path);
		return CV_EINPUT;
	}
	if (reply[4] != SWITCH_OK) {
		close(fd);
		if (reply[4] == SWITCH_DUP_MAC)
			cv_err("switch '%s' refuses MAC %02x:%02x:%02x:%02x:%02x:%02x: another VM on it has that MAC "
			       "(give this one another --name or mac=)",
			       path, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		else if (reply[4] == SWITCH_FULL)
			cv_err("switch '%s' is full", path);
		else
			cv_err("switch '%s' refused this VM (status %u)", path, reply[4]);
		return CV_EINPUT;
	}
	return fd;
}

int switchport_open(const char *path, const uint8_t mac[6], struct event_loop *loop, struct net_backend **out)
{
	struct switchport *s;
	int fd = join(path, mac);

	if (fd < 0)
		return fd;
	if (!(s = calloc(1, sizeof(*s)))) {
		close(fd);
		cv_err("out of memory");
		return CV_EFAIL;
	}
	*s = (struct switchport){ .b = { .ops = &switchport_ops, .offloads = false }, .fd = fd, .loop = loop,
				  .events = EPOLLIN, .path = path };
	if (event_loop_add(loop, fd, EPOLLIN, on_event, s)) {
		close(fd);
		free(s);
		return CV_EFAIL;
	}
	*out = &s->b;
	return 0;
}
