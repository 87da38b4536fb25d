/* TLS for the migration stream (`tls` in PUT /migrate, --migrate-tls on
 * the destination): TLS 1.3 with a key both sides derive from the shared
 * token (PSK with an ephemeral (EC)DH exchange, GnuTLS), so the stream is
 * private and only a side that knows the token completes the handshake;
 * no certificates to manage. */
#ifndef CELLVM_MIGRATE_TLS_H
#define CELLVM_MIGRATE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct mig_link;

/* Handshakes on l->fd as client or server with the token's key; l then
 * carries the session. 0, or CV_EINPUT (the peer does not know the token,
 * or speaks no TLS) / CV_EFAIL, reported. */
int mig_tls_start(struct mig_link *l, const char *token, bool server);
/* Sends or receives up to len bytes: how many, 0 at the end of the
 * stream, or -errno. */
ssize_t mig_tls_io(struct mig_link *l, void *buf, size_t len, bool out);
/* Ends the session (the fd stays). */
void mig_tls_end(struct mig_link *l);

#endif
