/* The value of one --net option: MODE[,option]... into a net_config. */
#ifndef CELLVM_NET_NETOPT_H
#define CELLVM_NET_NETOPT_H

#include <stddef.h>

#include "vmm/config.h"

/* Modes (the first item):
 *   tap=NAME            an existing or new tap device
 *   nat                 user-mode NAT (libslirp)
 *   bridge=BR           a new tap attached to the existing bridge BR
 *   hostonly=NAME       an isolated network of the host and the VMs naming it
 *   switch=PATH         a cellvm switch listening on the Unix socket PATH
 * Options (any mode unless noted):
 *   mac=MAC, rx_rate=SIZE, rx_burst=SIZE, tx_rate=SIZE, tx_burst=SIZE
 *   tap=NAME            bridge, hostonly: the tap's name
 *   hostfwd=PROTO:[HOSTIP]:HOSTPORT-[GUESTIP]:GUESTPORT   nat, repeatable
 *   restrict=on|off     nat
 *   net=A.B.C.D/N       hostonly, N in 16..30
 * Returns 0 or CV_EINPUT with a one-line message in err. */
int netopt_parse(const char *v, struct net_config *n, char *err, size_t errlen);

/* "tcp:127.0.0.1:8080-:80" -> f; false unless that form. */
bool netopt_parse_hostfwd(const char *s, struct net_hostfwd *f);

/* "10.1.2.0/24" -> address and prefix (host order); false unless the
 * form is exact, the prefix in [min, max] and no host bits are set. */
bool netopt_parse_cidr(const char *s, unsigned min, unsigned max, uint32_t *addr, unsigned *prefix);

/* Appends a NIC's new host device for a restore (--net-override, the
 * API's network_overrides) to list (*n entries, at most CV_MAX_NICS):
 * 0, or CV_EINPUT with the reason in err. */
int netopt_override(struct net_override *list, unsigned *n, const char *id, const char *tap, char *err,
		    size_t errlen);

#endif
