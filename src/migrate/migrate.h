/* Live migration: a running VM moves to another cellvm over TCP.
 *
 * Source (pre-copy): dirty-page tracking starts, every non-zero page of
 * RAM is sent, then the pages written meanwhile, round after round, until
 * what is left would take no longer than the downtime target at the
 * bandwidth measured (or MIG_MAX_ROUNDS have passed). Then the main
 * thread pauses the VM, lets its device requests finish, closes its disks
 * (the destination opens the same files) and builds its state; the last
 * pages and the state go, and the VM ends only when the destination says
 * it runs. Any failure before that reopens the disks and resumes the VM
 * as it was. The pages are sent by a thread of their own; the devices go
 * on on the main thread meanwhile.
 *
 * Destination: `cellvm run --incoming tcp:ADDR:PORT --migrate-token T`
 * accepts one connection, checks the token and every record, receives RAM
 * into a mapping the VM then takes over, and builds the VM from the state
 * as a restore does. */
#ifndef CELLVM_MIGRATE_MIGRATE_H
#define CELLVM_MIGRATE_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migrate/storage.h"
#include "vmm/event_loop.h"

#define MIG_MAX_ROUNDS 30
#define MIG_DEFAULT_DOWNTIME_MS 50
#define MIG_MAX_TOKEN 256u

struct vm;
struct migration;

enum mig_state { MIG_NONE, MIG_ACTIVE, MIG_COMPLETED, MIG_FAILED, MIG_UNKNOWN };

/* How to migrate (PUT /migrate). */
struct mig_params {
	const char *dest;  /* "tcp:HOST:PORT" */
	const char *token; /* the destination's --migrate-token */
	unsigned downtime_ms;
	unsigned max_time_ms;   /* 0: no limit */
	uint64_t max_bandwidth; /* bytes per second, 0: no limit */
	bool auto_converge;     /* throttle a guest that writes faster than the link */
	/* Send files along (for what is not on shared storage): the kernel,
	 * the initrd and the disks in copy_disks (bit i: drive i). */
	bool copy_storage;
	uint32_t copy_disks;
	bool tls; /* TLS keyed by the token (migrate/tls.h) */
};

struct mig_status {
	enum mig_state state;
	unsigned round;
	uint64_t bytes, pages; /* sent so far */
	uint64_t disk_bytes;   /* of which disk data */
	uint64_t dirty;        /* pages left for the next round */
	double dirty_rate;     /* bytes per second the guest wrote in the last round */
	double bandwidth;      /* bytes per second sent in the last round */
	double expected_downtime_ms; /* to send what is left now */
	unsigned throttle_pct; /* auto-converge's share of vCPU time taken */
	uint64_t round_todo, round_done; /* bytes this round looks at, and has */
	double total_ms, downtime_ms;
	char error[256];
};

const char *mig_state_name(enum mig_state s);

/* Starts moving vm (running or paused) as p says; `done` is called on the
 * main thread once it is over: MIG_COMPLETED (the destination runs the
 * VM, which must now end here), MIG_FAILED (the VM goes on here as it
 * was) or MIG_UNKNOWN (the destination received it all but did not say
 * whether it runs it: the VM stays paused here, its disks closed unless
 * copied, so that it never runs twice). max_time_ms gives up if the VM is
 * not stopped for its last round by then. 0 or CV_E* reported. */
int migration_start(struct migration **out, struct vm *vm, struct event_loop *loop, const struct mig_params *p,
		    void (*done)(void *ctx, enum mig_state end), void *ctx);
void migration_status(struct migration *mg, struct mig_status *st);
/* Gives up (main thread): the VM stays here, as it was. */
void migration_cancel(struct migration *mg);
/* After done: joins and frees. */
void migration_free(struct migration *mg);

/* One end of a migration: a connected socket, and its TLS session if
 * it has one (migrate/tls.h). */
struct tls_module;

struct mig_link {
	int fd;
	void *tls; /* the TLS session, if any, and its module */
	const struct tls_module *tls_ops;
};

/* The destination's side: what arrived. */
struct incoming {
	struct mig_link link;
	void *ram;
	uint64_t ram_size;
	uint8_t *state;
	size_t state_len;
	struct storage_in disks; /* copied disks, in place once all arrived */
};

/* How a destination takes a migration: the token the source must know,
 * TLS or not, and where copied files go. */
struct mig_accept {
	const char *token;
	bool tls;
	struct storage_dest dest;
};

/* Listens on spec, takes one migration whose token matches and receives
 * it whole. 0, or CV_EINPUT (refused: bad token, bad stream) / CV_EFAIL,
 * reported; nothing is left allocated or on disk on failure. */
int migration_receive(const char *spec, const struct mig_accept *a, struct incoming *in);
/* The same on a connection already open (fd, which `in` takes over). */
int migration_receive_on(int fd, const struct mig_accept *a, struct incoming *in);
/* Tells the source whether the VM runs here (code 0) or why not, and
 * releases what is left of `in` (its RAM if the VM did not take it, the
 * disks' copies if it does not run). */
void migration_reply(struct incoming *in, int code, const char *msg);

#endif
