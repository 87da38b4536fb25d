#include "util/seal.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "util/err.h"

#define KEY_LEN 32

static void *seal_create(void)
{
	uint8_t key[KEY_LEN];
	gnutls_datum_t k = { key, sizeof(key) };
	gnutls_aead_cipher_hd_t h = NULL;
	int rc;

	if ((rc = gnutls_rnd(GNUTLS_RND_KEY, key, sizeof(key))) ||
	    (rc = gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &k))) {
		cv_err("cannot set up a sealing key: %s", gnutls_strerror(rc));
		h = NULL;
	}
	/* The cipher keeps its own expanded copy. */
	memset(key, 0, sizeof(key));
	return h;
}

static void seal_destroy(void *sealer)
{
	if (sealer)
		gnutls_aead_cipher_deinit(sealer);
}

static int seal_seal(void *sealer, const void *aad, size_t aad_len, const void *plain, size_t len, uint8_t *out)
{
	size_t clen = len + SEAL_TAG_LEN;

	if (gnutls_rnd(GNUTLS_RND_NONCE, out, SEAL_NONCE_LEN) ||
	    gnutls_aead_cipher_encrypt(sealer, out, SEAL_NONCE_LEN, aad, aad_len, SEAL_TAG_LEN, plain, len,
				       out + SEAL_NONCE_LEN, &clen) ||
	    clen != len + SEAL_TAG_LEN)
		return CV_EFAIL;
	return 0;
}

static bool seal_open(void *sealer, const void *aad, size_t aad_len, const uint8_t *in, size_t len, void *plain)
{
	size_t plen;

	if (len < SEAL_OVERHEAD)
		return false;
	plen = len - SEAL_OVERHEAD;
	return !gnutls_aead_cipher_decrypt(sealer, in, SEAL_NONCE_LEN, aad, aad_len, SEAL_TAG_LEN, in + SEAL_NONCE_LEN,
					   len - SEAL_NONCE_LEN, plain, &plen) &&
	       plen == len - SEAL_OVERHEAD;
}

const struct seal_module cellvm_module_seal = {
	.create = seal_create, .destroy = seal_destroy, .seal = seal_seal, .open = seal_open
};
