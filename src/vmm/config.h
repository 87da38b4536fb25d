/* What a user asked for: the VM's configuration, independent of how it was given. */
#ifndef CELLVM_VMM_CONFIG_H
#define CELLVM_VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define CV_MIN_MEMORY (16ULL << 20)
#define CV_MAX_MEMORY (1ULL << 40)
#define CV_MAX_CPUS 64

enum reboot_action { REBOOT_EXIT, REBOOT_RESTART };

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned cpus;
	uint64_t memory;
	enum reboot_action reboot;
};

void vm_config_defaults(struct vm_config *cfg);

#endif
