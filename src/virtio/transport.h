/* What both virtio transports share: kick eventfds served by the event loop. */
#ifndef CELLVM_VIRTIO_TRANSPORT_H
#define CELLVM_VIRTIO_TRANSPORT_H

#include "virtio/device.h"

/* Creates an eventfd for queue q, hooks it into the device's event loop so
 * a signal becomes virtio_kick(dev, q). Returns the fd or -1. */
int virtio_kick_fd(struct virtio_dev *dev, unsigned q);
void virtio_kick_fd_close(struct virtio_dev *dev, int fd);

#endif
