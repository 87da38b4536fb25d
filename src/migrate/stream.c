#include "migrate/stream.h"

#include <endian.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "migrate/tls.h"
#include "util/err.h"
#include "util/module.h"

/* Splits "tcp:HOST:PORT" (HOST may be [v6]) and resolves it. */
static int resolve(const char *spec, bool passive, struct addrinfo **out)
{
	char host[256], port[16];
	const char *p = spec + 4, *colon;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0 };
	int rc;

	if (strncmp(spec, "tcp:", 4) || !(colon = strrchr(p, ':')) || (size_t)(colon - p) >= sizeof(host) ||
	    !colon[1] || strlen(colon + 1) >= sizeof(port)) {
		cv_err("invalid migration address '%s': use tcp:HOST:PORT", spec);
		return CV_EINPUT;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - p), p);
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	if ((rc = getaddrinfo(*host ? host : NULL, port, &hints, out))) {
		cv_err("invalid migration address '%s': %s", spec, gai_strerror(rc));
		return CV_EINPUT;
	}
	return 0;
}

void mig_tune(int fd)
{
	struct timeval tv = { .tv_sec = MIG_IO_TIMEOUT_S };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int mig_connect(const char *spec)
{
	struct addrinfo *ai, *a;
	int fd = -1, rc;

	if ((rc = resolve(spec, false, &ai)))
		return rc;
	for (a = ai; a; a = a->ai_next) {
		if ((fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol)) < 0)
			continue;
		mig_tune(fd);
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		rc = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		cv_err("cannot connect to '%s': %s", spec, strerror(rc ? -rc : errno));
	return fd < 0 ? CV_EFAIL : fd;
}

int mig_listen(const char *spec)
{
	struct addrinfo *ai, *a;
	int fd = -1, one = 1, rc, e = 0;

	if ((rc = resolve(spec, true, &ai)))
		return rc;
	for (a = ai; a; a = a->ai_next) {
		if ((fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol)) < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		cv_err("cannot listen on '%s': %s", spec, strerror(e ? e : errno));
		return CV_EINPUT;
	}
	return fd;
}

int mig_tls_start(struct mig_link *l, const char *token, bool server)
{
	const struct tls_module *m = module_get("tls");
	int rc;

	if (!m)
		return CV_EFAIL;
	if ((rc = m->start(l->fd, token, server, &l->tls)))
		return rc;
	l->tls_ops = m;
	return 0;
}

void mig_tls_end(struct mig_link *l)
{
	if (!l->tls)
		return;
	l->tls_ops->end(l->tls);
	l->tls = NULL;
}

/* All of iov, over TLS when the link has it. */
static int io_all(struct mig_link *l, struct iovec *iov, int n, bool out)
{
	for (;;) {
		ssize_t k;

		while (n > 0 && !iov->iov_len) {
			iov++;
			n--;
		}
		if (!n)
			return 0;
		if (l->tls) {
			if ((k = l->tls_ops->io(l->tls, iov->iov_base, iov->iov_len, out)) < 0)
				return (int)k;
		} else {
			k = out ? writev(l->fd, iov, n) : readv(l->fd, iov, n);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		if (k == 0)
			return -ECONNRESET;
		while (n > 0 && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
}

int mig_send(struct mig_link *l, uint32_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	uint32_t hdr[2] = { htole32(type), htole32((uint32_t)(alen + blen)) };
	struct iovec iov[3] = { { hdr, sizeof(hdr) }, { (void *)a, alen }, { (void *)b, blen } };

	return io_all(l, iov, 3, true);
}

long mig_recv(struct mig_link *l, uint32_t *type, void *buf, size_t max)
{
	uint32_t hdr[2];
	struct iovec iov = { hdr, sizeof(hdr) };
	int rc;

	if ((rc = io_all(l, &iov, 1, false)))
		return rc;
	*type = le32toh(hdr[0]);
	if (le32toh(hdr[1]) > max)
		return -EPROTO;
	iov = (struct iovec){ buf, le32toh(hdr[1]) };
	if ((rc = io_all(l, &iov, 1, false)))
		return rc;
	return (long)le32toh(hdr[1]);
}
