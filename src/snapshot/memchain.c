#include "snapshot/memchain.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/file_id.h"

void mem_chain_init(struct mem_chain *c, uint64_t words)
{
	memset(c, 0, sizeof(*c));
	c->words = words;
}

static void layer_free(struct mem_layer *l)
{
	free(l->path);
	free(l->pages);
	memset(l, 0, sizeof(*l));
}

void mem_chain_free(struct mem_chain *c)
{
	for (unsigned i = 0; i < c->n; i++)
		layer_free(&c->layer[i]);
	c->n = 0;
}

int mem_chain_identify(struct mem_layer *l, const char *path)
{
	char abs[PATH_MAX];
	char *p;

	if (!realpath(path, abs) || file_id_get(abs, &l->id) < 0 || !(p = strdup(abs))) {
		cv_err("memory file '%s': %s", path, strerror(errno));
		return CV_EFAIL;
	}
	free(l->path);
	l->path = p;
	return 0;
}

/* Appends a layer with copies of path and pages (NULL: a full layer). */
static int append(struct mem_chain *c, const char *path, const struct file_id *id, const uint64_t *pages)
{
	struct mem_layer *l = &c->layer[c->n];

	if (c->n == MEMCHAIN_MAX) {
		cv_err("the VM's memory already has %d layers: take a Full snapshot", MEMCHAIN_MAX);
		return CV_EFAIL;
	}
	if (!(l->path = strdup(path)) || (pages && !(l->pages = malloc(c->words * 8)))) {
		layer_free(l);
		cv_err("out of memory for a memory layer");
		return CV_EFAIL;
	}
	l->id = *id;
	if (pages)
		memcpy(l->pages, pages, c->words * 8);
	c->n++;
	return 0;
}

int mem_chain_copy_layer(struct mem_chain *c, const struct mem_layer *from)
{
	return append(c, from->path, &from->id, from->pages);
}

int mem_chain_push(struct mem_chain *c, const char *path, const uint64_t *pages)
{
	struct mem_layer l = { 0 };
	int rc;

	if ((rc = mem_chain_identify(&l, path)))
		return rc;
	if (!pages)
		mem_chain_free(c);
	rc = append(c, l.path, &l.id, pages);
	layer_free(&l);
	return rc;
}

void mem_chain_encode(const struct mem_chain *c, struct snap_writer *w)
{
	snap_put_u32(w, c->n);
	for (unsigned i = 0; i < c->n; i++) {
		const struct mem_layer *l = &c->layer[i];

		snap_put_str(w, l->path);
		snap_put_file_id(w, &l->id);
		snap_put_u8(w, l->pages != NULL);
		for (uint64_t k = 0; l->pages && k < c->words; k++)
			snap_put_u64(w, l->pages[k]);
	}
}

int mem_chain_decode(struct snap_reader *r, struct mem_chain *c)
{
	uint32_t n = snap_get_u32(r);
	char path[PATH_MAX];

	if (snap_reader_ok(r) && (n == 0 || n > MEMCHAIN_MAX))
		snap_reader_fail(r, "memory layer count out of range");
	for (uint32_t i = 0; i < n && snap_reader_ok(r); i++) {
		struct mem_layer *l = &c->layer[c->n];
		bool diff;

		snap_get_str(r, path, sizeof(path), NULL);
		snap_get_file_id(r, &l->id);
		diff = snap_get_bool(r);
		if (snap_reader_ok(r) && (path[0] != '/' || diff != (i > 0)))
			snap_reader_fail(r, "malformed memory layer");
		if (!snap_reader_ok(r))
			break;
		if (!(l->path = strdup(path)) || (diff && !(l->pages = malloc(c->words * 8)))) {
			snap_reader_fail(r, "out of memory");
			c->n++;
			break;
		}
		c->n++;
		for (uint64_t k = 0; diff && k < c->words; k++)
			l->pages[k] = snap_get_u64(r);
	}
	if (!snap_reader_ok(r)) {
		mem_chain_free(c);
		return -1;
	}
	return 0;
}

int mem_chain_check(const struct mem_chain *c, unsigned i)
{
	const struct mem_layer *l = &c->layer[i];
	struct file_id now;
	const char *what;

	if (file_id_get(l->path, &now) < 0) {
		cv_err("cannot restore: memory layer %u of %u, '%s': %s", i + 1, c->n, l->path, strerror(errno));
		return CV_EINPUT;
	}
	if ((what = file_id_diff(&l->id, &now))) {
		cv_err("cannot restore: memory layer %u of %u, '%s', changed since the snapshot (%s differs)", i + 1,
		       c->n, l->path, what);
		return CV_EINPUT;
	}
	return 0;
}
