/* libFuzzer target: a migration stream as a listening destination reads
 * it (the bytes come from a stranger on the network until the token is
 * checked, from the source after). The input goes in through a socket
 * pair; the token is the fixed "fuzz", so inputs that pass it reach the
 * RAM, DISKS, BLOCKS, PAGES, STATE and END records; disks' copies go
 * to a directory of the fuzzer's own. */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/migrate.h"
#include "migrate/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/cellvm-fuzz-migrate-XXXXXX";

/* Every copy made in it is removed again: the directory is empty. */
static void remove_dir(void)
{
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mig_accept a = { .token = "fuzz" };
	struct incoming in;
	int sv[2];

	if (!a.dest.dir) {
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			abort();
		}
		a.dest.dir = dir;
		atexit(remove_dir);
	}
	/* What fits a socket buffer without a reader. */
	if (size > 64 * 1024 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (write(sv[0], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[0], SHUT_WR);
	if (migration_receive_on(sv[1], &a, &in) == 0)
		migration_reply(&in, 1, "fuzzed");
	close(sv[0]);
	return 0;
}
