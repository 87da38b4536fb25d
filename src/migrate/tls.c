#include "migrate/tls.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "util/err.h"

/* TLS 1.3 only, PSK with forward secrecy. */
#define PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK"
#define IDENTITY "cellvm-migration"

struct tls {
	gnutls_session_t s;
	gnutls_psk_client_credentials_t client;
	gnutls_psk_server_credentials_t server;
	unsigned char key[32];
};

/* The server's side of the key lookup: every identity gets the token's
 * key; a client that does not know it fails the handshake. */
static int server_key(gnutls_session_t s, const char *identity, gnutls_datum_t *key)
{
	struct tls *t = gnutls_session_get_ptr(s);

	(void)identity;
	if (!(key->data = gnutls_malloc(sizeof(t->key))))
		return -1;
	memcpy(key->data, t->key, sizeof(t->key));
	key->size = sizeof(t->key);
	return 0;
}

static void tls_free(struct tls *t)
{
	if (t->s)
		gnutls_deinit(t->s);
	if (t->client)
		gnutls_psk_free_client_credentials(t->client);
	if (t->server)
		gnutls_psk_free_server_credentials(t->server);
	memset(t->key, 0, sizeof(t->key));
	gnutls_free(t);
}

static int tls_start(int fd, const char *token, bool server, void **session)
{
	struct tls *t = gnutls_calloc(1, sizeof(*t));
	gnutls_datum_t key = { t ? t->key : NULL, 32 };
	int rc;

	if (!t) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	/* The key: SHA-256 of the token (any length of token, one key size). */
	rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), t->key);
	if (!rc)
		rc = gnutls_init(&t->s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_SIGNAL);
	if (!rc)
		rc = gnutls_priority_set_direct(t->s, PRIORITY, NULL);
	if (!rc && server && !(rc = gnutls_psk_allocate_server_credentials(&t->server))) {
		gnutls_psk_set_server_credentials_function(t->server, server_key);
		rc = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK, t->server);
	} else if (!rc && !server && !(rc = gnutls_psk_allocate_client_credentials(&t->client)) &&
		   !(rc = gnutls_psk_set_client_credentials(t->client, IDENTITY, &key, GNUTLS_PSK_KEY_RAW))) {
		rc = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK, t->client);
	}
	if (rc) {
		cv_err("migration: cannot set up TLS: %s", gnutls_strerror(rc));
		tls_free(t);
		return CV_EFAIL;
	}
	gnutls_session_set_ptr(t->s, t);
	gnutls_transport_set_int(t->s, fd);
	do
		rc = gnutls_handshake(t->s);
	while (rc < 0 && !gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN);
	if (rc < 0) {
		cv_err("migration: TLS handshake failed (%s): %s", gnutls_strerror(rc),
		       rc == GNUTLS_E_AGAIN ? "the peer did not answer" : "does the peer use TLS and the same token?");
		tls_free(t);
		return CV_EINPUT;
	}
	*session = t;
	return 0;
}

static ssize_t tls_io(void *session, void *buf, size_t len, bool out)
{
	struct tls *t = session;
	ssize_t n;

	do
		n = out ? gnutls_record_send(t->s, buf, len) : gnutls_record_recv(t->s, buf, len);
	while (n == GNUTLS_E_INTERRUPTED);
	if (n >= 0)
		return n;
	if (n == GNUTLS_E_AGAIN)
		return -ETIMEDOUT;
	/* A peer that hangs up without closing TLS is a cut link. */
	return n == GNUTLS_E_PREMATURE_TERMINATION || n == GNUTLS_E_PUSH_ERROR || n == GNUTLS_E_PULL_ERROR
		       ? -ECONNRESET
		       : -EPROTO;
}

static void tls_end(void *session)
{
	struct tls *t = session;

	gnutls_bye(t->s, GNUTLS_SHUT_WR);
	tls_free(t);
}

const struct tls_module cellvm_module_tls = { .start = tls_start, .io = tls_io, .end = tls_end };
