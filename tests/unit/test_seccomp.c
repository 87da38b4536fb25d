/* The VMM's syscall filters: each case loads a filter in a forked child,
 * makes one call, and the parent reads how the child ended and what it
 * said. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmds/token.h"
#include "vmm/seccomp.h"

enum { CALL_OK = 0, CALL_FAILED = 3 };

struct outcome {
	int status;	/* from waitpid */
	char said[512]; /* its stderr */
};

/* Runs call() in a child under kind's filter in mode; the child exits
 * CALL_OK if call returned true. */
static void run_filtered(enum seccomp_mode mode, enum seccomp_kind kind, const char *label, bool (*call)(void),
			 struct outcome *o)
{
	int pipefd[2];
	pid_t pid;
	ssize_t n, got = 0;

	memset(o, 0, sizeof(*o));
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		if (seccomp_configure(mode) || seccomp_enter(kind, label))
			_exit(CALL_FAILED + 1);
		_exit(call() ? CALL_OK : CALL_FAILED);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], o->said + got, sizeof(o->said) - 1 - (size_t)got)) > 0)
		got += n;
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &o->status, 0), pid);
}

static void assert_refused(const struct outcome *o, const char *needle)
{
	if (!WIFEXITED(o->status) || WEXITSTATUS(o->status) != 1)
		fail_msg("child was not ended by its filter (status %#x): %s", o->status, o->said);
	if (!strstr(o->said, needle))
		fail_msg("refusal message lacks '%s': %s", needle, o->said);
	if (!strchr(o->said, '\n') || strchr(o->said, '\n')[1])
		fail_msg("refusal is not one line: %s", o->said);
}

static void assert_allowed(const struct outcome *o)
{
	if (!WIFEXITED(o->status) || WEXITSTATUS(o->status) != CALL_OK)
		fail_msg("child failed (status %#x): %s", o->status, o->said);
}

static bool inet_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	return fd >= 0 && close(fd) == 0;
}

static bool packet_socket(void)
{
	int fd = socket(AF_PACKET, SOCK_RAW, 0);

	if (fd >= 0)
		close(fd);
	return true; /* whatever the kernel said: the filter let it through */
}

static bool unix_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	return fd >= 0 && close(fd) == 0;
}

static bool kvm_run_bad_fd(void)
{
	return ioctl(-1, KVM_RUN, 0) < 0 && errno == EBADF;
}

static bool tunsetiff(void)
{
	return ioctl(-1, TUNSETIFF, 0) < 0;
}

static bool exec_mapping(void)
{
	return mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED;
}

static bool data_mapping(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p != MAP_FAILED && munmap(p, 4096) == 0;
}

static bool make_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p != MAP_FAILED && mprotect(p, 4096, PROT_READ | PROT_EXEC) == 0;
}

static bool new_process(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return pid > 0;
}

static void *nothing(void *arg)
{
	return arg;
}

static bool new_thread(void)
{
	pthread_t t;

	return pthread_create(&t, NULL, nothing, NULL) == 0 && pthread_join(t, NULL) == 0;
}

static bool open_file(void)
{
	FILE *f = fopen("/proc/self/status", "r");

	return f && fclose(f) == 0;
}

static bool sync_stderr(void)
{
	return fsync(STDERR_FILENO) == 0 || errno == EINVAL;
}

static void test_vcpu_refuses_sockets_and_names_them(void **state)
{
	struct outcome o;

	(void)state;
	run_filtered(SECCOMP_KILL, SECCOMP_VCPU, "vcpu7", inet_socket, &o);
	assert_refused(&o, "thread vcpu7 made syscall socket (41)");
}

static void test_vcpu_ioctls_by_request(void **state)
{
	struct outcome o;

	(void)state;
	run_filtered(SECCOMP_KILL, SECCOMP_VCPU, "vcpu0", kvm_run_bad_fd, &o);
	assert_allowed(&o);
	run_filtered(SECCOMP_KILL, SECCOMP_VCPU, "vcpu0", tunsetiff, &o);
	assert_refused(&o, "syscall ioctl (16, request 0x400454ca)");
}

static void test_no_executable_memory(void **state)
{
	struct outcome o;

	(void)state;
	for (int k = 0; k < SECCOMP_KINDS; k++) {
		run_filtered(SECCOMP_KILL, k, "t", data_mapping, &o);
		assert_allowed(&o);
		run_filtered(SECCOMP_KILL, k, "t", exec_mapping, &o);
		assert_refused(&o, "syscall mmap");
		run_filtered(SECCOMP_KILL, k, "t", make_exec, &o);
		assert_refused(&o, "syscall mprotect");
	}
}

static void test_vmm_socket_families(void **state)
{
	struct outcome o;

	(void)state;
	run_filtered(SECCOMP_KILL, SECCOMP_VMM, "main", unix_socket, &o);
	assert_allowed(&o);
	run_filtered(SECCOMP_KILL, SECCOMP_VMM, "main", inet_socket, &o);
	assert_allowed(&o);
	run_filtered(SECCOMP_KILL, SECCOMP_VMM, "main", packet_socket, &o);
	assert_refused(&o, "thread main made syscall socket");
}

static void test_vmm_threads_but_no_processes(void **state)
{
	struct outcome o;

	(void)state;
	run_filtered(SECCOMP_KILL, SECCOMP_VMM, "main", new_thread, &o);
	assert_allowed(&o);
	run_filtered(SECCOMP_KILL, SECCOMP_VMM, "main", new_process, &o);
	assert_refused(&o, "syscall clone");
}

static void test_worker_syncs_but_opens_nothing(void **state)
{
	struct outcome o;

	(void)state;
	run_filtered(SECCOMP_KILL, SECCOMP_WORKER, "disk-worker", sync_stderr, &o);
	assert_allowed(&o);
	run_filtered(SECCOMP_KILL, SECCOMP_WORKER, "disk-worker", open_file, &o);
	assert_refused(&o, "thread disk-worker made syscall openat");
	run_filtered(SECCOMP_KILL, SECCOMP_VMM, "main", open_file, &o);
	assert_allowed(&o);
}

static void test_log_and_off_let_calls_through(void **state)
{
	struct outcome o;

	(void)state;
	run_filtered(SECCOMP_LOG, SECCOMP_VCPU, "vcpu0", packet_socket, &o);
	assert_allowed(&o);
	assert_string_equal(o.said, "");
	run_filtered(SECCOMP_OFF, SECCOMP_WORKER, "w", exec_mapping, &o);
	assert_allowed(&o);
}

/* Made before the filter goes on, as the VMM makes the MMDS's. */
static struct mmds_tokens tokens;

static bool token_round_trip(void)
{
	char tok[MMDS_TOKEN_MAX + 1];

	return !mmds_token_new(&tokens, 60, 1000, tok) && mmds_token_valid(&tokens, tok, strlen(tok), 2000) &&
	       !mmds_token_valid(&tokens, tok, strlen(tok), 61001);
}

/* MMDS V2 tokens are sealed by GnuTLS (the seal module) on whichever
 * thread serves the guest's request, after the filters went on. */
static void test_mmds_tokens_under_the_filters(void **state)
{
	struct outcome o;

	(void)state;
	assert_int_equal(mmds_tokens_init(&tokens, "vm1"), 0);
	run_filtered(SECCOMP_KILL, SECCOMP_VMM, "main", token_round_trip, &o);
	assert_allowed(&o);
	run_filtered(SECCOMP_KILL, SECCOMP_VCPU, "vcpu0", token_round_trip, &o);
	assert_allowed(&o);
	mmds_tokens_destroy(&tokens);
}

static void test_modes(void **state)
{
	enum seccomp_mode m;
	char err[128];

	(void)state;
	assert_int_equal(seccomp_parse_mode("kill", &m, err, sizeof(err)), 0);
	assert_int_equal(m, SECCOMP_KILL);
	assert_int_equal(seccomp_parse_mode("log", &m, err, sizeof(err)), 0);
	assert_int_equal(m, SECCOMP_LOG);
	assert_int_equal(seccomp_parse_mode("off", &m, err, sizeof(err)), 0);
	assert_int_equal(m, SECCOMP_OFF);
	assert_true(seccomp_parse_mode("strict", &m, err, sizeof(err)) != 0);
	assert_string_equal(err, "invalid --seccomp 'strict': use kill, log or off");

	unsetenv("CELLVM_SECCOMP");
	assert_int_equal(seccomp_default_mode(&m, err, sizeof(err)), 0);
	assert_int_equal(m, SECCOMP_KILL);
	setenv("CELLVM_SECCOMP", "log", 1);
	assert_int_equal(seccomp_default_mode(&m, err, sizeof(err)), 0);
	assert_int_equal(m, SECCOMP_LOG);
	setenv("CELLVM_SECCOMP", "loud", 1);
	assert_true(seccomp_default_mode(&m, err, sizeof(err)) != 0);
	assert_string_equal(err, "invalid CELLVM_SECCOMP 'loud': use kill, log or off");
	unsetenv("CELLVM_SECCOMP");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_mmds_tokens_under_the_filters),
		cmocka_unit_test(test_vcpu_refuses_sockets_and_names_them),
		cmocka_unit_test(test_vcpu_ioctls_by_request),
		cmocka_unit_test(test_no_executable_memory),
		cmocka_unit_test(test_vmm_socket_families),
		cmocka_unit_test(test_vmm_threads_but_no_processes),
		cmocka_unit_test(test_worker_syncs_but_opens_nothing),
		cmocka_unit_test(test_log_and_off_let_calls_through),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
