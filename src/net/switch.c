#include "net/switch.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "net/mactable.h"
#include "net/switch_proto.h"
#include "util/err.h"
#include "util/signals.h"
#include "vmm/event_loop.h"

#define MAX_PORTS 64
#define READ_BATCH 64

static const char switch_usage[] =
	"usage: cellvm switch PATH\n"
	"  Runs a virtual switch on the Unix socket PATH until SIGINT/SIGTERM.\n"
	"  VMs join it with --net switch=PATH. Needs no privileges.\n";

struct sw;

struct port {
	struct sw *sw;
	int fd; /* -1: free */
	bool joined; /* hello accepted */
	bool warned;
	uint8_t mac[6];
	/* A unicast frame its destination had no room for: the port is not
	 * read until it is delivered, so a busy VM slows its sender down
	 * instead of losing frames. */
	uint8_t *pend;
	size_t pend_len;
	int pend_dst;
	uint64_t waiters; /* ports with a frame pending for this one */
	uint32_t events;
};

struct sw {
	struct event_loop loop;
	int lfd, sig_fd;
	const char *path;
	ino_t ino; /* of the socket file we bound: unlinked at exit only if it is still ours */
	bool stop;
	struct port ports[MAX_PORTS];
	struct mactable table;
	uint8_t buf[SWITCH_FRAME_MAX];
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static int index_of(const struct port *p)
{
	return (int)(p - p->sw->ports);
}

static void update_events(struct port *p)
{
	uint32_t ev = (p->pend_len ? 0 : EPOLLIN) | (p->waiters ? EPOLLOUT : 0);

	if (p->fd >= 0 && ev != p->events && !event_loop_modify(&p->sw->loop, p->fd, ev))
		p->events = ev;
}

static void close_port(struct port *p)
{
	struct sw *s = p->sw;
	int i = index_of(p);

	event_loop_del(&s->loop, p->fd);
	close(p->fd);
	p->fd = -1;
	mactable_forget_port(&s->table, i);
	/* It no longer waits for anyone, and nobody waits for it. */
	if (p->pend_len)
		s->ports[p->pend_dst].waiters &= ~(1ULL << i);
	for (int j = 0; j < MAX_PORTS; j++) {
		if (!(p->waiters & (1ULL << j)))
			continue;
		s->ports[j].pend_len = 0;
		update_events(&s->ports[j]);
	}
	free(p->pend);
	*p = (struct port){ .sw = s, .fd = -1 };
}

static void hello(struct port *p, const uint8_t *m, size_t n)
{
	struct sw *s = p->sw;
	uint8_t reply[SWITCH_REPLY_LEN] = { 'C', 'V', 'S', 'W', SWITCH_OK };

	if (n != SWITCH_HELLO_LEN || memcmp(m, SWITCH_MAGIC, 4) || m[4] != SWITCH_VERSION || (m[5] & 1))
		reply[4] = SWITCH_BAD_HELLO;
	for (int j = 0; j < MAX_PORTS && reply[4] == SWITCH_OK; j++)
		if (s->ports[j].joined && !memcmp(s->ports[j].mac, m + 5, 6))
			reply[4] = SWITCH_DUP_MAC;
	if (reply[4] == SWITCH_DUP_MAC)
		fprintf(stderr, "cellvm switch: refused a VM whose MAC %02x:%02x:%02x:%02x:%02x:%02x is already on port %d\n",
			m[5], m[6], m[7], m[8], m[9], m[10], index_of(p));
	if (send(p->fd, reply, sizeof(reply), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(reply) || reply[4] != SWITCH_OK) {
		close_port(p);
		return;
	}
	memcpy(p->mac, m + 5, 6);
	p->joined = true;
}

/* Sends to port d; false if its queue is full (other errors drop). */
static bool put(struct port *d, const uint8_t *f, size_t n)
{
	return send(d->fd, f, n, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 || errno != EAGAIN;
}

static void forward(struct port *p, const uint8_t *f, size_t n)
{
	struct sw *s = p->sw;
	int i = index_of(p), dst;
	uint64_t now = now_ns();

	if (n < 14 || (f[6] & 1))
		return; /* runt, or a group address as source */
	for (int j = 0; j < MAX_PORTS; j++) {
		if (j != i && s->ports[j].joined && !memcmp(s->ports[j].mac, f + 6, 6)) {
			/* Another VM's registered MAC: keep its traffic its own. */
			if (!p->warned)
				fprintf(stderr, "cellvm switch: port %d sends as port %d's MAC; dropping those frames\n",
					i, j);
			p->warned = true;
			return;
		}
	}
	mactable_learn(&s->table, f + 6, i, now);
	dst = mactable_lookup(&s->table, f, now);
	if (dst == i)
		return;
	if (dst >= 0 && s->ports[dst].joined) {
		if (put(&s->ports[dst], f, n))
			return;
		memcpy(p->pend, f, n);
		p->pend_len = n;
		p->pend_dst = dst;
		s->ports[dst].waiters |= 1ULL << i;
		update_events(p);
		update_events(&s->ports[dst]);
		return;
	}
	/* Unknown or group destination: every other port, best effort. */
	for (int j = 0; j < MAX_PORTS; j++)
		if (j != i && s->ports[j].joined)
			put(&s->ports[j], f, n);
}

/* Port d has room again: deliver what waits for it. */
static void drain_waiters(struct port *d)
{
	struct sw *s = d->sw;

	for (int j = 0; j < MAX_PORTS && d->waiters; j++) {
		struct port *w = &s->ports[j];

		if (!(d->waiters & (1ULL << j)))
			continue;
		if (!put(d, w->pend, w->pend_len))
			break; /* full again */
		d->waiters &= ~(1ULL << j);
		w->pend_len = 0;
		update_events(w);
	}
	update_events(d);
}

static void on_port(void *opaque, uint32_t events)
{
	struct port *p = opaque;

	if (events & EPOLLOUT)
		drain_waiters(p);
	for (int k = 0; k < READ_BATCH && p->fd >= 0 && !p->pend_len; k++) {
		ssize_t n = recv(p->fd, p->sw->buf, sizeof(p->sw->buf), MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			close_port(p); /* the VM stopped */
			return;
		}
		if (p->joined)
			forward(p, p->sw->buf, (size_t)n);
		else
			hello(p, p->sw->buf, (size_t)n);
	}
	if (p->fd >= 0 && (events & (EPOLLHUP | EPOLLERR)) && p->pend_len)
		close_port(p); /* gone while it waited: nothing more to read */
}

static void on_listen(void *opaque, uint32_t events)
{
	struct sw *s = opaque;
	int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), buf = SWITCH_SOCKBUF;
	struct port *p = NULL;

	(void)events;
	if (fd < 0)
		return;
	for (int j = 0; j < MAX_PORTS && !p; j++)
		if (s->ports[j].fd < 0)
			p = &s->ports[j];
	if (!p || !(p->pend = malloc(SWITCH_FRAME_MAX))) {
		uint8_t reply[SWITCH_REPLY_LEN] = { 'C', 'V', 'S', 'W', SWITCH_FULL };

		if (send(fd, reply, sizeof(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			fprintf(stderr, "cellvm switch: refused a VM: all %d ports in use\n", MAX_PORTS);
		close(fd);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	p->fd = fd;
	p->events = EPOLLIN;
	if (event_loop_add(&s->loop, fd, EPOLLIN, on_port, p)) {
		free(p->pend);
		p->pend = NULL;
		close(fd);
		p->fd = -1;
	}
}

static void on_signal(void *opaque, uint32_t events)
{
	struct sw *s = opaque;
	struct signalfd_siginfo si;

	(void)events;
	if (read(s->sig_fd, &si, sizeof(si)) < 0)
		return;
	s->stop = true;
}

static bool someone_listens(const struct sockaddr_un *a)
{
	int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool live = probe >= 0 && connect(probe, (const struct sockaddr *)a, sizeof(*a)) == 0;

	if (probe >= 0)
		close(probe);
	return live;
}

/* Binds the listening socket; a socket file nobody listens on (left by a
 * switch that was killed) is replaced, a live one is an error. */
static int listen_on(struct sw *s)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int b;

	if (!*s->path || strlen(s->path) >= sizeof(a.sun_path)) {
		cv_err("invalid switch path '%s': 1 to %zu bytes", s->path, sizeof(a.sun_path) - 1);
		return CV_EINPUT;
	}
	strcpy(a.sun_path, s->path);
	if ((s->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		cv_err("switch: socket: %s", strerror(errno));
		return CV_EFAIL;
	}
	b = bind(s->lfd, (struct sockaddr *)&a, sizeof(a));
	if (b < 0 && errno == EADDRINUSE) {
		if (someone_listens(&a)) {
			cv_err("a switch is already listening on '%s'", s->path);
			return CV_EINPUT;
		}
		if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(s->path);
		b = bind(s->lfd, (struct sockaddr *)&a, sizeof(a));
	}
	if (b < 0 || listen(s->lfd, 16) < 0 || stat(s->path, &st) < 0) {
		cv_err("cannot listen on switch socket '%s': %s", s->path, strerror(errno));
		return CV_EINPUT;
	}
	s->ino = st.st_ino;
	return 0;
}

int switch_main(int argc, char **argv)
{
	struct sw *s;
	struct stat st;
	int rc = 0;

	if (argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
		fputs(switch_usage, stdout);
		return 0;
	}
	if (argc != 1 || argv[0][0] == '-') {
		fputs(switch_usage, stderr);
		return 2;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		cv_err("out of memory");
		return 1;
	}
	s->path = argv[0];
	s->lfd = s->sig_fd = -1;
	for (int j = 0; j < MAX_PORTS; j++)
		s->ports[j] = (struct port){ .sw = s, .fd = -1 };
	mactable_init(&s->table);
	if (event_loop_init(&s->loop)) {
		free(s);
		return 1;
	}
	if ((s->sig_fd = stop_signals_fd(0)) < 0) {
		cv_err("switch: cannot set up signal handling");
		rc = CV_EFAIL;
	}
	if (!rc)
		rc = listen_on(s);
	if (!rc && (event_loop_add(&s->loop, s->lfd, EPOLLIN, on_listen, s) ||
		    event_loop_add(&s->loop, s->sig_fd, EPOLLIN, on_signal, s)))
		rc = CV_EFAIL;
	if (!rc) {
		printf("cellvm switch: listening on %s\n", s->path);
		fflush(stdout);
	}
	while (!rc && !s->stop)
		if (event_loop_run_once(&s->loop, -1))
			rc = CV_EFAIL;
	for (int j = 0; j < MAX_PORTS; j++)
		if (s->ports[j].fd >= 0)
			close_port(&s->ports[j]);
	if (s->ino && stat(s->path, &st) == 0 && st.st_ino == s->ino)
		unlink(s->path);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	event_loop_destroy(&s->loop);
	free(s);
	return rc == CV_EINPUT ? 2 : rc ? 1 : 0;
}
