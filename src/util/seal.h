/* Sealing a short record so that only this process can open it again:
 * AES-256-GCM under a key drawn at random when the sealer is made, with a
 * fresh nonce per record and associated data binding it to its use. What
 * the MMDS's V2 session tokens are made of (mmds/token.h).
 *
 * GnuTLS does the cryptography, in the module "seal" (util/module.h), so a
 * process that never seals anything does not map it. */
#ifndef CELLVM_UTIL_SEAL_H
#define CELLVM_UTIL_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
/* What a sealed record adds to its plain text. */
#define SEAL_OVERHEAD (SEAL_NONCE_LEN + SEAL_TAG_LEN)

struct seal_module {
	/* A sealer with a new random key, or NULL (reported). */
	void *(*create)(void);
	void (*destroy)(void *sealer);
	/* plain (len bytes) into out (len + SEAL_OVERHEAD bytes: nonce, sealed
	 * text, tag): 0, or CV_EFAIL. */
	int (*seal)(void *sealer, const void *aad, size_t aad_len, const void *plain, size_t len, uint8_t *out);
	/* The reverse: true, with the len - SEAL_OVERHEAD bytes of plain text in
	 * plain, only for a record this sealer sealed with this aad. */
	bool (*open)(void *sealer, const void *aad, size_t aad_len, const uint8_t *in, size_t len, void *plain);
};

/* In the module; the rest of cellvm reaches it through module_get(). */
extern const struct seal_module cellvm_module_seal;

#endif
