/* Layers of a disk image (the base + delta model): a new image is
 * written under a temporary name and renamed into place; an image's
 * current file is frozen under a second name (a hard link) with a fresh,
 * empty qcow2 delta renamed over the first. At every moment the image's
 * path is a complete image with the right content: a crash leaves at
 * worst a stray temporary file. Shared by `cellvm disk snapshot` and the
 * VMM, which freezes its disks at the instant of a VM snapshot. */
#ifndef CELLVM_BLOCK_LAYER_H
#define CELLVM_BLOCK_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/block.h"

/* A layer name (the NAME of IMG.NAME): 1 to 64 letters, digits, '.', '_'
 * or '-', not starting with '.'. */
bool layer_name_ok(const char *name);

/* A temporary name in path's directory (a leftover of ours removed). */
int layer_tmp_name(const char *path, char *buf, size_t len);
/* Renames tmp to path (unless `replace`, refusing an existing path);
 * removes tmp on failure. 0, CV_EINPUT or CV_EFAIL, reported. */
int layer_publish(const char *tmp, const char *path, bool replace);

/* Replaces `img` by a new empty qcow2 delta of `size` bytes on the layer
 * at `base` (of format base_fmt), which it names by its base name: both
 * must be in the same directory. */
int layer_new_delta(const char *img, const char *base, enum block_format base_fmt, uint64_t size);

/* Gives img's current file the second name `layer` (which must not
 * exist) and puts a new delta on it at img. Whoever writes img must have
 * closed it (or hold it and not write). On failure nothing changed. */
int layer_freeze(const char *img, const char *layer, enum block_format fmt, uint64_t size);

#endif
