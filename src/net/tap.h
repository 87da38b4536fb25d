/* Linux tap devices with a virtio-net header on every frame, so checksum
 * and segmentation offloads pass between guest and host untouched. */
#ifndef CELLVM_NET_TAP_H
#define CELLVM_NET_TAP_H

#include <stdbool.h>

#define TAP_VNET_HDR_LEN 12 /* struct virtio_net_hdr_v1 */

/* Opens tap `name`, creating it when it does not exist (needs
 * CAP_NET_ADMIN; a created tap is brought up and vanishes with cellvm).
 * Returns a non-blocking fd, or CV_EINPUT / CV_EFAIL after reporting. */
int tap_open(const char *name, bool *created);

/* Which offloads the guest accepts on frames it receives (TUN_F_*). */
int tap_set_offload(int fd, unsigned flags);

#endif
