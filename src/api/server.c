#include "api/server.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/err.h"

/* Answers queued for a client that is not reading; past this, pipelined
 * requests wait in the input buffer. */
#define OUT_HIGH (256 * 1024)

struct api_conn {
	struct api_server *srv;
	int fd;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off;
	bool continue_sent, closing;
	uint32_t events; /* what epoll watches for */
	/* Room for the largest request the parser accepts: a full buffer
	 * without a complete request is always a parse error, never a stall. */
	char in[];
};

struct api_server {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct event_loop *loop;
	api_handler_fn fn;
	void *ctx;
	size_t max_body;
	struct api_conn *conns[API_MAX_CONNS];
};

int unix_listen(const char *path, const char *what)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
		cv_err("invalid %s '%s': a socket path must be 1 to %zu bytes", what, path, sizeof(sa.sun_path) - 1);
		return CV_EINPUT;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			cv_err("invalid %s '%s': exists and is not a socket", what, path);
			return CV_EINPUT;
		}
		/* A socket someone still answers on is in use; one that refuses
		 * is left over from a process that died, and is replaced. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			cv_err("invalid %s '%s': another process is listening on it", what, path);
			return CV_EINPUT;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		cv_err("cannot listen on %s '%s': %s", what, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return errno == ENOENT || errno == EACCES || errno == EADDRINUSE ? CV_EINPUT : CV_EFAIL;
	}
	return fd;
}

static void conn_close(struct api_conn *c)
{
	struct api_server *s = c->srv;

	for (int i = 0; i < API_MAX_CONNS; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	event_loop_del(s->loop, c->fd);
	close(c->fd);
	free(c->out);
	free(c);
}

static int queue(struct api_conn *c, const char *data, size_t len)
{
	char *p;

	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	p = realloc(c->out, c->out_len + len);
	if (!p)
		return CV_EFAIL;
	memcpy(p + c->out_len, data, len);
	c->out = p;
	c->out_len += len;
	return 0;
}

static int queue_response(struct api_conn *c, int status, const char *body, size_t len, bool keep_alive)
{
	size_t cap = 256 + len, n;
	char *buf = malloc(cap);
	int rc;

	if (!buf)
		return CV_EFAIL;
	n = http_format_response(buf, cap, status, body, len, keep_alive);
	rc = n ? queue(c, buf, n) : CV_EFAIL;
	free(buf);
	return rc;
}

static void queue_fault(struct api_conn *c, int status, const char *msg)
{
	json_t *o = json_pack("{s:s}", "fault_message", msg);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (!body || queue_response(c, status, body, strlen(body), false))
		c->out_off = c->out_len; /* nothing sensible to say: just close */
	free(body);
	c->closing = true;
}

/* Answers every complete request in the input buffer, in order. */
static void process(struct api_conn *c)
{
	while (c->in_len && !c->closing && c->out_len - c->out_off < OUT_HIGH) {
		struct http_request req;
		int rc = http_parse_request_max(c->in, c->in_len, c->srv->max_body, &req), status = 500;
		char *body = NULL;
		size_t len = 0;

		if (rc == HTTP_ERROR) {
			queue_fault(c, req.status, req.error);
			return;
		}
		if (rc == HTTP_INCOMPLETE) {
			if (req.header_len && req.expect_continue && !c->continue_sent) {
				static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

				c->continue_sent = queue(c, cont, sizeof(cont) - 1) == 0;
			}
			return;
		}
		c->srv->fn(c->srv->ctx, &req, &status, &body, &len);
		if (queue_response(c, status, body, len, req.keep_alive))
			c->closing = true;
		free(body);
		memmove(c->in, c->in + req.total_len, c->in_len - req.total_len);
		c->in_len -= req.total_len;
		c->continue_sent = false;
		if (!req.keep_alive)
			c->closing = true;
	}
}

/* Reads while there is room and answers are being taken; writes while
 * there are answers. */
static void watch(struct api_conn *c)
{
	uint32_t ev = 0;

	if (c->out_off < c->out_len)
		ev |= EPOLLOUT;
	if (!c->closing && c->in_len < c->in_cap && c->out_len - c->out_off < OUT_HIGH)
		ev |= EPOLLIN;
	if (ev != c->events && event_loop_modify(c->srv->loop, c->fd, ev) == 0)
		c->events = ev;
}

/* Writes what it can; returns false when the connection is finished. */
static bool flush(struct api_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return false;
		c->out_off += (size_t)n;
	}
	if (c->closing && c->out_off == c->out_len)
		return false;
	watch(c);
	return true;
}

static void on_conn(void *opaque, uint32_t events)
{
	struct api_conn *c = opaque;
	bool eof = false;

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		while (c->in_len < c->in_cap) {
			ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0) {
				eof = true;
				break;
			}
			c->in_len += (size_t)n;
		}
	}
	process(c);
	if (eof)
		c->closing = true;
	if (!flush(c))
		conn_close(c);
}

static void on_accept(void *opaque, uint32_t events)
{
	struct api_server *s = opaque;
	int fd, slot;

	(void)events;
	while ((fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct api_conn *c;

		for (slot = 0; slot < API_MAX_CONNS && s->conns[slot]; slot++)
			;
		c = slot < API_MAX_CONNS ? calloc(1, sizeof(*c) + HTTP_MAX_HEADER + s->max_body) : NULL;
		if (!c) {
			close(fd); /* busy: the client sees the connection close */
			continue;
		}
		c->in_cap = HTTP_MAX_HEADER + s->max_body;
		c->srv = s;
		c->fd = fd;
		c->events = EPOLLIN;
		if (event_loop_add(s->loop, fd, EPOLLIN, on_conn, c)) {
			close(fd);
			free(c);
			continue;
		}
		s->conns[slot] = c;
	}
}

int api_server_open(struct api_server **out, const char *path, struct event_loop *loop, api_handler_fn fn,
		    void *ctx)
{
	struct api_server *s = calloc(1, sizeof(*s));
	int fd;

	if (!s)
		return CV_EFAIL;
	if ((fd = unix_listen(path, "--api-sock")) < 0) {
		free(s);
		return fd;
	}
	s->fd = fd;
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->loop = loop;
	s->fn = fn;
	s->ctx = ctx;
	s->max_body = HTTP_MAX_BODY;
	if (event_loop_add(loop, fd, EPOLLIN, on_accept, s)) {
		close(fd);
		unlink(path);
		free(s);
		return CV_EFAIL;
	}
	*out = s;
	return 0;
}

void api_server_set_max_body(struct api_server *s, size_t max)
{
	s->max_body = max;
}

void api_server_close(struct api_server *s)
{
	if (!s)
		return;
	for (int i = 0; i < API_MAX_CONNS; i++)
		if (s->conns[i])
			conn_close(s->conns[i]);
	event_loop_del(s->loop, s->fd);
	close(s->fd);
	unlink(s->path);
	free(s);
}
