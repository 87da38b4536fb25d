/* Runs a built VM until it ends: starts its vCPUs, carries console input
 * to the UART, stops on SIGINT/SIGTERM, and explains a silent guest on a
 * PVM host. */
#ifndef CELLVM_VMM_RUN_H
#define CELLVM_VMM_RUN_H

#include "vmm/console.h"
#include "vmm/vm.h"

/* sig_fd: a signalfd for the stop signals. Returns why the VM ended; all
 * vCPU threads have been joined by then. */
enum vm_exit vm_run(struct vm *vm, struct console *con, int sig_fd);

#endif
