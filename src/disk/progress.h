/* A one-line progress bar on stdout, drawn only when it is a terminal. */
#ifndef CELLVM_DISK_PROGRESS_H
#define CELLVM_DISK_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	bool on;
	uint64_t total;
	int shown; /* last percentage drawn */
	const char *label;
};

void progress_start(struct progress *p, const char *label, uint64_t total);
void progress_update(struct progress *p, uint64_t done);
void progress_end(struct progress *p);

#endif
