#include "mmds/token.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

#include "util/err.h"

#define KEY_LEN 32
#define IV_LEN 12
#define TAG_LEN 16
#define RAW_LEN (IV_LEN + 8 + TAG_LEN)

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int mmds_tokens_init(struct mmds_tokens *t, const char *instance_id)
{
	uint8_t key[KEY_LEN];
	gnutls_datum_t k = { key, sizeof(key) };
	int rc;

	snprintf(t->aad, sizeof(t->aad), "microvmid=%s", instance_id ? instance_id : "");
	if ((rc = gnutls_rnd(GNUTLS_RND_KEY, key, sizeof(key))) ||
	    (rc = gnutls_aead_cipher_init(&t->cipher, GNUTLS_CIPHER_AES_256_GCM, &k))) {
		t->cipher = NULL;
		cv_err("mmds: cannot set up the token key: %s", gnutls_strerror(rc));
		return CV_EFAIL;
	}
	memset(key, 0, sizeof(key));
	return 0;
}

void mmds_tokens_destroy(struct mmds_tokens *t)
{
	if (t->cipher)
		gnutls_aead_cipher_deinit(t->cipher);
	t->cipher = NULL;
}

int mmds_token_new(struct mmds_tokens *t, uint32_t ttl_s, uint64_t now_ms, char out[MMDS_TOKEN_MAX + 1])
{
	uint8_t raw[RAW_LEN], plain[8];
	uint64_t expiry = now_ms + (uint64_t)ttl_s * 1000;
	size_t clen = RAW_LEN - IV_LEN;
	char *o = out;

	for (int i = 0; i < 8; i++)
		plain[i] = (uint8_t)(expiry >> (8 * i));
	if (!t->cipher || gnutls_rnd(GNUTLS_RND_NONCE, raw, IV_LEN) ||
	    gnutls_aead_cipher_encrypt(t->cipher, raw, IV_LEN, t->aad, strlen(t->aad), TAG_LEN, plain, sizeof(plain),
				       raw + IV_LEN, &clen) ||
	    clen != RAW_LEN - IV_LEN)
		return CV_EFAIL;
	for (size_t i = 0; i < RAW_LEN; i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];

		for (int s = 18; s >= 0; s -= 6)
			*o++ = b64[(v >> s) & 63];
	}
	*o = 0;
	return 0;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

bool mmds_token_valid(struct mmds_tokens *t, const char *tok, size_t len, uint64_t now_ms)
{
	uint8_t raw[RAW_LEN], plain[8];
	size_t plen = sizeof(plain);
	uint64_t expiry = 0;

	/* RAW_LEN is a multiple of 3: exactly 4/3 as many characters, no padding. */
	if (!t->cipher || len > MMDS_TOKEN_MAX || len != RAW_LEN / 3 * 4)
		return false;
	for (size_t i = 0, o = 0; i < len; i += 4, o += 3) {
		uint32_t v = 0;

		for (int j = 0; j < 4; j++) {
			int d = b64_value(tok[i + (size_t)j]);

			if (d < 0)
				return false;
			v = v << 6 | (uint32_t)d;
		}
		raw[o] = (uint8_t)(v >> 16);
		raw[o + 1] = (uint8_t)(v >> 8);
		raw[o + 2] = (uint8_t)v;
	}
	if (gnutls_aead_cipher_decrypt(t->cipher, raw, IV_LEN, t->aad, strlen(t->aad), TAG_LEN, raw + IV_LEN,
				       RAW_LEN - IV_LEN, plain, &plen) ||
	    plen != sizeof(plain))
		return false;
	for (int i = 7; i >= 0; i--)
		expiry = expiry << 8 | plain[i];
	return expiry > now_ms;
}
