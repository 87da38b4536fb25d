/* MMDS V2 session tokens, made as Firecracker makes them: the expiry time
 * sealed with AES-256-GCM under a key drawn when the process starts, so a
 * token carries its own proof and nothing is kept per token. A token is
 * base64 of nonce (12 bytes), sealed expiry (8) and tag (16). Tokens of
 * another process (a snapshot's, a migration's source) do not open. The
 * sealing is util/seal.h's, in the "seal" module. */
#ifndef CELLVM_MMDS_TOKEN_H
#define CELLVM_MMDS_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MMDS_TOKEN_TTL_MIN 1
#define MMDS_TOKEN_TTL_MAX 21600
/* Longer strings are refused before any decoding (Firecracker's bound). */
#define MMDS_TOKEN_MAX 70

struct seal_module;

struct mmds_tokens {
	const struct seal_module *m;
	void *sealer;
	char aad[96]; /* "microvmid=ID": binds tokens to the instance */
};

/* 0 or CV_EFAIL (reported). */
int mmds_tokens_init(struct mmds_tokens *t, const char *instance_id);
void mmds_tokens_destroy(struct mmds_tokens *t);
/* A token valid until now_ms + ttl_s seconds (ttl_s already checked)
 * into out (NUL-terminated): 0, or CV_EFAIL. */
int mmds_token_new(struct mmds_tokens *t, uint32_t ttl_s, uint64_t now_ms, char out[MMDS_TOKEN_MAX + 1]);
bool mmds_token_valid(struct mmds_tokens *t, const char *tok, size_t len, uint64_t now_ms);

#endif
