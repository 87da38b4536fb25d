#include "vmm/run.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"

#define DEFAULT_HINT_SECONDS 5
#define INPUT_RETRY_MS 10

struct runner {
	struct vm *vm;
	struct console *con;
	int sig_fd;
	bool input;     /* console input still open */
	bool in_polled; /* stdin is in the event loop (not for regular files) */
	bool in_paused; /* the UART's FIFO was full */
};

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

/* Moves what the console has to the UART while it has room. */
static void pump_input(struct runner *r)
{
	uint8_t in[256], out[256];
	size_t space = vm_console_space(r->vm), m;
	enum console_action act;
	ssize_t n;

	if (!space) {
		if (r->in_polled && !r->in_paused)
			event_loop_modify(&r->vm->loop, r->con->in_fd, 0);
		r->in_paused = true;
		return;
	}
	if (r->in_paused && r->in_polled)
		event_loop_modify(&r->vm->loop, r->con->in_fd, EPOLLIN);
	r->in_paused = false;
	n = read(r->con->in_fd, in, space < sizeof(in) ? space : sizeof(in));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		r->input = false;
		if (r->in_polled)
			event_loop_del(&r->vm->loop, r->con->in_fd);
		return;
	}
	m = console_filter(r->con, in, (size_t)n, out, &act);
	vm_console_input(r->vm, out, m);
	if (act == CONSOLE_QUIT)
		vm_request_exit(r->vm, VM_EXIT_STOPPED);
}

static void on_input(void *opaque, uint32_t events)
{
	(void)events;
	pump_input(opaque);
}

static void on_signal(void *opaque, uint32_t events)
{
	struct runner *r = opaque;
	struct signalfd_siginfo si;

	(void)events;
	if (read(r->sig_fd, &si, sizeof(si)) == sizeof(si))
		cv_err("stopping the VM on %s", strsignal((int)si.ssi_signo));
	vm_request_exit(r->vm, VM_EXIT_STOPPED);
}

static void on_vm_event(void *opaque, uint32_t events)
{
	(void)opaque;
	(void)events; /* the loop condition reads the exit reason */
}

enum vm_exit vm_run(struct vm *vm, struct console *con, int sig_fd)
{
	struct runner r = { .vm = vm, .con = con, .sig_fd = sig_fd, .input = true };
	double start = now_s(), hint_at = start + hint_seconds();
	bool hinted = !vm->kvm->pvm;

	if (event_loop_add(&vm->loop, vm->event_fd, EPOLLIN, on_vm_event, NULL) ||
	    event_loop_add(&vm->loop, sig_fd, EPOLLIN, on_signal, &r)) {
		vm_request_exit(vm, VM_EXIT_FAILED);
		goto out;
	}
	/* epoll refuses regular files; those are read on a timer instead. */
	r.in_polled = event_loop_add(&vm->loop, con->in_fd, EPOLLIN, on_input, &r) == 0;
	if (vm_start(vm))
		goto out;
	while (vm_running(vm)) {
		int timeout = -1;

		if (r.input && (!r.in_polled || r.in_paused))
			timeout = INPUT_RETRY_MS;
		if (!hinted) {
			int left = (int)((hint_at - now_s()) * 1000) + 1;

			if (left < 0)
				left = 0;
			timeout = (timeout < 0 || left < timeout) ? left : timeout;
		}
		if (event_loop_run_once(&vm->loop, timeout)) {
			cv_err("event loop: %s", strerror(errno));
			vm_request_exit(vm, VM_EXIT_FAILED);
			break;
		}
		if (r.input && (!r.in_polled || r.in_paused))
			pump_input(&r);
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
	event_loop_del(&vm->loop, con->in_fd);
	event_loop_del(&vm->loop, sig_fd);
	event_loop_del(&vm->loop, vm->event_fd);
	return (enum vm_exit)atomic_load(&vm->exit);
}
