/* `cellvm disk`: create, inspect, check, convert, resize and snapshot
 * disk images (raw, qcow2) of stopped VMs. Shared helpers of its files. */
#ifndef CELLVM_DISK_DISK_H
#define CELLVM_DISK_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/image.h"
#include "block/layer.h"

int disk_main(int argc, char **argv);

/* Subcommands: argv holds what follows the subcommand's name. */
int disk_create(int argc, char **argv);
int disk_info(int argc, char **argv);
int disk_check(int argc, char **argv);
int disk_convert(int argc, char **argv);
int disk_resize(int argc, char **argv);
int disk_snapshot(int argc, char **argv);
int disk_bench(int argc, char **argv);

/* Exit statuses: 0 done, 1 failed (or corruption found), 2 bad input. */
enum { DISK_EXIT_OK = 0, DISK_EXIT_FAIL = 1, DISK_EXIT_USAGE = 2 };
int disk_exit(int rc);

/* An option of a subcommand: a flag (`flag` set) or one with a value. */
struct disk_opt {
	const char *name;
	const char **value;
	bool *flag;
};

/* Splits argv into options and up to max_pos positional arguments
 * (at least min_pos); reports the first bad one. 0 or CV_EINPUT. */
int disk_args(const char *cmd, int argc, char **argv, const struct disk_opt *opts, const char **pos, int min_pos,
	      int max_pos, int *npos);

/* SIZE: a size_parse() string, more than 0, a multiple of 512 bytes. */
int disk_parse_size(const char *s, uint64_t *out);
int disk_parse_format(const char *s, enum block_format *f);

/* Creates an image at `path` (which must not exist). */
int disk_make_image(const char *path, enum block_format f, uint64_t size, const char *backing,
		    enum block_format backing_fmt, bool prealloc);

/* Copies every allocated byte of `src` (through its chain if `chain`,
 * else this layer only, zeroes included) into `dst`, with a progress bar
 * when stdout is a terminal. */
int disk_copy(struct image *src, struct image *dst, bool chain, const char *label);

/* CV_EINPUT, reported, if path is an NBD URI: for subcommands that make
 * or rename files (the server makes and sizes its exports). */
int disk_need_file(const char *cmd, const char *path);

/* Bytes the host file really occupies. */
uint64_t disk_allocated(const struct image *img);

#endif
