/* The MMDS data store: one JSON document shared by the API (PUT, PATCH,
 * GET /mmds) and every NIC that answers the guest, behind one lock, with
 * Firecracker's rules: a size limit on its compact serialization, RFC
 * 7396 merge patches, lookups by JSON pointer, IMDS text output. It also
 * holds the V2 token key (one per process, as the data). */
#ifndef CELLVM_MMDS_STORE_H
#define CELLVM_MMDS_STORE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "mmds/token.h"

/* Firecracker's default for --mmds-size-limit (that of
 * --http-api-max-payload-size). */
#define MMDS_DEFAULT_SIZE_LIMIT 51200

enum mmds_result {
	MMDS_OK,
	MMDS_TOO_BIG,         /* over the size limit: nothing changed */
	MMDS_NOT_INITIALIZED, /* PATCH before any PUT */
	MMDS_NOT_FOUND,
	MMDS_UNSUPPORTED, /* IMDS text of something other than an object or string */
	MMDS_NOMEM,
};

struct mmds_store {
	pthread_mutex_t lock;
	json_t *data; /* NULL until the first PUT (Firecracker's null) */
	struct mmds_tokens tokens;
};

/* 0 or CV_EFAIL (reported). */
int mmds_store_init(struct mmds_store *s, const char *instance_id);
void mmds_store_destroy(struct mmds_store *s);

/* Replace the document / merge a patch into it, if the result's compact
 * JSON is at most limit bytes. v stays the caller's. */
enum mmds_result mmds_store_put(struct mmds_store *s, json_t *v, size_t limit);
enum mmds_result mmds_store_patch(struct mmds_store *s, json_t *patch, size_t limit);
/* GET /mmds: a copy of the document ({} before the first PUT), or NULL. */
json_t *mmds_store_get(struct mmds_store *s);

/* What the guest gets for path (a JSON pointer; a trailing '/' is
 * ignored): compact JSON, or IMDS text (an object's keys one a line, with
 * '/' after those holding objects; a string as it is). *out is malloc'ed. */
enum mmds_result mmds_store_lookup(struct mmds_store *s, const char *path, bool json, char **out, size_t *len);

/* V2 tokens, under the store's lock (the handle is not thread-safe). */
int mmds_store_token_new(struct mmds_store *s, uint32_t ttl_s, uint64_t now_ms, char out[MMDS_TOKEN_MAX + 1]);
bool mmds_store_token_valid(struct mmds_store *s, const char *tok, size_t len, uint64_t now_ms);

/* A snapshot's "mmds" section: the document as compact JSON. The load
 * replaces the document (0, or CV_EINPUT with r marked bad). */
struct snap_writer;
struct snap_reader;
int mmds_store_save(void *store, struct snap_writer *w);
int mmds_store_load(void *store, struct snap_reader *r);

#endif
