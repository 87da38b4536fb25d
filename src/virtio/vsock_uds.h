/* The host side of virtio-vsock, as Firecracker's hybrid design has it:
 * guest streams become Unix stream sockets. A host process connects to
 * the listener at `path` and writes "CONNECT PORT\n" to reach guest port
 * PORT (answered "OK HOSTPORT\n" once the guest accepts, or closed); a
 * guest connecting to host port P reaches the listener at "path_P", or is
 * reset when there is none. Runs on the device's event-loop thread under
 * its lock; every connection's memory is bounded by its credit. */
#ifndef CELLVM_VIRTIO_VSOCK_UDS_H
#define CELLVM_VIRTIO_VSOCK_UDS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio/vsock_pkt.h"

#define VSOCK_MAX_CONNS 256
/* What each connection advertises as its receive buffer (buf_alloc). */
#define VSOCK_CONN_BUF (256 * 1024)

struct vsock_uds;

/* Listens on path (a stale socket nobody serves is replaced; a live one
 * is an error). 0, or CV_EINPUT/CV_EFAIL reported. */
int vsock_uds_open(const char *path, uint64_t guest_cid, struct vsock_uds **out);
/* Closes every connection and the listener and removes path. */
void vsock_uds_close(struct vsock_uds *m);
/* An epoll fd, readable when a host socket needs vsock_uds_poll. */
int vsock_uds_fd(const struct vsock_uds *m);
void vsock_uds_poll(struct vsock_uds *m);

/* A packet from the guest whose header passed vsock_hdr_check; payload
 * holds its h->len bytes. */
void vsock_uds_from_guest(struct vsock_uds *m, const struct vsock_hdr *h, const struct iovec *payload, unsigned n);
/* Answers an unusable guest packet with a reset (unless it is one). */
void vsock_uds_refuse(struct vsock_uds *m, const struct vsock_hdr *h);
/* Whether a packet for the guest may be waiting. */
bool vsock_uds_has_rx(const struct vsock_uds *m);
/* The next packet for the guest: its header, and up to cap payload bytes
 * read into iov. False when there was none after all. */
bool vsock_uds_to_guest(struct vsock_uds *m, struct vsock_hdr *h, const struct iovec *iov, unsigned n, uint32_t cap);
/* Drops every connection (device reset, restored snapshot): host sockets
 * close, nothing is told to the guest. */
void vsock_uds_reset(struct vsock_uds *m);
unsigned vsock_uds_count(const struct vsock_uds *m);

#endif
