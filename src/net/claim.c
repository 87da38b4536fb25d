#include "net/claim.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int claim_try(const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	int fd;

	if (len + 1 > sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path + 1, name, len); /* sun_path[0] = 0: abstract */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

int claim_wait(const char *name, int timeout_ms)
{
	const struct timespec tick = { .tv_nsec = 10 * 1000 * 1000 };

	for (int waited = 0;; waited += 10) {
		int fd = claim_try(name);

		if (fd != -EADDRINUSE)
			return fd;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		/* Holders keep it for a few netlink requests: short sleeps. */
		nanosleep(&tick, NULL);
	}
}
