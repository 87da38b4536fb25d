/* `cellvm migrate NAME tcp:HOST:PORT --token T [--downtime-ms N] [--max-time S]` moves a
 * managed VM to a `cellvm run --incoming` elsewhere, showing its progress
 * on a terminal; `--cancel` (or Ctrl-C while it runs) gives up, and the VM
 * stays here. */
#ifndef CELLVM_MANAGER_MIGRATE_H
#define CELLVM_MANAGER_MIGRATE_H

/* argv: what follows `cellvm migrate`. Returns the exit status. */
int migrate_main(int argc, char **argv);

#endif
