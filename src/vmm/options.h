/* Command-line options of `cellvm run`. */
#ifndef CELLVM_VMM_OPTIONS_H
#define CELLVM_VMM_OPTIONS_H

#include <stddef.h>

#include "vmm/config.h"

/* Parses argv (options only, no program or command name) into cfg.
 * Returns 0, 1 if --help was asked for, or CV_EINPUT with a one-line
 * message naming the bad value in err. */
int options_parse_run(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen);

extern const char options_run_usage[];

#endif
