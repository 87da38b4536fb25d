/* `cellvm run`: one process, one event loop from start to exit. The loop
 * serves the stop signals, the console (a terminal or a console socket)
 * and the Firecracker API; the VM, once it exists (built from the command
 * line, a --config-file or the API's InstanceStart), adds its own event
 * loop to it, so device handlers run on this same main thread. The VM's
 * loop lives and dies with the VM, the process's outlives it (reboots with
 * --reboot restart, an API that waits for its first VM). */
#ifndef CELLVM_VMM_RUN_H
#define CELLVM_VMM_RUN_H

#include "vmm/config.h"

/* sig_fd: a signalfd for the stop signals. Returns the exit status: 0 when
 * the guest powered off or rebooted or a stop signal came, 1 when the VM
 * failed, 2 for bad input. */
int run_main(struct vm_config *cfg, int sig_fd);

#endif
