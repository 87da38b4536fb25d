#include "mmds/store.h"

#include <stdlib.h>
#include <string.h>

#include "snapshot/stream.h"
#include "util/err.h"

/* Firecracker's serializer: compact, keys in order (a BTreeMap). */
#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

int mmds_store_init(struct mmds_store *s, const char *instance_id)
{
	memset(s, 0, sizeof(*s));
	if (mmds_tokens_init(&s->tokens, instance_id))
		return CV_EFAIL;
	pthread_mutex_init(&s->lock, NULL);
	return 0;
}

void mmds_store_destroy(struct mmds_store *s)
{
	json_decref(s->data);
	s->data = NULL;
	mmds_tokens_destroy(&s->tokens);
	pthread_mutex_destroy(&s->lock);
}

static bool fits(json_t *v, size_t limit)
{
	return json_dumpb(v, NULL, 0, DUMP_FLAGS) <= limit;
}

static enum mmds_result replace(struct mmds_store *s, json_t *v, size_t limit)
{
	if (!v)
		return MMDS_NOMEM;
	if (!fits(v, limit)) {
		json_decref(v);
		return MMDS_TOO_BIG;
	}
	json_decref(s->data);
	s->data = v;
	return MMDS_OK;
}

enum mmds_result mmds_store_put(struct mmds_store *s, json_t *v, size_t limit)
{
	enum mmds_result r;

	pthread_mutex_lock(&s->lock);
	r = replace(s, json_deep_copy(v), limit);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* RFC 7396 on target (owned; may be replaced): the merged document, or
 * NULL when out of memory (target released). */
static json_t *merge(json_t *target, json_t *patch)
{
	const char *key;
	json_t *v;

	if (!json_is_object(patch)) {
		json_decref(target);
		return json_deep_copy(patch);
	}
	if (!json_is_object(target)) {
		json_decref(target);
		if (!(target = json_object()))
			return NULL;
	}
	json_object_foreach(patch, key, v)
	{
		json_t *m;

		if (json_is_null(v)) {
			json_object_del(target, key);
			continue;
		}
		m = json_object_get(target, key);
		m = merge(m ? json_incref(m) : NULL, v);
		if (!m || json_object_set_new(target, key, m)) {
			json_decref(target);
			return NULL;
		}
	}
	return target;
}

enum mmds_result mmds_store_patch(struct mmds_store *s, json_t *patch, size_t limit)
{
	enum mmds_result r = MMDS_NOT_INITIALIZED;

	pthread_mutex_lock(&s->lock);
	/* Merged into a copy, so a patch that does not fit changes nothing. */
	if (s->data)
		r = replace(s, merge(json_deep_copy(s->data), patch), limit);
	pthread_mutex_unlock(&s->lock);
	return r;
}

json_t *mmds_store_get(struct mmds_store *s)
{
	json_t *v;

	pthread_mutex_lock(&s->lock);
	v = s->data ? json_deep_copy(s->data) : json_object();
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* An array index as serde_json's pointer reads it: digits, no leading 0. */
static bool array_index(const char *t, size_t len, size_t *out)
{
	size_t n = 0;

	if (!len || len > 18 || (t[0] == '0' && len > 1))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (t[i] < '0' || t[i] > '9')
			return false;
		n = n * 10 + (size_t)(t[i] - '0');
	}
	*out = n;
	return true;
}

/* RFC 6901 from root; "" is the root. NULL: no such value. */
static json_t *pointer(json_t *root, const char *p, size_t len)
{
	json_t *v = root;
	char key[512];

	if (!len)
		return v;
	if (*p != '/')
		return NULL;
	while (len && v) {
		const char *end = memchr(p + 1, '/', len - 1);
		size_t tl = (end ? (size_t)(end - p) : len) - 1, k = 0, idx;

		/* ~1 is '/', ~0 is '~'; a longer key than any store holds is absent. */
		for (size_t i = 0; i < tl; i++) {
			char c = p[1 + i];

			if (c == '~' && i + 1 < tl && (p[2 + i] == '0' || p[2 + i] == '1'))
				c = p[2 + i++] == '0' ? '~' : '/';
			if (k == sizeof(key) - 1)
				return NULL;
			key[k++] = c;
		}
		key[k] = 0;
		if (json_is_object(v))
			v = strlen(key) == k ? json_object_get(v, key) : NULL;
		else if (json_is_array(v) && array_index(key, k, &idx))
			v = json_array_get(v, idx);
		else
			v = NULL;
		p += tl + 1;
		len -= tl + 1;
	}
	return v;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static enum mmds_result imds_text(json_t *v, char **out, size_t *len)
{
	size_t n = json_object_size(v), i = 0, total = 1;
	const char **keys;
	const char *key;
	json_t *m;
	char *p;

	if (json_is_string(v)) {
		*len = json_string_length(v);
		*out = malloc(*len + 1);
		if (!*out)
			return MMDS_NOMEM;
		memcpy(*out, json_string_value(v), *len + 1);
		return MMDS_OK;
	}
	if (!json_is_object(v))
		return MMDS_UNSUPPORTED;
	if (!(keys = calloc(n + 1, sizeof(*keys))))
		return MMDS_NOMEM;
	json_object_foreach(v, key, m)
	{
		keys[i++] = key;
		total += strlen(key) + 2;
	}
	qsort(keys, n, sizeof(*keys), cmp_keys);
	if (!(p = *out = malloc(total))) {
		free(keys);
		return MMDS_NOMEM;
	}
	for (i = 0; i < n; i++) {
		size_t kl = strlen(keys[i]);

		if (i)
			*p++ = '\n';
		memcpy(p, keys[i], kl);
		p += kl;
		if (json_is_object(json_object_get(v, keys[i])))
			*p++ = '/';
	}
	*p = 0;
	*len = (size_t)(p - *out);
	free(keys);
	return MMDS_OK;
}

enum mmds_result mmds_store_lookup(struct mmds_store *s, const char *path, bool json, char **out, size_t *len)
{
	size_t pl = strlen(path);
	enum mmds_result r = MMDS_NOT_FOUND;
	json_t *null = json_null(), *v;

	*out = NULL;
	*len = 0;
	if (pl && path[pl - 1] == '/')
		pl--;
	pthread_mutex_lock(&s->lock);
	v = pointer(s->data ? s->data : null, path, pl);
	if (v && json) {
		*out = json_dumps(v, DUMP_FLAGS);
		*len = *out ? strlen(*out) : 0;
		r = *out ? MMDS_OK : MMDS_NOMEM;
	} else if (v) {
		r = imds_text(v, out, len);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int mmds_store_token_new(struct mmds_store *s, uint32_t ttl_s, uint64_t now_ms, char out[MMDS_TOKEN_MAX + 1])
{
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = mmds_token_new(&s->tokens, ttl_s, now_ms, out);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

bool mmds_store_token_valid(struct mmds_store *s, const char *tok, size_t len, uint64_t now_ms)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	ok = mmds_token_valid(&s->tokens, tok, len, now_ms);
	pthread_mutex_unlock(&s->lock);
	return ok;
}

int mmds_store_save(void *store, struct snap_writer *w)
{
	struct mmds_store *s = store;
	char *text;

	pthread_mutex_lock(&s->lock);
	text = s->data ? json_dumps(s->data, DUMP_FLAGS) : strdup("");
	pthread_mutex_unlock(&s->lock);
	if (!text)
		return CV_EFAIL;
	/* Length first: "" is a store never PUT. */
	snap_put_u32(w, (uint32_t)strlen(text));
	snap_put_bytes(w, text, strlen(text));
	free(text);
	return 0;
}

int mmds_store_load(void *store, struct snap_reader *r)
{
	struct mmds_store *s = store;
	uint32_t len = snap_get_u32(r);
	const uint8_t *text = snap_reader_ok(r) && len <= snap_reader_left(r) ? snap_get_view(r, len) : NULL;
	json_t *v = NULL;

	if (!text || (len && !(v = json_loadb((const char *)text, len, JSON_DECODE_ANY, NULL)))) {
		snap_reader_fail(r, "MMDS data store is not JSON");
		return CV_EINPUT;
	}
	pthread_mutex_lock(&s->lock);
	json_decref(s->data);
	s->data = v;
	pthread_mutex_unlock(&s->lock);
	return 0;
}
