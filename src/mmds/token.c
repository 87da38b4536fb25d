#include "mmds/token.h"

#include <stdio.h>
#include <string.h>

#include "util/err.h"
#include "util/module.h"
#include "util/seal.h"

#define RAW_LEN (8 + SEAL_OVERHEAD)

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int mmds_tokens_init(struct mmds_tokens *t, const char *instance_id)
{
	snprintf(t->aad, sizeof(t->aad), "microvmid=%s", instance_id ? instance_id : "");
	t->sealer = NULL;
	/* Both report why they fail. */
	if (!(t->m = module_get("seal")) || !(t->sealer = t->m->create()))
		return CV_EFAIL;
	return 0;
}

void mmds_tokens_destroy(struct mmds_tokens *t)
{
	if (t->sealer)
		t->m->destroy(t->sealer);
	t->sealer = NULL;
}

int mmds_token_new(struct mmds_tokens *t, uint32_t ttl_s, uint64_t now_ms, char out[MMDS_TOKEN_MAX + 1])
{
	uint8_t raw[RAW_LEN], plain[8];
	uint64_t expiry = now_ms + (uint64_t)ttl_s * 1000;
	char *o = out;

	for (int i = 0; i < 8; i++)
		plain[i] = (uint8_t)(expiry >> (8 * i));
	if (!t->sealer || t->m->seal(t->sealer, t->aad, strlen(t->aad), plain, sizeof(plain), raw))
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
	uint64_t expiry = 0;

	/* RAW_LEN is a multiple of 3: exactly 4/3 as many characters, no padding. */
	if (!t->sealer || len > MMDS_TOKEN_MAX || len != RAW_LEN / 3 * 4)
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
	if (!t->m->open(t->sealer, t->aad, strlen(t->aad), raw, RAW_LEN, plain))
		return false;
	for (int i = 7; i >= 0; i--)
		expiry = expiry << 8 | plain[i];
	return expiry > now_ms;
}
