#include "snapshot/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "util/atomic_file.h"
#include "util/err.h"


static uint32_t crc(const uint8_t *p, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);

	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		c = crc32(c, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)c;
}

int snap_file_parse(const uint8_t *buf, size_t len, struct snap_file *f, char *err, size_t errlen)
{
	struct snap_reader r;
	char magic[8];
	uint32_t version, n;

	memset(f, 0, sizeof(*f));
	snap_reader_init(&r, buf, len);
	snap_get_bytes(&r, magic, 8);
	version = snap_get_u32(&r);
	n = snap_get_u32(&r);
	if (!snap_reader_ok(&r) || memcmp(magic, SNAP_MAGIC, 8))
		return cv_fmt(err, errlen, "not a cellvm snapshot state file");
	if (version != SNAP_FORMAT_VERSION)
		return cv_fmt(err, errlen, "snapshot format version %u; this cellvm reads version %u", version,
			      SNAP_FORMAT_VERSION);
	if (n > SNAP_MAX_SECTIONS)
		return cv_fmt(err, errlen, "%u sections (at most %u)", n, SNAP_MAX_SECTIONS);
	if (n && !(f->sec = calloc(n, sizeof(*f->sec))))
		return cv_fmt(err, errlen, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		struct snap_section *s = &f->sec[i];
		uint64_t slen;
		uint32_t sum;
		bool null;

		snap_get_str(&r, s->id, sizeof(s->id), &null);
		s->version = snap_get_u32(&r);
		slen = snap_get_u64(&r);
		sum = snap_get_u32(&r);
		if (!snap_reader_ok(&r) || null || !s->id[0] || slen > snap_reader_left(&r)) {
			cv_fmt(err, errlen, "truncated or malformed at section %u%s%s%s", i, s->id[0] ? " ('" : "",
			       s->id, s->id[0] ? "')" : "");
			snap_file_free(f);
			return CV_EINPUT;
		}
		s->data = buf + r.off;
		s->len = (size_t)slen;
		r.off += s->len;
		if (crc(s->data, s->len) != sum) {
			cv_fmt(err, errlen, "section '%s' is corrupt (CRC mismatch)", s->id);
			snap_file_free(f);
			return CV_EINPUT;
		}
		for (uint32_t j = 0; j < i; j++) {
			if (!strcmp(f->sec[j].id, s->id)) {
				cv_fmt(err, errlen, "section '%s' appears twice", s->id);
				snap_file_free(f);
				return CV_EINPUT;
			}
		}
		f->n = i + 1;
	}
	if (snap_reader_left(&r)) {
		snap_file_free(f);
		return cv_fmt(err, errlen, "%zu stray bytes after the last section", snap_reader_left(&r));
	}
	return 0;
}

int snap_file_read(const char *path, struct snap_file *f, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int rc;

	memset(f, 0, sizeof(*f));
	if (fd < 0)
		return cv_fmt(err, errlen, "%s", strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > SNAP_FILE_MAX) {
		close(fd);
		return cv_fmt(err, errlen, "not a regular file of at most %u MiB", SNAP_FILE_MAX >> 20);
	}
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return cv_fmt(err, errlen, "out of memory");
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)st.st_size) {
		free(buf);
		return cv_fmt(err, errlen, "short read");
	}
	if ((rc = snap_file_parse(buf, got, f, err, errlen))) {
		free(buf);
		return rc;
	}
	f->buf = buf;
	return 0;
}

void snap_file_free(struct snap_file *f)
{
	free(f->sec);
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

struct snap_section *snap_file_get(struct snap_file *f, const char *id)
{
	for (unsigned i = 0; i < f->n; i++) {
		if (!strcmp(f->sec[i].id, id)) {
			f->sec[i].used = true;
			return &f->sec[i];
		}
	}
	return NULL;
}

void snap_file_start(struct snap_file_writer *w)
{
	snap_writer_init(&w->out);
	w->n = 0;
	snap_put_bytes(&w->out, SNAP_MAGIC, 8);
	snap_put_u32(&w->out, SNAP_FORMAT_VERSION);
	snap_put_u32(&w->out, 0); /* section count, patched by snap_file_write */
}

void snap_file_add(struct snap_file_writer *w, const char *id, uint32_t version, const struct snap_writer *payload)
{
	snap_put_str(&w->out, id);
	snap_put_u32(&w->out, version);
	snap_put_u64(&w->out, payload->len);
	snap_put_u32(&w->out, crc(payload->buf, payload->len));
	snap_put_bytes(&w->out, payload->buf, payload->len);
	if (payload->oom)
		w->out.oom = true;
	w->n++;
}

void snap_file_finish(struct snap_file_writer *w)
{
	if (w->out.oom)
		return;
	for (unsigned i = 0; i < 4; i++)
		w->out.buf[8 + 4 + i] = (uint8_t)(w->n >> (8 * i));
}

int snap_file_write(struct snap_file_writer *w, const char *path)
{
	char tmp[4096];
	int fd;

	if (w->out.oom) {
		cv_err("snapshot: out of memory while encoding the VM's state");
		return CV_EFAIL;
	}
	snap_file_finish(w);
	if ((fd = atomic_file_open(path, "snapshot file", tmp, sizeof(tmp))) < 0)
		return fd;
	if (atomic_file_pwrite(fd, w->out.buf, w->out.len, 0))
		return atomic_file_abort(fd, tmp, "snapshot file");
	return atomic_file_commit(fd, tmp, path, "snapshot file");
}

void snap_file_writer_free(struct snap_file_writer *w)
{
	snap_writer_free(&w->out);
}
