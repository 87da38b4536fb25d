/* What a user asked for: the VM's configuration, independent of how it was given. */
#ifndef CELLVM_VMM_CONFIG_H
#define CELLVM_VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define CV_MIN_MEMORY (16ULL << 20)
#define CV_MAX_MEMORY (1ULL << 40)
#define CV_MAX_CPUS 64

#define CV_MAX_DISKS 8
#define CV_MAX_NICS 4
#define CV_DISK_ID_MAX 20

enum reboot_action { REBOOT_EXIT, REBOOT_RESTART };
enum virtio_transport_kind { TRANSPORT_PCI, TRANSPORT_MMIO };
enum console_kind { CONSOLE_SERIAL, CONSOLE_VIRTIO };

struct net_config {
	char tap[16];
	uint8_t mac[6];
	bool mac_set;
};

enum disk_format { DISK_FORMAT_AUTO, DISK_FORMAT_RAW, DISK_FORMAT_QCOW2 };

struct disk_config {
	const char *path;
	bool readonly;
	enum disk_format format;
	char id[CV_DISK_ID_MAX + 1];
};

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned cpus;
	uint64_t memory;
	enum reboot_action reboot;
	enum virtio_transport_kind transport;
	enum console_kind console;
	const char *name;
	struct disk_config disks[CV_MAX_DISKS];
	unsigned ndisks;
	struct net_config nics[CV_MAX_NICS];
	unsigned nnics;
	/* Storage for option values that were split (disk paths). */
	char strings[CV_MAX_DISKS][4096];
};

void vm_config_defaults(struct vm_config *cfg);

#endif
