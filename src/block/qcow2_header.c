/* The qcow2 header: every field is checked before any table is read, so a
 * file that claims to be qcow2 but is not well formed is refused with the
 * name of the bad field, never followed blindly. */
#include "block/qcow2.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "block/iov.h"
#include "util/err.h"

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

uint64_t qcow2_l1_entries(uint64_t size, unsigned cluster_bits)
{
	unsigned shift = cluster_bits + (cluster_bits - 3); /* bytes one L2 table maps */

	return (size >> shift) + ((size & ((1ULL << shift) - 1)) != 0);
}

struct range {
	const char *what;
	uint64_t off, len;
};

static bool overlap(const struct range *a, const struct range *b)
{
	return a->len && b->len && a->off < b->off + b->len && b->off < a->off + a->len;
}

/* A table of `bytes` at `off`: cluster-aligned, inside the file. */
static int check_table(const char *what, uint64_t off, uint64_t bytes, uint64_t cs, uint64_t file_size, char *err,
		       size_t errlen)
{
	if (off % cs)
		return cv_fmt(err, errlen, "%s offset 0x%llx is not aligned to a cluster", what,
			      (unsigned long long)off);
	if (off > file_size || bytes > file_size - off)
		return cv_fmt(err, errlen, "%s at 0x%llx (%llu bytes) is past the end of the file (%llu bytes)", what,
			      (unsigned long long)off, (unsigned long long)bytes, (unsigned long long)file_size);
	return 0;
}

static int parse_features(const uint8_t *buf, struct qcow2_header *h, char *err, size_t errlen)
{
	uint64_t f = h->incompatible_features;

	if (f & ~QCOW2_INCOMPAT_KNOWN)
		return cv_fmt(err, errlen, "unknown incompatible features 0x%llx",
			      (unsigned long long)(f & ~QCOW2_INCOMPAT_KNOWN));
	if (f & QCOW2_INCOMPAT_DATA_FILE)
		return cv_fmt(err, errlen, "external data files are not supported");
	if (f & QCOW2_INCOMPAT_EXTL2)
		return cv_fmt(err, errlen, "extended L2 entries (subclusters) are not supported");
	if (f & QCOW2_INCOMPAT_COMPRESSION) {
		/* The compression type byte at 104 is present only if the header is longer. */
		unsigned type = h->header_length > QCOW2_V3_HEADER ? buf[QCOW2_V3_HEADER] : 0;

		if (type != 0)
			return cv_fmt(err, errlen, "compression type %u (zstd) is not supported, only zlib", type);
	}
	return 0;
}

/* Header extensions sit between the header and the end of cluster 0 (or
 * the backing file name, which follows them). */
static int parse_extensions(const uint8_t *buf, size_t end, struct qcow2_header *h, char *err, size_t errlen)
{
	size_t off = h->header_length;

	while (off + 8 <= end) {
		uint32_t type = get32(buf + off), len = get32(buf + off + 4);
		size_t data = off + 8;

		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - data)
			return cv_fmt(err, errlen, "header extension 0x%08x at %zu (%u bytes) runs past the header", type,
				      off, len);
		if (type == QCOW2_EXT_BACKING_FORMAT) {
			if (len >= sizeof(h->backing_format) || memchr(buf + data, 0, len))
				return cv_fmt(err, errlen, "invalid backing format extension (%u bytes)", len);
			memcpy(h->backing_format, buf + data, len);
			h->backing_format[len] = 0;
		}
		off = data + ((len + 7ULL) & ~7ULL);
	}
	/* A header without the end marker is fine if it ends with the space. */
	return 0;
}

static int parse_backing_name(const uint8_t *buf, size_t len, uint64_t cs, struct qcow2_header *h, char *err,
			      size_t errlen)
{
	uint64_t off = h->backing_file_offset, n = h->backing_file_size;
	uint64_t limit = cs < len ? cs : len;

	if (!off)
		return 0;
	if (n == 0 || n > QCOW2_MAX_BACKING_NAME)
		return cv_fmt(err, errlen, "backing file name length %llu out of range (1..%d)",
			      (unsigned long long)n, QCOW2_MAX_BACKING_NAME);
	if (off < h->header_length || off > limit || n > limit - off)
		return cv_fmt(err, errlen, "backing file name at %llu (%llu bytes) is outside the header cluster",
			      (unsigned long long)off, (unsigned long long)n);
	if (memchr(buf + off, 0, n))
		return cv_fmt(err, errlen, "backing file name contains a NUL byte");
	memcpy(h->backing_file, buf + off, n);
	h->backing_file[n] = 0;
	return 0;
}

static int check_layout(const struct qcow2_header *h, uint64_t file_size, char *err, size_t errlen)
{
	uint64_t cs = 1ULL << h->cluster_bits, need = qcow2_l1_entries(h->size, h->cluster_bits);
	uint64_t rt_bytes = (uint64_t)h->refcount_table_clusters << h->cluster_bits;
	struct range r[4] = {
		{ "header", 0, cs },
		{ "L1 table", h->l1_table_offset, ((uint64_t)h->l1_size * 8 + cs - 1) & ~(cs - 1) },
		{ "refcount table", h->refcount_table_offset, rt_bytes },
		{ "snapshot table", h->snapshots_offset, h->nb_snapshots ? cs : 0 },
	};
	int rc;

	if (h->size > (1ULL << 62))
		return cv_fmt(err, errlen, "virtual size %llu is too large", (unsigned long long)h->size);
	if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return cv_fmt(err, errlen, "L1 size %u is too large (at most %u entries)", h->l1_size,
			      QCOW2_MAX_L1_BYTES / 8);
	if (h->l1_size < need)
		return cv_fmt(err, errlen, "L1 size %u is too small for the virtual size %llu (needs %llu)", h->l1_size,
			      (unsigned long long)h->size, (unsigned long long)need);
	if (h->l1_size && (rc = check_table("L1 table", h->l1_table_offset, (uint64_t)h->l1_size * 8, cs, file_size,
					    err, errlen)))
		return rc;
	if (!h->refcount_table_clusters || rt_bytes > QCOW2_MAX_RT_BYTES)
		return cv_fmt(err, errlen, "refcount table of %u clusters is out of range (1..%llu)",
			      h->refcount_table_clusters, (unsigned long long)(QCOW2_MAX_RT_BYTES / cs));
	if ((rc = check_table("refcount table", h->refcount_table_offset, rt_bytes, cs, file_size, err, errlen)))
		return rc;
	if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return cv_fmt(err, errlen, "%u snapshots is too many", h->nb_snapshots);
	if (h->nb_snapshots && (rc = check_table("snapshot table", h->snapshots_offset, 1, cs, file_size, err, errlen)))
		return rc;
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			if (overlap(&r[i], &r[j]))
				return cv_fmt(err, errlen, "%s (0x%llx) overlaps the %s (0x%llx)", r[j].what,
					      (unsigned long long)r[j].off, r[i].what, (unsigned long long)r[i].off);
	return 0;
}

int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct qcow2_header *h, char *err,
		       size_t errlen)
{
	uint64_t cs;
	int rc;

	memset(h, 0, sizeof(*h));
	if (len < QCOW2_V2_HEADER || file_size < QCOW2_V2_HEADER)
		return cv_fmt(err, errlen, "file too short for a qcow2 header (%llu bytes)",
			      (unsigned long long)(len < file_size ? len : file_size));
	if (memcmp(buf, QCOW2_MAGIC, 4))
		return cv_fmt(err, errlen, "bad qcow2 magic");
	h->version = get32(buf + 4);
	h->backing_file_offset = get64(buf + 8);
	h->backing_file_size = get32(buf + 16);
	h->cluster_bits = get32(buf + 20);
	h->size = get64(buf + 24);
	h->crypt_method = get32(buf + 32);
	h->l1_size = get32(buf + 36);
	h->l1_table_offset = get64(buf + 40);
	h->refcount_table_offset = get64(buf + 48);
	h->refcount_table_clusters = get32(buf + 56);
	h->nb_snapshots = get32(buf + 60);
	h->snapshots_offset = get64(buf + 64);
	if (h->version != 2 && h->version != 3)
		return cv_fmt(err, errlen, "unsupported qcow2 version %u (2 or 3)", h->version);
	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return cv_fmt(err, errlen, "cluster_bits %u out of range (%d..%d)", h->cluster_bits,
			      QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
	cs = 1ULL << h->cluster_bits;
	if (h->version == 2) {
		h->refcount_order = 4;
		h->header_length = QCOW2_V2_HEADER;
	} else {
		if (len < QCOW2_V3_HEADER)
			return cv_fmt(err, errlen, "file too short for a qcow2 v3 header (%zu bytes)", len);
		h->incompatible_features = get64(buf + 72);
		h->compatible_features = get64(buf + 80);
		h->autoclear_features = get64(buf + 88);
		h->refcount_order = get32(buf + 96);
		h->header_length = get32(buf + 100);
		if (h->header_length < QCOW2_V3_HEADER || h->header_length % 8 || h->header_length > cs ||
		    h->header_length > len)
			return cv_fmt(err, errlen, "header_length %u out of range (%d..%llu, a multiple of 8)",
				      h->header_length, QCOW2_V3_HEADER, (unsigned long long)(cs < len ? cs : len));
		if (h->refcount_order > 6)
			return cv_fmt(err, errlen, "refcount_order %u out of range (0..6)", h->refcount_order);
		if ((rc = parse_features(buf, h, err, errlen)))
			return rc;
	}
	if (h->crypt_method)
		return cv_fmt(err, errlen, "encrypted images (crypt_method %u) are not supported", h->crypt_method);
	if ((rc = check_layout(h, file_size, err, errlen)))
		return rc;
	if ((rc = parse_backing_name(buf, len, cs, h, err, errlen)))
		return rc;
	{
		size_t end = cs < len ? cs : len;

		if (h->backing_file_offset && h->backing_file_offset < end)
			end = h->backing_file_offset;
		if (h->version >= 3 && (rc = parse_extensions(buf, end, h, err, errlen)))
			return rc;
	}
	return 0;
}

int qcow2_read_header(int fd, const char *path, struct qcow2_header *h, uint64_t *header_bytes, uint64_t *file_size)
{
	uint8_t *buf = malloc(1u << QCOW2_MAX_CLUSTER_BITS);
	char err[256];
	struct stat st;
	uint32_t bits;
	size_t len;
	int rc = CV_EFAIL;

	if (fstat(fd, &st) < 0 || !buf) {
		cv_err("%s: %s", path, buf ? strerror(errno) : "out of memory");
		goto out;
	}
	*file_size = (uint64_t)st.st_size;
	/* The header, its extensions and the backing name are in cluster 0. */
	len = *file_size < 512 ? *file_size : 512;
	if (len >= 24) {
		if ((rc = pread_full(fd, buf, len, 0)))
			goto unreadable;
		memcpy(&bits, buf + 20, 4);
		bits = be32toh(bits);
		if (bits >= QCOW2_MIN_CLUSTER_BITS && bits <= QCOW2_MAX_CLUSTER_BITS && (1ULL << bits) > len)
			len = (1ULL << bits) < *file_size ? (size_t)1 << bits : *file_size;
		if ((rc = pread_full(fd, buf, len, 0)))
			goto unreadable;
	}
	if (qcow2_header_parse(buf, len, *file_size, h, err, sizeof(err))) {
		cv_err("%s: invalid qcow2 image: %s", path, err);
		rc = CV_EINPUT;
		goto out;
	}
	*header_bytes = len;
	rc = 0;
	goto out;
unreadable:
	cv_err("%s: cannot read the qcow2 header: %s", path, strerror(-rc));
	rc = CV_EFAIL;
out:
	free(buf);
	return rc;
}
