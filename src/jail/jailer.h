/* Firecracker's jailer's command line: `cellvm jailer` (or this binary
 * started as `jailer`) takes the jailer's flags and lays out the chroot as
 * Firecracker's tools expect, CHROOT_BASE/<exec file's name>/ID/root, then
 * runs the VMM there as `cellvm firecracker --id ID [what follows --]`,
 * on top of `cellvm jail`. */
#ifndef CELLVM_JAIL_JAILER_H
#define CELLVM_JAIL_JAILER_H

#include <stddef.h>

#include "jail/jail.h"

struct jailer_args {
	struct jail_config jail;
	/* The Firecracker flags for the VMM: --id ID, then what followed --. */
	int fc_argc;
	char **fc_argv;
	char **storage; /* malloc'ed: freed by jailer_free */
};

/* 0; 1 for --help (printed); CV_EINPUT with a one-line reason naming the
 * bad value in err. */
int jailer_parse(int argc, char **argv, struct jailer_args *out, char *err, size_t errlen);
void jailer_free(struct jailer_args *a);

#endif
