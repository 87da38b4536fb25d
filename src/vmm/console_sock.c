#include "vmm/console_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/server.h"
#include "util/err.h"

/* Enough that a burst of guest output outruns the loop only in extremes;
 * past it bytes are dropped rather than stalling a vCPU. */
#define PIPE_SIZE (1024 * 1024)

static void unwatch_out(struct console_sock *cs)
{
	if (cs->out_polled)
		event_loop_del(cs->loop, cs->out_fd);
	cs->out_polled = false;
}

static void flush(struct console_sock *cs);

static void on_writable(void *opaque, uint32_t events)
{
	(void)events;
	flush(opaque);
}

/* Sends the client what it has not seen; a client too slow for the ring
 * skips what fell out of it. */
static void flush(struct console_sock *cs)
{
	if (cs->out_fd < 0)
		return;
	if (cs->sent < cs->total - cs->len)
		cs->sent = cs->total - cs->len;
	while (cs->sent < cs->total) {
		size_t at = (size_t)(cs->sent % CONSOLE_RING), n = (size_t)(cs->total - cs->sent);
		ssize_t w;

		if (n > CONSOLE_RING - at)
			n = CONSOLE_RING - at;
		w = send(cs->out_fd, cs->ring + at, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (!cs->out_polled) {
				if (event_loop_add(cs->loop, cs->out_fd, EPOLLOUT, on_writable, cs) == 0)
					cs->out_polled = true;
			}
			return;
		}
		if (w <= 0)
			return; /* gone: the input side sees EOF and detaches */
		cs->sent += (uint64_t)w;
	}
	unwatch_out(cs);
}

static void on_output(void *opaque, uint32_t events)
{
	struct console_sock *cs = opaque;
	uint8_t buf[16384];
	ssize_t n;

	(void)events;
	while ((n = read(cs->pipe_rd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			cs->ring[(cs->total + (uint64_t)i) % CONSOLE_RING] = buf[i];
		cs->total += (uint64_t)n;
		cs->len = cs->len + (size_t)n > CONSOLE_RING ? CONSOLE_RING : cs->len + (size_t)n;
	}
	flush(cs);
}

static void on_accept(void *opaque, uint32_t events)
{
	struct console_sock *cs = opaque;
	int fd;

	(void)events;
	while ((fd = accept4(cs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		static const char busy[] = "cellvm: another console client is attached\r\n";

		if (cs->out_fd >= 0) {
			send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		/* Output and input use two descriptors of the one socket, so
		 * each side registers its own interest with the loop. */
		cs->out_fd = dup(fd);
		if (cs->out_fd < 0) {
			close(fd);
			continue;
		}
		fcntl(cs->out_fd, F_SETFD, FD_CLOEXEC);
		cs->sent = cs->total - cs->len; /* replay the history */
		cs->attach(cs->ctx, fd);
		flush(cs);
	}
}

int console_sock_open(struct console_sock *cs, const char *path, struct event_loop *loop,
		      void (*attach)(void *ctx, int in_fd), void *ctx)
{
	int p[2];

	memset(cs, 0, sizeof(*cs));
	cs->loop = loop;
	cs->attach = attach;
	cs->ctx = ctx;
	cs->out_fd = cs->pipe_rd = cs->pipe_wr = -1;
	snprintf(cs->path, sizeof(cs->path), "%s", path);
	if ((cs->listen_fd = unix_listen(path, "--console-sock")) < 0)
		return cs->listen_fd;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		cv_err("pipe: %s", strerror(errno));
		console_sock_close(cs);
		return CV_EFAIL;
	}
	cs->pipe_rd = p[0];
	cs->pipe_wr = p[1];
	fcntl(cs->pipe_wr, F_SETPIPE_SZ, PIPE_SIZE);
	if (event_loop_add(loop, cs->listen_fd, EPOLLIN, on_accept, cs) ||
	    event_loop_add(loop, cs->pipe_rd, EPOLLIN, on_output, cs)) {
		console_sock_close(cs);
		return CV_EFAIL;
	}
	return 0;
}

int console_sock_out_fd(const struct console_sock *cs)
{
	return cs->pipe_wr;
}

void console_sock_detach(struct console_sock *cs)
{
	unwatch_out(cs);
	if (cs->out_fd >= 0)
		close(cs->out_fd);
	cs->out_fd = -1;
}

void console_sock_close(struct console_sock *cs)
{
	if (cs->pipe_rd >= 0) {
		on_output(cs, EPOLLIN);
		event_loop_del(cs->loop, cs->pipe_rd);
		close(cs->pipe_rd);
	}
	if (cs->pipe_wr >= 0)
		close(cs->pipe_wr);
	console_sock_detach(cs);
	if (cs->listen_fd >= 0) {
		event_loop_del(cs->loop, cs->listen_fd);
		close(cs->listen_fd);
		unlink(cs->path);
	}
	cs->pipe_rd = cs->pipe_wr = cs->listen_fd = -1;
}
