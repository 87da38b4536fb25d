/* virtio-vsock (virtio 1.2, 5.10): the guest's AF_VSOCK streams to host
 * Unix sockets (virtio/vsock_uds.h). Queues: rx, tx, event. */
#ifndef CELLVM_VIRTIO_VSOCK_H
#define CELLVM_VIRTIO_VSOCK_H

#include "virtio/device.h"

/* Listens on uds_path; guest_cid is what the guest reads as its CID. */
struct virtio_dev *virtio_vsock_new(const struct guest_mem *mem, struct event_loop *loop, uint64_t guest_cid,
				    const char *uds_path);

/* A snapshot's vsock state: the CID it had. Loading one means the
 * guest's connections are gone (this process has none): the guest is
 * sent a transport reset once the device runs. */
int virtio_vsock_save(void *opaque, struct snap_writer *w);
int virtio_vsock_load(void *opaque, struct snap_reader *r);

#endif
