#include "virtio/console.h"

#include <errno.h>
#include <linux/virtio_console.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"
#include "util/iov.h"

#define CONSOLE_QUEUE_SIZE 128
#define CONSOLE_MAX_SEGS 16
#define RXQ 0
#define TXQ 1
#define INPUT_BUF 4096

struct virtio_console {
	struct virtio_dev dev;
	struct virtio_console_config config;
	int out_fd;
	uint8_t in[INPUT_BUF]; /* host input not yet in a guest buffer */
	size_t in_len;
};

/* Moves queued input into the guest's receive buffers. */
static void deliver_input(struct virtio_console *c)
{
	struct iovec out[CONSOLE_MAX_SEGS], in[CONSOLE_MAX_SEGS];
	struct virtq_req r;
	bool pushed = false;

	if (!virtio_ready(&c->dev) || !c->dev.vq[RXQ].ready)
		return;
	while (c->in_len && virtio_pop(&c->dev, RXQ, &r, out, in, CONSOLE_MAX_SEGS)) {
		uint64_t n = iov_from_buf(r.in, r.nin, 0, c->in, c->in_len);

		memmove(c->in, c->in + n, c->in_len - n);
		c->in_len -= n;
		virtq_push(&c->dev.vq[RXQ], r.head, (uint32_t)n);
		pushed = true;
	}
	if (pushed)
		virtio_signal_used(&c->dev, RXQ);
}

/* Writes all of buf; a closed or full terminal must not stall the guest. */
static void write_out(int fd, const uint8_t *p, size_t left)
{
	while (left) {
		ssize_t n = write(fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		left -= (size_t)n;
	}
}

static void transmit(struct virtio_console *c)
{
	struct iovec out[CONSOLE_MAX_SEGS], in[CONSOLE_MAX_SEGS];
	struct virtq_req r;

	while (virtio_pop(&c->dev, TXQ, &r, out, in, CONSOLE_MAX_SEGS)) {
		for (unsigned i = 0; i < r.nout; i++)
			write_out(c->out_fd, r.out[i].iov_base, r.out[i].iov_len);
		virtq_push(&c->dev.vq[TXQ], r.head, 0);
	}
	virtio_signal_used(&c->dev, TXQ);
}

static void console_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_console *c = d->priv;

	if (q == TXQ)
		transmit(c);
	else
		deliver_input(c);
}

static int console_activate(struct virtio_dev *d)
{
	deliver_input(d->priv);
	return 0;
}

size_t virtio_console_receive(struct virtio_dev *d, const uint8_t *buf, size_t len)
{
	struct virtio_console *c = d->priv;
	size_t n;

	pthread_mutex_lock(&d->lock);
	n = len < INPUT_BUF - c->in_len ? len : INPUT_BUF - c->in_len;
	memcpy(c->in + c->in_len, buf, n);
	c->in_len += n;
	deliver_input(c);
	pthread_mutex_unlock(&d->lock);
	return n;
}

size_t virtio_console_space(struct virtio_dev *d)
{
	struct virtio_console *c = d->priv;
	size_t n;

	pthread_mutex_lock(&d->lock);
	n = INPUT_BUF - c->in_len;
	pthread_mutex_unlock(&d->lock);
	return n;
}

static void console_destroy(struct virtio_dev *d)
{
	virtio_dev_destroy(d);
	free(d->priv);
}

static const struct virtio_ops console_ops = {
	.name = "console",
	.device_id = 3,
	.num_queues = 2,
	.queue_max = CONSOLE_QUEUE_SIZE,
	.notify = console_notify,
	.activate = console_activate,
	.destroy = console_destroy,
};

struct virtio_dev *virtio_console_new(const struct guest_mem *mem, struct event_loop *loop, int out_fd)
{
	struct virtio_console *c = calloc(1, sizeof(*c));

	if (!c) {
		cv_err("out of memory");
		return NULL;
	}
	c->out_fd = out_fd;
	c->config.max_nr_ports = 1;
	if (virtio_dev_init(&c->dev, &console_ops, c, 0, (uint8_t *)&c->config, sizeof(c->config), mem, loop)) {
		free(c);
		return NULL;
	}
	return &c->dev;
}
