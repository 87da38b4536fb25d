/* Which of cellvm's modules (util/module.h) a VM needs, loaded while it
 * still can: before its syscall filter goes on, and before a jail takes
 * away the directory they are read from. */
#ifndef CELLVM_VMM_MODULES_H
#define CELLVM_VMM_MODULES_H

#include <stdbool.h>

#include "vmm/config.h"

/* Loads what the VM of cfg can come to need: TLS when it serves the API
 * (a migration over TLS can be asked for at any time) or takes one in
 * over TLS, NAT and NBD for the NICs and disks it names. `jailed`: its
 * devices may also come later, from a config file, the API, a snapshot or
 * a migration, where the modules can no longer be read; then all of them.
 * 0, or CV_EFAIL after one line. */
int vm_modules_load(const struct vm_config *cfg, bool jailed);

#endif
