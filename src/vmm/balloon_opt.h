/* `--balloon amount=MIB[,deflate_on_oom=on][,stats=SECONDS][,free_page_reporting=on]`
 * and the balloon sizes `cellvm balloon NAME SIZE` takes. */
#ifndef CELLVM_VMM_BALLOON_OPT_H
#define CELLVM_VMM_BALLOON_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"

/* A balloon size: MiB ("256") or a size with a unit ("256M", "1G"), a
 * whole number of MiB. False if it is not. */
bool balloon_parse_mib(const char *v, uint32_t *mib);
/* Parses the option's value into c (c->on set). 0 or CV_EINPUT with a
 * one-line reason naming the bad value. */
int balloon_parse(const char *v, struct balloon_config *c, char *err, size_t errlen);
/* A balloon no larger than the guest's RAM: 0 or CV_EINPUT, reported in err. */
int balloon_check(const struct balloon_config *c, uint64_t memory, char *err, size_t errlen);

#endif
