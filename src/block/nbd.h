/* Disks on an NBD server (qemu-nbd, nbdkit, ...), through libnbd: a raw
 * image whose bytes are an export, named by an NBD URI
 * (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, ...). There
 * is no host file: every operation is an NBD command, run by the async
 * layer's workers. A connection that drops is made again (for up to
 * NBD_RECONNECT_SECONDS) and the command retried, so a server restart is
 * only a pause for the guest. Sharing the export (locks, several clients)
 * is the server's business.
 *
 * libnbd is the module "nbd" (util/module.h): the functions below are the
 * rest of cellvm's way to it, and load it only for a URI. */
#ifndef CELLVM_BLOCK_NBD_H
#define CELLVM_BLOCK_NBD_H

#include <stdbool.h>
#include <stdint.h>

#include "block/image.h"

#define NBD_RECONNECT_SECONDS 30

/* What the server told of the export, for `cellvm disk info`. */
struct nbd_export_info {
	uint64_t block_min, block_preferred, block_max; /* 0: not given */
	bool read_only; /* the server's word, whatever this client asked */
	bool can_flush, can_trim, can_zero, block_status;
};

/* Whether path is an NBD URI (nbd:, nbds:, nbd+unix:, nbds+unix:,
 * nbd+vsock:, nbds+vsock:) rather than a file name. */
bool nbd_image_is_uri(const char *path);

/* Connects to the export at uri, read-only if asked or if the server
 * says so. `format` must be raw or auto (an export is raw: a server
 * serves a qcow2 file's content itself). Errors are reported naming uri
 * and return CV_EINPUT (bad URI, unreachable server, qcow2) or CV_EFAIL. */
int nbd_image_open(const char *uri, enum block_format format, bool readonly, struct image **out);

/* The export behind img, or NULL if img is no NBD image. */
const struct nbd_export_info *nbd_image_info(const struct image *img);

/* The module's table: the two functions above that need libnbd. */
struct nbd_module {
	int (*open)(const char *uri, enum block_format format, bool readonly, struct image **out);
	const struct nbd_export_info *(*info)(const struct image *img);
};

/* In the module; the rest of cellvm reaches it through module_get(). */
extern const struct nbd_module cellvm_module_nbd;

#endif
