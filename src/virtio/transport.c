#include "virtio/transport.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/err.h"

struct kick {
	struct virtio_dev *dev;
	unsigned q;
	int fd;
};

static void on_kick(void *opaque, uint32_t events)
{
	struct kick *k = opaque;
	uint64_t n;

	(void)events;
	if (read(k->fd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&k->dev->lock);
	virtio_kick(k->dev, k->q);
	pthread_mutex_unlock(&k->dev->lock);
}

int virtio_kick_fd(struct virtio_dev *dev, unsigned q)
{
	struct kick *k = calloc(1, sizeof(*k));

	if (!k)
		return -1;
	k->dev = dev;
	k->q = q;
	k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (k->fd < 0) {
		cv_err("eventfd: %s", strerror(errno));
		free(k);
		return -1;
	}
	if (event_loop_add(dev->loop, k->fd, EPOLLIN, on_kick, k)) {
		close(k->fd);
		free(k);
		return -1;
	}
	return k->fd;
}

void virtio_kick_fd_close(struct virtio_dev *dev, int fd)
{
	void *k = event_loop_opaque(dev->loop, fd);

	event_loop_del(dev->loop, fd);
	close(fd);
	free(k);
}
