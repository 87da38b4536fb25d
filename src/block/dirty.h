/* Which parts of a disk were written: a bitmap of BLOCK_DIRTY_CHUNK-byte
 * chunks that the disk's completed writes, discards and write-zeroes mark
 * (on the event loop) and a migration copying the disk takes (from its
 * own thread), atomically word by word. A write marks its chunks only once
 * its data is in the image, so a chunk read after a take is either sent
 * with that data or marked again. */
#ifndef CELLVM_BLOCK_DIRTY_H
#define CELLVM_BLOCK_DIRTY_H

#include <stdatomic.h>
#include <stdint.h>

#define BLOCK_DIRTY_SHIFT 16
#define BLOCK_DIRTY_CHUNK (1u << BLOCK_DIRTY_SHIFT)

struct block_dirty {
	_Atomic uint64_t *bits;
	uint64_t words;
	uint64_t size; /* of the disk, bytes */
};

/* Nothing marked. 0 or CV_EFAIL (out of memory), reported. */
int block_dirty_init(struct block_dirty *d, uint64_t size);
void block_dirty_free(struct block_dirty *d);
/* Marks the chunks [off, off+len) touches (clipped to the disk). */
void block_dirty_mark(struct block_dirty *d, uint64_t off, uint64_t len);
/* Marks every chunk. */
void block_dirty_mark_all(struct block_dirty *d);
/* Moves the marks into out (ORed into its d->words words); the count of
 * chunks set in out. */
uint64_t block_dirty_take(struct block_dirty *d, uint64_t *out);

#endif
