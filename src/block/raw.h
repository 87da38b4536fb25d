/* Raw images: the virtual disk is the host file (or block device) byte
 * for byte. Thin when the file is sparse; discard punches holes. */
#ifndef CELLVM_BLOCK_RAW_H
#define CELLVM_BLOCK_RAW_H

#include "block/image.h"

/* Takes ownership of fd. */
int raw_open(int fd, const char *path, bool readonly, struct image **out);

/* Creates PATH (which must not exist) with `size` bytes; prealloc
 * allocates every block now (thick), otherwise the file is sparse. */
int raw_create(const char *path, uint64_t size, bool prealloc);

#endif
