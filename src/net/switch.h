/* `cellvm switch PATH`: a virtual Ethernet switch for VMs on this host,
 * with no host networking and no privileges. It listens on the Unix
 * socket PATH; every VM started with --net switch=PATH is a port. It
 * learns source MACs, sends unicast frames to the learned port and floods
 * the rest (broadcast, multicast, unknown), refuses a VM whose MAC another
 * port already has, and runs until SIGINT/SIGTERM, removing PATH. */
#ifndef CELLVM_NET_SWITCH_H
#define CELLVM_NET_SWITCH_H

/* argv: the arguments after "switch". Returns the exit status. */
int switch_main(int argc, char **argv);

#endif
