/* The guest console on a Unix socket (`cellvm run --console-sock PATH`),
 * for VMs that run in the background. Guest output goes through a pipe, so
 * a vCPU never waits for a client, into a ring holding the last 64 KiB,
 * which is replayed to whoever attaches. One client at a time; its input
 * is read by the run loop like a terminal's (src/vmm/run.c). */
#ifndef CELLVM_VMM_CONSOLE_SOCK_H
#define CELLVM_VMM_CONSOLE_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/event_loop.h"

#define CONSOLE_RING (64 * 1024)

struct console_sock {
	struct event_loop *loop;
	int listen_fd;
	int pipe_rd, pipe_wr; /* guest output: vCPUs write, the loop reads */
	int out_fd;           /* the client, for output (-1: none) */
	bool out_polled;
	/* History: bytes [total - len, total) of all output. */
	uint8_t ring[CONSOLE_RING];
	uint64_t total, sent; /* sent: how far the client has been written */
	size_t len;
	char path[108];
	/* A client connected: in_fd is its socket for the caller to read. */
	void (*attach)(void *ctx, int in_fd);
	void *ctx;
};

int console_sock_open(struct console_sock *cs, const char *path, struct event_loop *loop,
		      void (*attach)(void *ctx, int in_fd), void *ctx);
/* Where the VM writes guest output. */
int console_sock_out_fd(const struct console_sock *cs);
/* The client left (input EOF): forget it, wait for the next one. */
void console_sock_detach(struct console_sock *cs);
/* Drains output still in the pipe to the client (best effort), closes all. */
void console_sock_close(struct console_sock *cs);

#endif
