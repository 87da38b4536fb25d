/* virtio-console with one port: the guest's hvc0. Host input is queued for
 * the guest's receive buffers; what the guest transmits goes to out_fd. */
#ifndef CELLVM_VIRTIO_CONSOLE_H
#define CELLVM_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/device.h"

struct virtio_dev *virtio_console_new(const struct guest_mem *mem, struct event_loop *loop, int out_fd);

/* Queues host input; returns how many bytes were taken. Thread-safe. */
size_t virtio_console_receive(struct virtio_dev *d, const uint8_t *buf, size_t len);
/* Room left for host input. Thread-safe. */
size_t virtio_console_space(struct virtio_dev *d);

#endif
