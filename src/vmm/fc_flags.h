/* Firecracker's command line: `cellvm firecracker [flags]`, or the same
 * binary started as `firecracker`. The flags become a `cellvm run`
 * configuration plus what the API must apply before it serves anything
 * (the logger, metrics, limits), so tools that start Firecracker start
 * cellvm unchanged. */
#ifndef CELLVM_VMM_FC_FLAGS_H
#define CELLVM_VMM_FC_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/firecracker.h"
#include "vmm/config.h"

#define FC_DEFAULT_API_SOCK "/run/firecracker.socket"
#define FC_DEFAULT_ID "anonymous-instance"

struct fc_flags {
	char id[65];
	/* PUT /logger and PUT /metrics bodies from the flags ("" for none). */
	char logger[1024], metrics[512];
	uint64_t max_payload;	  /* --http-api-max-payload-size; 0: the default */
	uint64_t mmds_size_limit; /* --mmds-size-limit; 0: the default */
};

/* Parses argv (after the command name) into cfg and f; cfg points into
 * argv and f. 0; 1 when --help or --version was printed; CV_EINPUT with
 * a one-line reason naming the bad value in err. Flags cellvm cannot
 * honour are named, with why, on stderr. */
int fc_flags_parse(int argc, char **argv, struct vm_config *cfg, struct fc_flags *f, char *err, size_t errlen);

#endif
