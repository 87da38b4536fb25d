/* struct block over a struct image: io_uring for data at plain host
 * offsets, a worker pool for everything else (see async.c). */
#ifndef CELLVM_BLOCK_ASYNC_H
#define CELLVM_BLOCK_ASYNC_H

#include "block/image.h"

/* Takes ownership of img (closed with the block). */
/* Called first on every worker thread the disks start (the VMM loads its
 * syscall filter there); a failure fails that worker's requests. */
void async_set_thread_start(int (*fn)(void));
int async_open(struct image *img, unsigned max_inflight, struct event_loop *loop, struct block **out);

#endif
