/* A VM's configuration in a snapshot: what the restoring process rebuilds
 * the same devices from (disks, NICs, transport, vCPUs, RAM size). */
#ifndef CELLVM_SNAPSHOT_CONFIG_H
#define CELLVM_SNAPSHOT_CONFIG_H

#include <limits.h>

#include "snapshot/stream.h"
#include "vmm/config.h"

/* 3 adds the vsock device and the balloon; 4 disks' cache types, the
 * limits' one-time bursts, the entropy device's limit and SMT; 5 the
 * MMDS; 2 to 4 still load. */
#define SNAP_CONFIG_VERSION 5
#define SNAP_CONFIG_MIN_VERSION 2

/* A decoded configuration and the strings it points to. */
struct snap_config {
	struct vm_config cfg;
	char kernel[PATH_MAX], initrd[PATH_MAX], cmdline[4096], name[256];
};

void snap_config_encode(struct snap_writer *w, const struct vm_config *cfg);
/* A section of `version` (MIN..SNAP_CONFIG_VERSION): 0, or CV_EINPUT
 * with r marked bad. */
int snap_config_decode(struct snap_reader *r, uint32_t version, struct snap_config *out);

/* Gives the NICs named in o their new taps (a restore's overrides): 0,
 * or CV_EINPUT reported (no such NIC, or one without a tap). */
int snap_config_override_nics(struct vm_config *c, const struct net_override *o, unsigned n);

#endif
