/* A file known by identity: size and modification time (to the
 * nanosecond; the inode is recorded, not compared). Snapshots record the
 * disks and memory files they rely on this way and refuse a restore onto
 * one that changed since. */
#ifndef CELLVM_UTIL_FILE_ID_H
#define CELLVM_UTIL_FILE_ID_H

#include <stdint.h>

struct file_id {
	uint64_t ino, size, mtime_sec, mtime_nsec;
};

/* 0, or -1 with errno (the id zeroed). */
int file_id_get(const char *path, struct file_id *id);
/* NULL if equal, else what differs ("its size", "its modification time"). */
const char *file_id_diff(const struct file_id *was, const struct file_id *now);

#endif
