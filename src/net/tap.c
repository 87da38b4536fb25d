#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "util/err.h"

static bool exists(const char *name)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	return access(path, F_OK) == 0;
}

static int bring_up(const char *name)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (s < 0)
		return -1;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		rc = -1;
	/* Already up (a jailed VMM, without CAP_NET_ADMIN, is given such a tap). */
	if (!rc && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			rc = -1;
	}
	close(s);
	return rc;
}

struct tap {
	struct net_backend b;
	int fd;
	struct event_loop *loop;
	uint32_t events;
};

static int tap_send(struct net_backend *b, const struct iovec *iov, unsigned n)
{
	struct tap *t = (struct tap *)b;

	if (writev(t->fd, iov, (int)n) >= 0)
		return 0;
	return -errno;
}

static ssize_t tap_recv(struct net_backend *b, uint8_t *buf, size_t cap)
{
	struct tap *t = (struct tap *)b;
	ssize_t n = read(t->fd, buf, cap);

	return n < 0 ? 0 : n;
}

static int tap_offload(struct net_backend *b, unsigned flags)
{
	return ioctl(((struct tap *)b)->fd, TUNSETOFFLOAD, flags) < 0 ? CV_EFAIL : 0;
}

static void tap_want(struct net_backend *b, bool rx, bool tx)
{
	struct tap *t = (struct tap *)b;
	uint32_t ev = (rx ? EPOLLIN : 0) | (tx ? EPOLLOUT : 0);

	if (ev != t->events && !event_loop_modify(t->loop, t->fd, ev))
		t->events = ev;
}

static void tap_close(struct net_backend *b)
{
	struct tap *t = (struct tap *)b;

	event_loop_del(t->loop, t->fd);
	close(t->fd);
	free(t);
}

static void on_tap(void *opaque, uint32_t events)
{
	struct tap *t = opaque;

	if (t->b.ready)
		t->b.ready(t->b.nic, events & EPOLLIN, events & EPOLLOUT);
}

static const struct net_backend_ops tap_ops = {
	.send = tap_send,
	.recv = tap_recv,
	.set_offload = tap_offload,
	.want = tap_want,
	.close = tap_close,
};

static int tap_fd(const char *name, bool must_create)
{
	struct ifreq ifr = { 0 };
	int hdr = NET_HDR_LEN, fd;
	bool created;

	if (!*name || strlen(name) >= IFNAMSIZ) {
		cv_err("invalid tap name '%s' (1 to %d characters)", name, IFNAMSIZ - 1);
		return CV_EINPUT;
	}
	created = must_create || !exists(name);
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		cv_err("cannot open /dev/net/tun for tap '%s': %s", name, strerror(errno));
		return CV_EINPUT;
	}
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	/* IFF_TUN_EXCL: a tap that must be new is never someone else's. */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (must_create ? IFF_TUN_EXCL : 0);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;

		cv_err("cannot %s tap '%s': %s%s", created ? "create" : "attach to", name,
		       e == EBUSY && must_create ? "a network interface of that name exists" : strerror(e),
		       e == EPERM ? " (needs CAP_NET_ADMIN, or a tap owned by this user)" : "");
		close(fd);
		return CV_EINPUT;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
		cv_err("tap '%s' does not take virtio-net headers: %s", name, strerror(errno));
		close(fd);
		return CV_EFAIL;
	}
	if (created && bring_up(name) < 0)
		cv_warn("could not bring tap '%s' up: %s", name, strerror(errno));
	return fd;
}

int tap_open(const char *name, bool must_create, struct event_loop *loop, struct net_backend **out)
{
	struct tap *t;
	int fd = tap_fd(name, must_create);

	if (fd < 0)
		return fd;
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		cv_err("out of memory");
		return CV_EFAIL;
	}
	*t = (struct tap){ .b = { .ops = &tap_ops, .offloads = true }, .fd = fd, .loop = loop, .events = EPOLLIN };
	if (event_loop_add(loop, fd, EPOLLIN, on_tap, t)) {
		close(fd);
		free(t);
		return CV_EFAIL;
	}
	*out = &t->b;
	return 0;
}
