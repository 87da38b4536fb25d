#include "block/dirty.h"

#include <stdlib.h>

#include "util/err.h"

int block_dirty_init(struct block_dirty *d, uint64_t size)
{
	uint64_t chunks = (size + BLOCK_DIRTY_CHUNK - 1) >> BLOCK_DIRTY_SHIFT;

	d->size = size;
	d->words = (chunks + 63) / 64;
	d->bits = calloc(d->words ? d->words : 1, sizeof(*d->bits));
	if (!d->bits) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	return 0;
}

void block_dirty_free(struct block_dirty *d)
{
	free((void *)d->bits);
	d->bits = NULL;
}

void block_dirty_mark(struct block_dirty *d, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (!len || off >= d->size)
		return;
	if (len > d->size - off)
		len = d->size - off;
	first = off >> BLOCK_DIRTY_SHIFT;
	last = (off + len - 1) >> BLOCK_DIRTY_SHIFT;
	for (uint64_t c = first; c <= last; c++)
		atomic_fetch_or(&d->bits[c / 64], 1ULL << (c % 64));
}

void block_dirty_mark_all(struct block_dirty *d)
{
	block_dirty_mark(d, 0, d->size);
}

uint64_t block_dirty_take(struct block_dirty *d, uint64_t *out)
{
	uint64_t count = 0;

	for (uint64_t w = 0; w < d->words; w++) {
		out[w] |= atomic_exchange(&d->bits[w], 0);
		count += (uint64_t)__builtin_popcountll(out[w]);
	}
	return count;
}
