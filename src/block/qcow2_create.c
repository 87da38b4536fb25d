/* New qcow2 (v3) images, and growing one's virtual size.
 *
 * Layout of a new image: the header cluster (header, a backing format
 * extension, the backing file name), the refcount table, the refcount
 * blocks that cover the metadata, then the L1 table. Every guest cluster
 * starts unallocated. */
#include "block/qcow2.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/iov.h"
#include "util/err.h"

static void put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* Fills the header cluster; false if the backing name does not fit. */
static bool build_header(uint8_t *buf, uint64_t cs, const struct qcow2_create_opts *o, uint64_t rt_off,
			 uint64_t rt_clusters, uint64_t l1_off, uint64_t l1_size)
{
	size_t pos = QCOW2_V3_HEADER, blen = o->backing ? strlen(o->backing) : 0;

	memcpy(buf, QCOW2_MAGIC, 4);
	put32(buf + 4, 3);
	put32(buf + 20, (uint32_t)__builtin_ctzll(cs));
	put64(buf + 24, o->size);
	put32(buf + 36, (uint32_t)l1_size);
	put64(buf + 40, l1_off);
	put64(buf + 48, rt_off);
	put32(buf + 56, (uint32_t)rt_clusters);
	put32(buf + 96, 4); /* 16-bit refcounts, as QEMU makes them */
	put32(buf + 100, QCOW2_V3_HEADER);
	if (o->backing && o->backing_fmt) {
		size_t flen = strlen(o->backing_fmt);

		put32(buf + pos, QCOW2_EXT_BACKING_FORMAT);
		put32(buf + pos + 4, (uint32_t)flen);
		memcpy(buf + pos + 8, o->backing_fmt, flen);
		pos += 8 + ((flen + 7) & ~7ULL);
	}
	pos += 8; /* end of extensions (zeroes) */
	if (o->backing) {
		if (pos + blen > cs)
			return false;
		put64(buf + 8, pos);
		put32(buf + 16, (uint32_t)blen);
		memcpy(buf + pos, o->backing, blen);
	}
	return true;
}

int qcow2_create(const char *path, const struct qcow2_create_opts *o)
{
	unsigned bits = o->cluster_bits ? o->cluster_bits : QCOW2_DEFAULT_CLUSTER_BITS;
	uint64_t cs = 1ULL << bits, rb_entries = cs * 8 / 16, l1_size = qcow2_l1_entries(o->size, bits);
	uint64_t l1_c = div_up(l1_size * 8, cs), rt_c = 1, rb_c = 1, total;
	uint8_t *buf = NULL;
	int fd = -1, rc = CV_EFAIL, err = 0;

	if (bits < QCOW2_MIN_CLUSTER_BITS || bits > QCOW2_MAX_CLUSTER_BITS) {
		cv_err("cluster size %llu out of range (512..2M)", (unsigned long long)cs);
		return CV_EINPUT;
	}
	if (o->backing && strlen(o->backing) > QCOW2_MAX_BACKING_NAME) {
		cv_err("backing file name '%s' is longer than %d bytes", o->backing, QCOW2_MAX_BACKING_NAME);
		return CV_EINPUT;
	}
	if (o->size > (1ULL << 62) || l1_size * 8 > QCOW2_MAX_L1_BYTES) {
		cv_err("size %llu is too large for %llu-byte clusters", (unsigned long long)o->size,
		       (unsigned long long)cs);
		return CV_EINPUT;
	}
	/* Enough refcount blocks for all metadata, and table room for them. */
	for (;;) {
		total = 1 + rt_c + rb_c + l1_c;
		if (rb_c * rb_entries >= total && rt_c * (cs / 8) >= rb_c)
			break;
		rb_c = div_up(total, rb_entries);
		rt_c = div_up(rb_c * 8, cs);
	}
	if (!(buf = calloc(1, cs))) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	if (!build_header(buf, cs, o, cs, rt_c, (1 + rt_c + rb_c) * cs, l1_size)) {
		cv_err("backing file name '%s' does not fit in a %llu-byte header cluster", o->backing,
		       (unsigned long long)cs);
		free(buf);
		return CV_EINPUT;
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		cv_err("cannot create '%s': %s", path, strerror(errno));
		free(buf);
		return CV_EFAIL;
	}
	if ((err = pwrite_full(fd, buf, cs, 0)))
		goto out;
	/* Refcount table: the blocks follow it. */
	for (uint64_t i = 0; !err && i < rt_c; i++) {
		memset(buf, 0, cs);
		for (uint64_t j = 0; j < cs / 8 && i * (cs / 8) + j < rb_c; j++)
			put64(buf + j * 8, (1 + rt_c + i * (cs / 8) + j) * cs);
		err = pwrite_full(fd, buf, cs, (1 + i) * cs);
	}
	/* Refcount blocks: every metadata cluster has refcount 1. */
	for (uint64_t i = 0; !err && i < rb_c; i++) {
		memset(buf, 0, cs);
		for (uint64_t j = 0; j < rb_entries && i * rb_entries + j < total; j++)
			buf[j * 2 + 1] = 1; /* big-endian 16-bit 1 */
		err = pwrite_full(fd, buf, cs, (1 + rt_c + i) * cs);
	}
	/* The L1 table is all zeroes: the file's tail, sparse. */
	if (!err && ftruncate(fd, (off_t)(total * cs)) < 0)
		err = -errno;
	if (!err && fsync(fd) < 0)
		err = -errno;
out:
	if (err) {
		cv_err("cannot write '%s': %s", path, strerror(-err));
		unlink(path);
	} else {
		rc = 0;
	}
	close(fd);
	free(buf);
	return rc;
}

/* `count` contiguous free clusters (a run the allocator may give in
 * pieces at refcount block edges: such pieces are given back). */
static int alloc_run(struct qcow2 *q, uint64_t count, uint64_t *off)
{
	for (int tries = 0; tries < 64; tries++) {
		uint64_t got = count;
		bool fresh;
		int rc = qcow2_alloc_clusters(q, &got, off, &fresh);

		if (rc || got == count)
			return rc;
		for (uint64_t i = 0; i < got; i++)
			if ((rc = qcow2_refcount_add(q, (*off >> q->cluster_bits) + i, -1)))
				return rc;
		q->free_hint = (*off >> q->cluster_bits) + got;
	}
	return -ENOSPC;
}

static int grow_locked(struct qcow2 *q, uint64_t size)
{
	uint64_t need = qcow2_l1_entries(size, q->cluster_bits), old_off = q->h.l1_table_offset;
	uint64_t old_c = div_up((uint64_t)q->h.l1_size * 8, q->cluster_size), new_c, off, *l1;
	uint8_t hdr[24];
	int rc;

	if (size > (1ULL << 62) || need * 8 > QCOW2_MAX_L1_BYTES)
		return -EFBIG;
	if ((rc = qcow2_meta_flush(q)) || (rc = qcow2_barrier(q)))
		return rc;
	if (need <= q->h.l1_size) {
		uint64_t be = htobe64(size);

		if ((rc = pwrite_full(q->img.fd, &be, 8, 24)) || (rc = qcow2_barrier(q)))
			return rc;
		q->h.size = q->img.size = size;
		return 0;
	}
	/* A larger L1 table next to the old one, then one header write. */
	new_c = div_up(need * 8, q->cluster_size);
	if (!(l1 = calloc(new_c, q->cluster_size)))
		return -ENOMEM;
	if ((rc = alloc_run(q, new_c, &off)))
		goto out;
	for (uint64_t i = 0; i < q->h.l1_size; i++)
		l1[i] = htobe64(q->l1[i]);
	if ((rc = pwrite_full(q->img.fd, l1, new_c * q->cluster_size, off)) || (rc = qcow2_meta_flush(q)) ||
	    (rc = qcow2_barrier(q)))
		goto out;
	put64(hdr, size);
	put32(hdr + 8, q->h.crypt_method);
	put32(hdr + 12, (uint32_t)need);
	put64(hdr + 16, off);
	if ((rc = pwrite_full(q->img.fd, hdr, sizeof(hdr), 24)) || (rc = qcow2_barrier(q)))
		goto out;
	for (uint64_t i = 0; i < need; i++)
		l1[i] = be64toh(l1[i]);
	free(q->l1);
	q->l1 = l1;
	l1 = NULL;
	q->h.l1_size = (uint32_t)need;
	q->h.l1_table_offset = off;
	q->h.size = q->img.size = size;
	for (uint64_t i = 0; !rc && i < old_c; i++)
		rc = qcow2_refcount_add(q, (old_off >> q->cluster_bits) + i, -1);
	if (!rc)
		rc = qcow2_meta_flush(q);
out:
	free(l1);
	return rc;
}

int qcow2_grow(struct image *img, uint64_t size)
{
	struct qcow2 *q = (struct qcow2 *)img;
	int rc;

	if (size < img->size)
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	rc = grow_locked(q, size);
	pthread_mutex_unlock(&q->lock);
	return rc ? rc : qcow2_barrier(q);
}
