/* cellvm receive: a managed VM migrating to this host (src/manager/receive.c). */
#ifndef CELLVM_MANAGER_RECEIVE_H
#define CELLVM_MANAGER_RECEIVE_H

/* argv after "receive"; the exit status. */
int receive_main(int argc, char **argv);

#endif
