#include "manager/client.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "util/err.h"

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits for fd to be ready for `ev` until the deadline. */
static int wait_fd(int fd, short ev, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	long long left = deadline - now_ms();

	if (left <= 0)
		return -1;
	return poll(&p, 1, (int)left) == 1 ? 0 : -1;
}

int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *base = strrchr(path, '/');
	char dir[4096];
	int fd, rc = 0, cwd = -1;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (strlen(path) < sizeof(sa.sun_path)) {
		strcpy(sa.sun_path, path);
	} else if (base && strlen(base + 1) < sizeof(sa.sun_path) && (size_t)(base - path) < sizeof(dir)) {
		memcpy(dir, path, (size_t)(base - path));
		dir[base - path] = 0;
		strcpy(sa.sun_path, base + 1);
		if ((cwd = open(".", O_PATH | O_CLOEXEC)) < 0 || chdir(dir) < 0)
			rc = -errno;
	} else {
		rc = -ENAMETOOLONG;
	}
	if (!rc && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		rc = -errno;
	if (cwd >= 0) {
		if (fchdir(cwd) < 0 && !rc)
			rc = -errno;
		close(cwd);
	}
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int api_call(const char *sock, const char *method, const char *path, const char *body, int timeout_ms,
	     int *status, char **reply)
{
	long long deadline = now_ms() + timeout_ms;
	size_t blen = body ? strlen(body) : 0, len = 0, sent = 0, cap = 4096;
	char head[512], *buf = NULL;
	struct http_response resp;
	int fd, hlen, rc = CV_EFAIL;

	*reply = NULL;
	if ((fd = unix_connect(sock)) < 0)
		goto out;
	hlen = snprintf(head, sizeof(head),
			"%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
			"Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			method, path, blen);
	if (hlen < 0 || (size_t)hlen >= sizeof(head))
		goto out;
	while (sent < (size_t)hlen + blen) {
		const char *p = sent < (size_t)hlen ? head + sent : body + (sent - (size_t)hlen);
		size_t n = sent < (size_t)hlen ? (size_t)hlen - sent : blen - (sent - (size_t)hlen);
		ssize_t w;

		if (wait_fd(fd, POLLOUT, deadline))
			goto out;
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0)
			goto out;
		sent += (size_t)w;
	}
	if (!(buf = malloc(cap)))
		goto out;
	for (;;) {
		ssize_t n;
		int pr = http_parse_response(buf, len, &resp);

		if (pr == HTTP_ERROR)
			goto out;
		if (pr == HTTP_COMPLETE && resp.status != 100)
			break;
		if (pr == HTTP_COMPLETE) { /* 100 Continue: the real answer follows */
			memmove(buf, buf + resp.total_len, len - resp.total_len);
			len -= resp.total_len;
			continue;
		}
		if (len + 1 >= cap) {
			char *bigger = cap < (1u << 22) ? realloc(buf, cap * 2) : NULL;

			if (!bigger)
				goto out;
			buf = bigger;
			cap *= 2;
		}
		if (wait_fd(fd, POLLIN, deadline))
			goto out;
		n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			goto out;
		len += (size_t)n;
	}
	*status = resp.status;
	memmove(buf, resp.body ? resp.body : buf, resp.body_len);
	buf[resp.body_len] = 0;
	*reply = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

const char *api_fault(const char *reply, char *buf, size_t cap)
{
	json_t *doc = json_loads(reply ? reply : "", 0, NULL);
	const char *msg = json_string_value(json_object_get(doc, "fault_message"));

	snprintf(buf, cap, "%s", msg ? msg : reply ? reply : "");
	json_decref(doc);
	return buf;
}
