/* The memory of a snapshot as layers: a full memory file, then the diff
 * files taken after it, each holding only the pages written since the one
 * before (the others are holes). The state file's "memory" section lists
 * the whole chain, so the newest state file and the memory files are all
 * a restore needs; each earlier layer is known by its path and identity
 * and refused if it changed. */
#ifndef CELLVM_SNAPSHOT_MEMCHAIN_H
#define CELLVM_SNAPSHOT_MEMCHAIN_H

#include <stdint.h>

#include "snapshot/stream.h"
#include "util/file_id.h"

#define MEMCHAIN_SECTION "memory"
#define MEMCHAIN_VERSION 1
/* Longer chains cost a restore more reads than a full snapshot would. */
#define MEMCHAIN_MAX 32

struct mem_layer {
	char *path; /* absolute */
	struct file_id id;
	uint64_t *pages; /* NULL for the full layer, else the pages it holds */
};

struct mem_chain {
	struct mem_layer layer[MEMCHAIN_MAX];
	unsigned n;
	uint64_t words; /* of each page bitmap */
};

void mem_chain_init(struct mem_chain *c, uint64_t words);
void mem_chain_free(struct mem_chain *c);
/* Appends the file at path (already written) as the newest layer, with
 * its pages (NULL: a full layer, which replaces the chain). 0 or CV_EFAIL
 * (reported: the file cannot be resolved, or the chain is full). */
int mem_chain_push(struct mem_chain *c, const char *path, const uint64_t *pages);
/* Appends a copy of another chain's layer. 0 or CV_EFAIL. */
int mem_chain_copy_layer(struct mem_chain *c, const struct mem_layer *from);
/* Records the layer from path's current name and identity. */
int mem_chain_identify(struct mem_layer *l, const char *path);

void mem_chain_encode(const struct mem_chain *c, struct snap_writer *w);
/* Decodes into c (initialised with the RAM's bitmap size); 0, or -1 with
 * the reader marked bad. */
int mem_chain_decode(struct snap_reader *r, struct mem_chain *c);
/* Whether layer i's file is still what was recorded; else reports why and
 * returns CV_EINPUT. */
int mem_chain_check(const struct mem_chain *c, unsigned i);

#endif
