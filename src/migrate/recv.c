#include "migrate/migrate.h"

#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/stream.h"
#include "migrate/tls.h"
#include "util/err.h"
#include "vmm/config.h"

/* Compares without leaking where the first difference is. */
static bool token_ok(const uint8_t *got, size_t len, const char *want)
{
	size_t n = strlen(want);
	uint8_t diff = len != n;

	for (size_t i = 0; i < len && i < n; i++)
		diff |= got[i] ^ (uint8_t)want[i];
	return !diff;
}

static void reply(struct mig_link *l, uint32_t code, const char *msg)
{
	uint32_t le = htole32(code);

	mig_send(l, MIG_REPLY, &le, 4, msg, strlen(msg));
}

/* One PAGES record into ram: every count, length and page checked. */
static int take_pages(struct incoming *in, const uint8_t *rec, long len)
{
	uint64_t pages = in->ram_size / MIG_PAGE;
	uint32_t n;

	if (len < 4)
		return CV_EINPUT;
	memcpy(&n, rec, 4);
	n = le32toh(n);
	if (!n || n > MIG_BATCH || (uint64_t)len != 4 + (uint64_t)n * (8 + MIG_PAGE))
		return CV_EINPUT;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t p;

		memcpy(&p, rec + 4 + (size_t)i * 8, 8);
		p = le64toh(p);
		if (p >= pages)
			return CV_EINPUT;
		memcpy((uint8_t *)in->ram + p * MIG_PAGE, rec + 4 + (size_t)n * 8 + (size_t)i * MIG_PAGE, MIG_PAGE);
	}
	return 0;
}

/* The records after a good HELLO, up to END. */
static int take_stream(struct incoming *in, uint8_t *rec, const struct storage_dest *dest, const char **why)
{
	for (;;) {
		uint32_t type;
		long len = mig_recv(&in->link, &type, rec, MIG_MAX_PAYLOAD);
		uint64_t size;

		if (len < 0) {
			*why = len == -EPROTO ? "a record longer than the protocol allows" : strerror((int)-len);
			return len == -EPROTO ? CV_EINPUT : CV_EFAIL;
		}
		if (type == MIG_RAM && !in->ram && len == 8) {
			memcpy(&size, rec, 8);
			size = le64toh(size);
			if (size < CV_MIN_MEMORY || size > CV_MAX_MEMORY || size % MIG_PAGE) {
				*why = "a RAM size out of range";
				return CV_EINPUT;
			}
			in->ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (in->ram == MAP_FAILED) {
				in->ram = NULL;
				*why = "no memory for the guest's RAM";
				return CV_EFAIL;
			}
			in->ram_size = size;
		} else if (type == MIG_DISKS && in->ram && !in->disks.n) {
			int rc = storage_in_disks(&in->disks, rec, (size_t)len, dest, why);

			if (rc)
				return rc;
		} else if (type == MIG_BLOCKS && in->disks.n) {
			int rc = storage_in_blocks(&in->disks, rec, (size_t)len, why);

			if (rc)
				return rc;
		} else if (type == MIG_PAGES && in->ram) {
			if (take_pages(in, rec, len)) {
				*why = "a PAGES record out of range";
				return CV_EINPUT;
			}
		} else if (type == MIG_STATE && in->ram && !in->state) {
			if (!(in->state = malloc((size_t)len ? (size_t)len : 1))) {
				*why = "out of memory";
				return CV_EFAIL;
			}
			memcpy(in->state, rec, (size_t)len);
			in->state_len = (size_t)len;
		} else if (type == MIG_END && in->state && !len) {
			return storage_in_finish(&in->disks, why);
		} else {
			*why = "a record out of place";
			return CV_EINPUT;
		}
	}
}

static void release(struct incoming *in, bool failed)
{
	if (failed)
		storage_in_discard(&in->disks);
	if (in->ram)
		munmap(in->ram, in->ram_size);
	free(in->state);
	mig_tls_end(&in->link);
	if (in->link.fd >= 0)
		close(in->link.fd);
	in->ram = NULL;
	in->state = NULL;
	in->link.fd = -1;
}

int migration_receive_on(int fd, const struct mig_accept *a, struct incoming *in)
{
	uint8_t *rec = malloc(MIG_MAX_PAYLOAD);
	const char *why = NULL;
	uint32_t type, version;
	int rc = CV_EINPUT;
	long len;

	memset(in, 0, sizeof(*in));
	in->link.fd = fd;
	if (!rec) {
		cv_err("out of memory");
		release(in, true);
		return CV_EFAIL;
	}
	/* Without TLS on both sides nothing can be said to the source. */
	if (a->tls && (rc = mig_tls_start(&in->link, a->token, true))) {
		cv_err("refused the incoming migration: no TLS with this token");
		free(rec);
		release(in, true);
		return rc;
	}
	len = mig_recv(&in->link, &type, rec, 12 + MIG_MAX_TOKEN);
	if (len < 12 || type != MIG_HELLO || memcmp(rec, MIG_MAGIC, 8)) {
		why = a->tls ? "not a cellvm migration stream" : "not a cellvm migration stream (or one in TLS: "
								  "start the destination with --migrate-tls)";
	} else if (memcpy(&version, rec + 8, 4), le32toh(version) != MIG_VERSION) {
		why = "another version of the migration stream";
	} else if (!token_ok(rec + 12, (size_t)len - 12, a->token)) {
		why = "wrong migration token";
	} else {
		reply(&in->link, 0, "go on");
		rc = take_stream(in, rec, &a->dest, &why);
	}
	free(rec);
	if (rc) {
		cv_err("refused the incoming migration: %s", why);
		reply(&in->link, 1, why);
		release(in, true);
	}
	return rc;
}

int migration_receive(const char *spec, const struct mig_accept *a, struct incoming *in)
{
	int lfd, fd;

	memset(in, 0, sizeof(*in));
	in->link.fd = -1;
	if ((lfd = mig_listen(spec)) < 0)
		return lfd;
	fprintf(stderr, "cellvm: waiting for a migration on %s%s\n", spec, a->tls ? " (TLS)" : "");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	if (fd < 0) {
		cv_err("migration: accept: %s", strerror(errno));
		return CV_EFAIL;
	}
	mig_tune(fd);
	return migration_receive_on(fd, a, in);
}

void migration_reply(struct incoming *in, int code, const char *msg)
{
	if (in->link.fd >= 0)
		reply(&in->link, (uint32_t)code, msg);
	release(in, code != 0);
}
