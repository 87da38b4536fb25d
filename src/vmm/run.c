#include "vmm/run.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"

#define DEFAULT_HINT_SECONDS 5
#define FIFO_FULL_POLL_MS 10

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double hint_seconds(void)
{
	const char *s = getenv("CELLVM_PVM_HINT_SECONDS");
	char *end;
	double v;

	if (!s || !*s)
		return DEFAULT_HINT_SECONDS;
	v = strtod(s, &end);
	return (*end || v < 0) ? DEFAULT_HINT_SECONDS : v;
}

/* Moves what the console has to the UART. Returns false once input ends. */
static bool pump_input(struct vm *vm, struct console *con, size_t space)
{
	uint8_t in[256], out[256];
	enum console_action act;
	ssize_t n;
	size_t m;

	n = read(con->in_fd, in, space < sizeof(in) ? space : sizeof(in));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	m = console_filter(con, in, (size_t)n, out, &act);
	serial_receive(&vm->serial, out, m);
	if (act == CONSOLE_QUIT)
		vm_request_exit(vm, VM_EXIT_STOPPED);
	return true;
}

static void take_signal(struct vm *vm, int sig_fd)
{
	struct signalfd_siginfo si;

	if (read(sig_fd, &si, sizeof(si)) == sizeof(si))
		cv_err("stopping the VM on %s", strsignal((int)si.ssi_signo));
	vm_request_exit(vm, VM_EXIT_STOPPED);
}

enum vm_exit vm_run(struct vm *vm, struct console *con, int sig_fd)
{
	double start = now_s(), hint_at = start + hint_seconds();
	bool input = true, hinted = !vm->kvm->pvm;

	if (vm_start(vm))
		goto out;
	while (vm_running(vm)) {
		struct pollfd p[3] = {
			{ .fd = vm->event_fd, .events = POLLIN },
			{ .fd = sig_fd, .events = POLLIN },
			{ .fd = con->in_fd, .events = POLLIN },
		};
		size_t space = input ? serial_rx_space(&vm->serial) : 0;
		nfds_t nfds = space ? 3 : 2;
		int timeout = -1;

		if (input && !space)
			timeout = FIFO_FULL_POLL_MS;
		if (!hinted) {
			int left = (int)((hint_at - now_s()) * 1000) + 1;

			timeout = (timeout < 0 || left < timeout) ? (left > 0 ? left : 0) : timeout;
		}
		if (poll(p, nfds, timeout) < 0 && errno != EINTR) {
			cv_err("poll: %s", strerror(errno));
			vm_request_exit(vm, VM_EXIT_FAILED);
			break;
		}
		if (p[1].revents & POLLIN)
			take_signal(vm, sig_fd);
		if (nfds == 3 && p[2].revents)
			input = pump_input(vm, con, space);
		if (!hinted && now_s() >= hint_at) {
			hinted = true;
			if (!serial_has_output(&vm->serial))
				cv_err("hint: no guest output after %.0f s. This host's KVM is PVM (kvm_pvm), where only "
				       "a kernel with PVM guest support runs at full speed; others crawl. "
				       "See README.md, 'Guest kernels'.", hint_at - start);
		}
	}
out:
	vm_stop(vm);
	return (enum vm_exit)atomic_load(&vm->exit);
}
