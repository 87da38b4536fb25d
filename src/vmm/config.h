/* What a user asked for: the VM's configuration, independent of how it was given. */
#ifndef CELLVM_VMM_CONFIG_H
#define CELLVM_VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/cpu_template.h"
#include "vmm/ram.h"
#include "vmm/seccomp.h"

#include "util/ratelimit.h"

struct mmds_store;

#define CV_MIN_MEMORY (16ULL << 20)
#define CV_MAX_MEMORY (1ULL << 40)
#define CV_MAX_CPUS 64

#define CV_MAX_DISKS 8
#define CV_MAX_NICS 4
#define CV_DISK_ID_MAX 20
#define CV_NIC_ID_MAX 64

enum reboot_action { REBOOT_EXIT, REBOOT_RESTART };
enum virtio_transport_kind { TRANSPORT_PCI, TRANSPORT_MMIO };
enum console_kind { CONSOLE_SERIAL, CONSOLE_VIRTIO };

#define CV_MAX_HOSTFWD 8
#define CV_SWITCH_PATH_MAX 108 /* sun_path */

enum net_mode { NET_TAP, NET_NAT, NET_BRIDGE, NET_HOSTONLY, NET_SWITCH };

/* A port forward from the host into a NAT'ed guest. Addresses in network
 * byte order; guest_addr 0 is the guest's DHCP address. */
struct net_hostfwd {
	bool udp;
	uint32_t host_addr, guest_addr;
	uint16_t host_port, guest_port;
};

struct net_config {
	char id[CV_NIC_ID_MAX + 1]; /* the API's iface_id; netN from the command line */
	enum net_mode mode;
	char tap[16];   /* tap: the device; bridge, hostonly: its name (empty: cv<pid>-<nic>) */
	char name[16];  /* bridge: the bridge; hostonly: the network */
	char path[CV_SWITCH_PATH_MAX]; /* switch: its socket */
	uint8_t mac[6];
	bool mac_set;
	/* nat */
	bool restricted;
	struct net_hostfwd fwd[CV_MAX_HOSTFWD];
	unsigned nfwd;
	/* hostonly: the network's address and prefix (host order); unset:
	 * a /24 derived from the name */
	uint32_t net_addr;
	unsigned net_prefix;
	/* guest's receive and transmit directions */
	struct ratelimit_config rx, tx;
};

/* virtio-vsock: the guest's CID and the host's Unix socket (Firecracker's
 * hybrid vsock). */
#define CV_VSOCK_PATH_MAX 96 /* sun_path less room for "_PORT" */
struct vsock_config {
	bool set;
	uint32_t cid; /* 3 and up: 0-2 are reserved */
	char uds[CV_VSOCK_PATH_MAX];
};

/* The metadata service (MMDS, Firecracker's): which NICs answer for it,
 * at which address, and how (src/mmds/). The data it serves lives in the
 * process, not here (vm_config.mmds_store). */
#define MMDS_DEFAULT_ADDR 0xa9fea9feu /* 169.254.169.254 */
enum mmds_version { MMDS_V1, MMDS_V2 };
struct mmds_config {
	bool set;
	enum mmds_version version;
	bool imds_compat; /* IMDS text whatever the Accept header says */
	uint32_t addr;    /* IPv4, host order */
	uint32_t nics;    /* bit i: NIC i (configuration order) carries it */
};

enum disk_format { DISK_FORMAT_AUTO, DISK_FORMAT_RAW, DISK_FORMAT_QCOW2 };
/* Firecracker's cache_type: Writeback offers the guest flushes (and
 * honours them); Unsafe offers none, so the guest never waits for one. */
enum disk_cache { DISK_CACHE_WRITEBACK, DISK_CACHE_UNSAFE };

struct disk_config {
	const char *path;
	bool readonly;
	enum disk_format format;
	enum disk_cache cache;
	char id[CV_DISK_ID_MAX + 1];
	struct ratelimit_config limit;
	unsigned queues;  /* virtio-blk request queues; 0: one per vCPU (capped) */
	uint32_t poll_us; /* adaptive polling after a completion; 0: none */
};

#define CV_MAX_BALLOON_STATS_S 65535 /* Firecracker's u16 */

/* A virtio-balloon: its first target, and what it offers the guest. */
struct balloon_config {
	bool on;
	uint32_t amount_mib;
	bool deflate_on_oom;
	unsigned stats_s; /* statistics polling interval; 0: no statistics */
	bool reporting;   /* free page reporting */
};

/* The virtio-rng every VM has; `set` when configured (PUT /entropy). */
struct entropy_config {
	bool set;
	struct ratelimit_config limit;
};

struct fc_flags;

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned cpus;
	bool smt; /* two threads per core (Firecracker's smt; an even cpus) */
	/* Host placement (--cpus N,pin=LIST,quota=P%), not the VM's state: a
	 * snapshot does not keep it. */
	int pin[CV_MAX_CPUS];
	unsigned npin;
	unsigned cpu_quota; /* percent of one host CPU; 0: none */
	struct cpu_template cpu_template; /* what the guest's CPUID is made to look like */
	uint64_t memory;
	struct ram_config ram; /* how it is backed */
	enum reboot_action reboot;
	enum virtio_transport_kind transport;
	enum console_kind console;
	const char *name;
	struct disk_config disks[CV_MAX_DISKS];
	unsigned ndisks;
	struct net_config nics[CV_MAX_NICS];
	unsigned nnics;
	struct balloon_config balloon;
	bool track_dirty_pages; /* for diff snapshots */
	struct vsock_config vsock;
	struct entropy_config entropy;
	struct mmds_config mmds;
	/* A restore's new host devices for NICs (Firecracker's
	 * network_overrides: clones of one snapshot each need their own tap). */
	struct net_override {
		char id[CV_NIC_ID_MAX + 1];
		char tap[16];
	} overrides[CV_MAX_NICS];
	unsigned noverrides;
	/* How the process is driven rather than what the VM is (src/vmm/run.c):
	 * a Firecracker API socket, a Firecracker config file, the serial
	 * console on a socket instead of stdio, a locked pid file, a snapshot
	 * to continue. */
	const char *api_sock, *config_file, *console_sock, *pid_file, *restore_dir;
	/* a migration to take in (tcp:ADDR:PORT) and its shared token */
	const char *incoming, *migrate_token;
	bool migrate_tls;
	/* Where disks a migration sends along go (src/migrate/storage.h). */
	const char *receive_dir;
	enum seccomp_mode seccomp; /* the VMM's syscall filters */
	/* Started as Firecracker: what its flags ask of the API (vmm/fc_flags.h). */
	const struct fc_flags *fc;
	/* The MMDS data store NICs answer from (the process's; see mmds). */
	struct mmds_store *mmds_store;
	/* Directories backing files may also lie in (block/image.h's policy). */
	const char *allow_backing[8];
	unsigned nallow_backing;
	struct disk_override {
		char drive[CV_DISK_ID_MAX + 1]; /* vda, vdb, ... or a drive's id */
		const char *path;
	} disk_overrides[CV_MAX_DISKS];
	unsigned ndisk_overrides;
	/* Storage for option values that were split (disk paths). */
	char strings[CV_MAX_DISKS][4096];
};

void vm_config_defaults(struct vm_config *cfg);

#endif
