#include "manager/attach.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "manager/bundle.h"
#include "manager/client.h"
#include "manager/vmproc.h"
#include "util/err.h"
#include "vmm/console.h"

static int connect_console(const char *name)
{
	char path[PATH_MAX];
	int fd, rc;

	if ((rc = bundle_file(name, BUNDLE_CONSOLE, path, sizeof(path))))
		return rc;
	if ((fd = unix_connect(path)) < 0) {
		cv_err("cannot attach to VM '%s': %s", name, strerror(-fd));
		return CV_EFAIL;
	}
	return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int console_attach(const char *name)
{
	struct console con;
	struct vm_status st;
	uint8_t in[4096], out[4096];
	int fd, rc;
	bool detached = false;

	if ((rc = bundle_require(name)) || (rc = vmproc_status(name, &st)))
		return rc;
	if (!st.pid) {
		cv_err("VM '%s' is not running (%s)", name, vm_state_name(st.state));
		return CV_EINPUT;
	}
	if ((fd = connect_console(name)) < 0)
		return fd;
	if ((rc = console_open(&con, STDIN_FILENO))) {
		close(fd);
		return rc;
	}
	fprintf(stderr, "cellvm: attached to VM %s; Ctrl-A x detaches (the VM keeps running)\r\n", name);
	while (!detached) {
		struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
		enum console_action act;
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents) {
			n = read(fd, out, sizeof(out));
			if (n <= 0) {
				fprintf(stderr, "\r\ncellvm: VM %s's console closed\r\n", name);
				break;
			}
			if (write_all(STDOUT_FILENO, out, (size_t)n))
				break;
		}
		if (p[0].revents) {
			size_t m;

			n = read(STDIN_FILENO, in, sizeof(in));
			if (n <= 0)
				break;
			m = console_filter(&con, in, (size_t)n, out, &act);
			if (m && write_all(fd, out, m))
				break;
			detached = act == CONSOLE_QUIT;
		}
	}
	console_restore(&con);
	close(fd);
	if (detached)
		fprintf(stderr, "\ncellvm: detached from VM %s (still running)\n", name);
	return 0;
}
