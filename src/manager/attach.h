/* `cellvm console NAME`: this terminal on a running VM's serial console
 * (its console socket). Raw mode; Ctrl-A x detaches and leaves the VM
 * running, Ctrl-A Ctrl-A sends Ctrl-A. */
#ifndef CELLVM_MANAGER_ATTACH_H
#define CELLVM_MANAGER_ATTACH_H

int console_attach(const char *name);

#endif
