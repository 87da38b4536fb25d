/* `--mmds [nics=net0+net1][,version=V1|V2][,address=A.B.C.D][,imds_compat=on]`:
 * the MMDS of a VM described on the command line (the API's PUT
 * /mmds/config); its data comes through the API's PUT /mmds. */
#ifndef CELLVM_VMM_MMDS_OPT_H
#define CELLVM_VMM_MMDS_OPT_H

#include <stddef.h>

#include "vmm/config.h"

/* 0 or CV_EINPUT with a one-line reason naming the bad value. */
int mmds_parse(const char *v, struct mmds_config *m, char *err, size_t errlen);
/* Every NIC it names exists: 0 or CV_EINPUT, reported in err. */
int mmds_check(const struct mmds_config *m, unsigned nnics, char *err, size_t errlen);

#endif
