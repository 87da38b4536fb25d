/* Named claims held by a process: an abstract Unix socket bound to the
 * name. Binding is atomic, the name belongs to the network namespace (like
 * the bridges it guards), and the kernel releases it when the holder exits,
 * however it exits, so no stale lock or lease can outlive a VM. */
#ifndef CELLVM_NET_CLAIM_H
#define CELLVM_NET_CLAIM_H

/* The claim's fd (close it to release), or -EADDRINUSE if another process
 * holds the name, or another -errno. */
int claim_try(const char *name);
/* Waits (polling every 10 ms, up to timeout_ms) for the claim; -ETIMEDOUT
 * if it does not come. */
int claim_wait(const char *name, int timeout_ms);

#endif
