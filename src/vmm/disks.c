#include "vmm/disks.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "block/image.h"
#include "block/layer.h"
#include "block/nbd.h"
#include "util/err.h"
#include "util/file_id.h"
#include "virtio/blk.h"
#include "virtio/poll.h"
#include "vmm/devices.h"
#include "vmm/vm.h"

/* DISK_NBD: an export, recorded by its URI alone (in the configuration).
 * DISK_COPIED: sent along with a migration, no identity recorded. */
enum { DISK_FILE = 0, DISK_LAYER = 1, DISK_NBD = 2, DISK_COPIED = 3 };

static int layer_path(const char *img, const char *name, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s.%s", img, name);

	if (n < 0 || (size_t)n >= cap) {
		cv_err("disk layer path '%s.%s' is too long", img, name);
		return CV_EINPUT;
	}
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* `name` in the directory of `path`. */
static int beside(const char *path, const char *name, char *buf, size_t cap)
{
	int dir = (int)(base_name(path) - path);
	int n = snprintf(buf, cap, "%.*s%s", dir, path, name);

	return n < 0 || (size_t)n >= cap ? CV_EINPUT : 0;
}

/* Puts disk i back on its configured path, whatever file is there now. */
static int reopen(struct vm *vm, unsigned i)
{
	struct block *b;
	int rc = devices_open_disk(vm, i, vm->cfg->disks[i].path, &b);

	if (rc) {
		cv_err("disk '%s' is detached from the guest: %s", vm->cfg->disks[i].path, cv_last_error());
		return rc;
	}
	virtio_blk_attach(devices_disk(vm, i), b);
	return 0;
}

static int freeze_one(struct vm *vm, unsigned i, const char *name)
{
	const char *img = vm->cfg->disks[i].path;
	char layer[PATH_MAX];
	struct block *b;
	uint64_t size;
	int rc;

	if ((rc = layer_path(img, name, layer, sizeof(layer))))
		return rc;
	b = virtio_blk_detach(devices_disk(vm, i));
	size = b->size;
	/* Closing writes the image's metadata back: the layer is final. */
	if (b->ops->close(b)) {
		cv_err("cannot freeze disk '%s': writing its metadata back failed", img);
		reopen(vm, i);
		return CV_EFAIL;
	}
	if ((rc = layer_freeze(img, layer, BLOCK_FORMAT_QCOW2, size))) {
		reopen(vm, i);
		return rc;
	}
	/* If the delta does not open, the layer is still the old file. */
	if ((rc = reopen(vm, i)) && rename(layer, img) == 0)
		reopen(vm, i);
	return rc;
}

int vm_disks_freeze(struct vm *vm, struct disk_layers *dl)
{
	memset(dl->frozen, 0, sizeof(dl->frozen));
	for (unsigned i = 0; dl->name && i < vm->cfg->ndisks; i++) {
		const struct block *b = virtio_blk_disk(devices_disk(vm, i));
		int rc;

		if (b->readonly || b->format != BLOCK_FORMAT_QCOW2)
			continue;
		if ((rc = freeze_one(vm, i, dl->name))) {
			vm_disks_thaw(vm, dl);
			return rc;
		}
		dl->frozen[i] = true;
	}
	return 0;
}

void vm_disks_thaw(struct vm *vm, struct disk_layers *dl)
{
	for (unsigned i = 0; i < vm->cfg->ndisks; i++) {
		const char *img = vm->cfg->disks[i].path;
		char layer[PATH_MAX];
		struct block *b;

		if (!dl->frozen[i] || layer_path(img, dl->name, layer, sizeof(layer)))
			continue;
		dl->frozen[i] = false;
		b = virtio_blk_detach(devices_disk(vm, i));
		b->ops->close(b);
		/* The delta on the layer is still empty: the layer is the disk. */
		if (rename(layer, img) < 0)
			cv_err("cannot rename '%s' back to '%s': %s", layer, img, strerror(errno));
		reopen(vm, i);
	}
}

void vm_disks_encode(struct vm *vm, const struct disk_layers *dl, struct snap_writer *w)
{
	snap_put_u32(w, vm->cfg->ndisks);
	for (unsigned i = 0; i < vm->cfg->ndisks; i++) {
		const char *img = vm->cfg->disks[i].path;
		char layer[PATH_MAX] = "";
		struct file_id id;

		if (dl->copied[i] || nbd_image_is_uri(img)) {
			snap_put_u8(w, dl->copied[i] ? DISK_COPIED : DISK_NBD);
			continue;
		}
		if (dl->frozen[i])
			layer_path(img, dl->name, layer, sizeof(layer));
		snap_put_u8(w, dl->frozen[i] ? DISK_LAYER : DISK_FILE);
		if (dl->frozen[i])
			snap_put_str(w, base_name(layer));
		file_id_get(dl->frozen[i] ? layer : img, &id);
		snap_put_file_id(w, &id);
	}
}

/* Whether img is an empty delta (nothing of its own) on `layer`. */
static int check_on_layer(const char *img_path, const char *layer)
{
	struct image *img;
	struct extent e;
	bool empty;
	int rc;

	if ((rc = image_open(img_path, BLOCK_FORMAT_AUTO, 0, &img)))
		return rc;
	empty = img->backing && !strcmp(base_name(img->backing->path), layer);
	for (uint64_t off = 0; empty && off < img->size; off += e.len)
		empty = !img->ops->status(img, off, img->size - off, &e) && e.kind == EXTENT_BACKING && e.len;
	image_close(img);
	if (!empty) {
		cv_err("cannot restore: disk '%s' is not an empty delta on the snapshot's layer '%s' (it holds writes "
		       "made since; `cellvm snapshot restore` puts a new delta there)",
		       img_path, layer);
		return CV_EINPUT;
	}
	return 0;
}

int vm_disks_check(const struct vm_config *cfg, bool migrated, struct snap_reader *r)
{
	if (snap_get_u32(r) != cfg->ndisks)
		snap_reader_fail(r, "another number of disks than the configuration");
	for (unsigned i = 0; i < cfg->ndisks && snap_reader_ok(r); i++) {
		const char *img = cfg->disks[i].path, *what;
		char name[256], file[PATH_MAX];
		struct file_id was, now;
		uint8_t kind = snap_get_u8(r);
		bool null;
		int rc;

		/* The migration brought this disk's content itself. */
		if (kind == DISK_COPIED && migrated)
			continue;
		/* The server holds its content: nothing here to compare. */
		if (kind == DISK_NBD) {
			if (!nbd_image_is_uri(img))
				snap_reader_fail(r, "an NBD disk where the configuration has a file");
			continue;
		}
		if (kind == DISK_LAYER) {
			snap_get_str(r, name, sizeof(name), &null);
			/* The layer lies beside the disk; a name is one path element. */
			if (null || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
			    beside(img, name, file, sizeof(file)))
				snap_reader_fail(r, "a bad disk layer name");
		} else if (kind != DISK_FILE) {
			snap_reader_fail(r, "an unknown kind of disk");
		}
		snap_get_file_id(r, &was);
		if (!snap_reader_ok(r))
			break;
		if (kind == DISK_FILE)
			snprintf(file, sizeof(file), "%s", img);
		if (file_id_get(file, &now) < 0) {
			cv_err("cannot restore: disk%s '%s': %s", kind == DISK_LAYER ? " layer" : "", file, strerror(errno));
			return CV_EINPUT;
		}
		if ((what = file_id_diff(&was, &now))) {
			cv_err("cannot restore: disk%s '%s' changed since the snapshot (%s differs)",
			       kind == DISK_LAYER ? " layer" : "", file, what);
			return CV_EINPUT;
		}
		if (kind == DISK_LAYER && (rc = check_on_layer(img, name)))
			return rc;
	}
	return snap_reader_ok(r) ? 0 : CV_EINPUT;
}

int vm_disk_replace(struct vm *vm, unsigned i, const char *path)
{
	struct block *b, *old;
	int rc;

	if (i >= vm->cfg->ndisks) {
		cv_err("no disk %u", i);
		return CV_EINPUT;
	}
	/* The new file opens first: on failure the guest keeps its disk. */
	if ((rc = devices_open_disk(vm, i, path, &b)))
		return rc;
	old = virtio_blk_detach(devices_disk(vm, i));
	virtio_blk_attach(devices_disk(vm, i), b);
	/* Its requests still in flight complete to the guest as they end. */
	if (old->ops->close(old))
		cv_warn("disk '%s': writing its metadata back failed", vm->cfg->disks[i].path);
	return 0;
}

void vm_disks_release(struct vm *vm, uint32_t keep)
{
	for (unsigned i = 0; i < vm->cfg->ndisks; i++) {
		struct block *b = (keep >> i) & 1 ? NULL : virtio_blk_detach(devices_disk(vm, i));

		if (b && b->ops->close(b))
			cv_warn("disk '%s': writing its metadata back failed", vm->cfg->disks[i].path);
	}
}

int vm_disks_reacquire(struct vm *vm)
{
	int rc = 0;

	for (unsigned i = 0; i < vm->cfg->ndisks; i++)
		if (!virtio_blk_disk(devices_disk(vm, i)) && reopen(vm, i))
			rc = CV_EFAIL;
	return rc;
}

void vm_disks_encode_queues(const struct vm_config *cfg, struct snap_writer *w)
{
	snap_put_u32(w, cfg->ndisks);
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		/* What the guest saw, not the default it came from. */
		snap_put_u32(w, devices_disk_queues(cfg, i));
		snap_put_u32(w, cfg->disks[i].poll_us);
	}
}

int vm_disks_decode_queues(struct vm_config *cfg, struct snap_reader *r)
{
	if (!r) {
		for (unsigned i = 0; i < cfg->ndisks; i++) {
			cfg->disks[i].queues = 1;
			cfg->disks[i].poll_us = 0;
		}
		return 0;
	}
	if (snap_get_u32(r) != cfg->ndisks)
		snap_reader_fail(r, "another number of disks than the configuration");
	for (unsigned i = 0; i < cfg->ndisks && snap_reader_ok(r); i++) {
		uint32_t n = snap_get_u32(r), poll_us = snap_get_u32(r);

		if (n < 1 || n > VIRTIO_BLK_MAX_QUEUES || poll_us > VQ_POLL_MAX_US)
			snap_reader_fail(r, "disk queues out of range");
		cfg->disks[i].queues = n;
		cfg->disks[i].poll_us = poll_us;
	}
	return snap_reader_ok(r) ? 0 : CV_EINPUT;
}
