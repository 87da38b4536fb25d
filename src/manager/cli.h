/* The VM manager's commands: create, start, stop, list, console, pause,
 * resume, delete, export, import. Each VM is a bundle directory (see
 * src/manager/bundle.h); running VMs are `cellvm run` processes in the
 * background, one per VM. */
#ifndef CELLVM_MANAGER_CLI_H
#define CELLVM_MANAGER_CLI_H

#include <stdbool.h>

bool manager_is_command(const char *name);
/* argv holds the command's arguments only. Returns the exit status: 0, 1
 * on failure, 2 on bad input or a VM in the wrong state. */
int manager_main(const char *cmd, int argc, char **argv);

#endif
