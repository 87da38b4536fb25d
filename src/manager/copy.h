/* Copies a file that may be a large, mostly empty disk image: only its
 * data extents are read and written, so holes stay holes. */
#ifndef CELLVM_MANAGER_COPY_H
#define CELLVM_MANAGER_COPY_H

/* Copies src to dst (created, mode 0644; must not exist). */
int copy_sparse(const char *src, const char *dst);

/* Calls fn for each data extent of fd (size: the file's size); holes are
 * skipped. Returns 0 or fn's first non-zero result. */
int for_each_extent(int fd, long long size, int (*fn)(void *ctx, long long off, long long len), void *ctx);

#endif
