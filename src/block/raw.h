/* Raw image files, read and written with io_uring. */
#ifndef CELLVM_BLOCK_RAW_H
#define CELLVM_BLOCK_RAW_H

#include "block/block.h"

int raw_open(int fd, uint64_t size, bool readonly, unsigned max_inflight, struct event_loop *loop,
	     struct block **out);

#endif
