#include "net/frameq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/err.h"

struct frameq_item {
	struct frameq_item *next;
	size_t len;
	uint8_t data[];
};

static void on_event(void *opaque, uint32_t events)
{
	struct frameq *q = opaque;

	(void)events;
	if (q->be->ready)
		q->be->ready(q->be->nic, true, false);
}

int frameq_init(struct frameq *q, struct event_loop *loop, size_t max_bytes, struct net_backend *be)
{
	*q = (struct frameq){ .max_bytes = max_bytes, .loop = loop, .be = be };
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		cv_err("eventfd: %s", strerror(errno));
		return CV_EFAIL;
	}
	/* Registered without events until the NIC wants frames. */
	if (event_loop_add(loop, q->efd, 0, on_event, q)) {
		close(q->efd);
		q->efd = -1;
		return CV_EFAIL;
	}
	return 0;
}

void frameq_destroy(struct frameq *q)
{
	while (q->head) {
		struct frameq_item *i = q->head;

		q->head = i->next;
		free(i);
	}
	q->tail = NULL;
	q->bytes = 0;
	if (q->efd >= 0) {
		event_loop_del(q->loop, q->efd);
		close(q->efd);
	}
	q->efd = -1;
}

bool frameq_push(struct frameq *q, const void *frame, size_t len)
{
	struct frameq_item *i;
	uint64_t one = 1;

	if (q->bytes + len > q->max_bytes || !(i = malloc(sizeof(*i) + NET_HDR_LEN + len)))
		return false;
	i->next = NULL;
	i->len = NET_HDR_LEN + len;
	memset(i->data, 0, NET_HDR_LEN);
	memcpy(i->data + NET_HDR_LEN, frame, len);
	/* The eventfd is readable exactly while frames wait. */
	if (!q->head && write(q->efd, &one, sizeof(one)) < 0) {
		free(i);
		return false;
	}
	if (q->tail)
		q->tail->next = i;
	else
		q->head = i;
	q->tail = i;
	q->bytes += len;
	return true;
}

ssize_t frameq_pop(struct frameq *q, uint8_t *buf, size_t cap)
{
	struct frameq_item *i;
	uint64_t v;

	while ((i = q->head)) {
		ssize_t n = 0;

		q->head = i->next;
		if (!q->head) {
			q->tail = NULL;
			if (read(q->efd, &v, sizeof(v)) < 0)
				v = 0; /* already clear */
		}
		q->bytes -= i->len - NET_HDR_LEN;
		if (i->len <= cap) {
			memcpy(buf, i->data, i->len);
			n = (ssize_t)i->len;
		}
		free(i);
		if (n)
			return n;
	}
	return 0;
}

bool frameq_empty(const struct frameq *q)
{
	return !q->head;
}

void frameq_want(struct frameq *q, bool rx)
{
	if (rx != q->watched && !event_loop_modify(q->loop, q->efd, rx ? EPOLLIN : 0))
		q->watched = rx;
}
