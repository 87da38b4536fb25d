/* TLS for the migration stream (`tls` in PUT /migrate, --migrate-tls on
 * the destination): TLS 1.3 with a key both sides derive from the shared
 * token (PSK with an ephemeral (EC)DH exchange, GnuTLS), so the stream is
 * private and only a side that knows the token completes the handshake;
 * no certificates to manage.
 *
 * GnuTLS is the module "tls" (util/module.h); the link functions below
 * reach it through its table. */
#ifndef CELLVM_MIGRATE_TLS_H
#define CELLVM_MIGRATE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The module's table: a session on a connected socket. */
struct tls_module {
	/* Handshakes on fd as client or server with the token's key: 0 and
	 * *session, or CV_EINPUT (the peer does not know the token, or
	 * speaks no TLS) / CV_EFAIL, reported. */
	int (*start)(int fd, const char *token, bool server, void **session);
	/* Sends or receives up to len bytes: how many, 0 at the end of the
	 * stream, or -errno. */
	ssize_t (*io)(void *session, void *buf, size_t len, bool out);
	/* Closes the session (the fd stays). */
	void (*end)(void *session);
};

/* In the module; the rest of cellvm reaches it through module_get(). */
extern const struct tls_module cellvm_module_tls;

struct mig_link;

/* TLS on a migration link: l->tls then carries the session. */
int mig_tls_start(struct mig_link *l, const char *token, bool server);
/* Ends the link's session, if it has one. */
void mig_tls_end(struct mig_link *l);

#endif
