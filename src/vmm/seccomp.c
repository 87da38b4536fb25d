#include "vmm/seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "util/err.h"
#include "util/module.h"
#include "vmm/console.h"

/* Every thread: memory, time, locks, signals, and I/O on descriptors it was
 * given. */
static const int common_calls[] = {
	SCMP_SYS(read),		 SCMP_SYS(write),	  SCMP_SYS(readv),	    SCMP_SYS(writev),
	SCMP_SYS(pread64),	 SCMP_SYS(pwrite64),	  SCMP_SYS(preadv),	    SCMP_SYS(pwritev),
	SCMP_SYS(preadv2),	 SCMP_SYS(pwritev2),	  SCMP_SYS(lseek),	    SCMP_SYS(close),
	SCMP_SYS(fstat),	 SCMP_SYS(newfstatat),	  SCMP_SYS(statx),	    SCMP_SYS(futex),
	SCMP_SYS(madvise),	 SCMP_SYS(munmap),	  SCMP_SYS(mremap),	    SCMP_SYS(brk),
	SCMP_SYS(rt_sigreturn),	 SCMP_SYS(rt_sigprocmask), SCMP_SYS(sigaltstack),   SCMP_SYS(restart_syscall),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),    SCMP_SYS(gettimeofday),
	SCMP_SYS(sched_yield),	 SCMP_SYS(getpid),	  SCMP_SYS(gettid),	    SCMP_SYS(tgkill),
	SCMP_SYS(getrandom),	 SCMP_SYS(rseq),	  SCMP_SYS(set_robust_list), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(exit),		 SCMP_SYS(exit_group),	  SCMP_SYS(poll),	    SCMP_SYS(ppoll),
	SCMP_SYS(io_uring_enter), SCMP_SYS(sendmsg),	  SCMP_SYS(sendto),	    SCMP_SYS(recvfrom),
	SCMP_SYS(recvmsg),	 SCMP_SYS(fcntl),
};

/* Block workers also sync and reshape image files, and an NBD disk's
 * worker connects again when its server went away. */
static const int worker_calls[] = {
	SCMP_SYS(fsync),       SCMP_SYS(fdatasync),   SCMP_SYS(fallocate),  SCMP_SYS(ftruncate),
	SCMP_SYS(sync_file_range), SCMP_SYS(connect), SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),
	SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(shutdown),
};

/* A guest driver that starts a device (on its vCPU's thread) puts the
 * device's descriptors in the event loop and arms its timers (the
 * balloon's statistics); a balloon queue served there gives pages back. */
static const int vcpu_calls[] = { SCMP_SYS(epoll_ctl), SCMP_SYS(timerfd_settime), SCMP_SYS(fallocate) };

/* The main thread builds VMs (a reboot builds a new one), serves the API,
 * takes snapshots and migrates: it opens files and sockets and starts
 * threads. Everything it starts inherits this filter, so it holds what the
 * other kinds need too. */
static const int vmm_calls[] = {
	SCMP_SYS(openat),	  SCMP_SYS(open),	    SCMP_SYS(unlink),	      SCMP_SYS(unlinkat),
	SCMP_SYS(rename),	  SCMP_SYS(renameat),	    SCMP_SYS(renameat2),      SCMP_SYS(link),
	SCMP_SYS(linkat),	  SCMP_SYS(mkdir),	    SCMP_SYS(mkdirat),	      SCMP_SYS(access),
	SCMP_SYS(faccessat),	  SCMP_SYS(faccessat2),	    SCMP_SYS(readlink),	      SCMP_SYS(readlinkat),
	SCMP_SYS(getdents64),	  SCMP_SYS(statfs),	    SCMP_SYS(fstatfs),	      SCMP_SYS(fchmod),
	SCMP_SYS(umask),	  SCMP_SYS(flock),	    SCMP_SYS(fsync),	      SCMP_SYS(fdatasync),
	SCMP_SYS(fallocate),	  SCMP_SYS(ftruncate),	    SCMP_SYS(sync_file_range), SCMP_SYS(copy_file_range),
	SCMP_SYS(sendfile),	  SCMP_SYS(dup),	    SCMP_SYS(dup2),	      SCMP_SYS(dup3),
	SCMP_SYS(pipe2),	  SCMP_SYS(eventfd2),	    SCMP_SYS(epoll_create1),  SCMP_SYS(epoll_ctl),
	SCMP_SYS(epoll_wait),	  SCMP_SYS(epoll_pwait),    SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime),
	SCMP_SYS(signalfd4),	  SCMP_SYS(select),	    SCMP_SYS(pselect6),	      SCMP_SYS(bind),
	SCMP_SYS(listen),	  SCMP_SYS(accept4),	    SCMP_SYS(accept),	    SCMP_SYS(connect),	      SCMP_SYS(getsockname),
	SCMP_SYS(getpeername),	  SCMP_SYS(setsockopt),	    SCMP_SYS(getsockopt),     SCMP_SYS(shutdown),
	SCMP_SYS(sendmmsg),	  SCMP_SYS(recvmmsg),	    SCMP_SYS(socketpair),     SCMP_SYS(io_uring_setup),
	SCMP_SYS(io_uring_register), SCMP_SYS(memfd_create), SCMP_SYS(mbind),	      SCMP_SYS(get_mempolicy),
	SCMP_SYS(membarrier),	  SCMP_SYS(rt_sigaction),   SCMP_SYS(prctl),	      SCMP_SYS(sched_setaffinity),
	SCMP_SYS(getuid),	  SCMP_SYS(geteuid),	    SCMP_SYS(getgid),	      SCMP_SYS(getegid),
	SCMP_SYS(uname),	  SCMP_SYS(sysinfo),	    SCMP_SYS(getrusage),      SCMP_SYS(times),
	SCMP_SYS(fchdir),	  SCMP_SYS(getcwd),	    SCMP_SYS(mlock),	      SCMP_SYS(munlock),
	SCMP_SYS(msync),	  SCMP_SYS(mincore),	    SCMP_SYS(utimensat),      SCMP_SYS(fchown),
};

/* What a vCPU does to its own vCPU, to the VM's interrupt lines, and to the
 * terminal when it reports a refusal. */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN,	   KVM_GET_REGS,	KVM_SET_REGS,	     KVM_GET_SREGS,	 KVM_SET_SREGS,
	KVM_GET_MSRS,	   KVM_SET_MSRS,	KVM_GET_FPU,	     KVM_SET_FPU,	 KVM_GET_LAPIC,
	KVM_SET_LAPIC,	   KVM_GET_XSAVE,	KVM_GET_XSAVE2,	     KVM_SET_XSAVE,	 KVM_GET_XCRS,
	KVM_SET_XCRS,	   KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_GET_MP_STATE,	 KVM_SET_MP_STATE,
	KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS,	KVM_GET_CPUID2,	     KVM_SET_CPUID2,	 KVM_KVMCLOCK_CTRL,
	KVM_GET_TSC_KHZ,   KVM_SET_TSC_KHZ,	KVM_IRQ_LINE,	     KVM_IRQ_LINE_STATUS, KVM_SIGNAL_MSI,
	/* a guest driver enabling a queue or vector wires its eventfds */
	KVM_IOEVENTFD,	   KVM_IRQFD,		KVM_SET_GSI_ROUTING, TUNSETOFFLOAD,	 TUNSETVNETHDRSZ,
};

/* Any thread that reports a refusal puts the terminal back first. */
static const unsigned long tty_ioctls[] = { TCGETS, TCSETS };

/* Besides those: building VMs, their devices, state, and the host's taps. */
static const unsigned long vmm_ioctls[] = {
	KVM_GET_API_VERSION,	 KVM_CHECK_EXTENSION,	   KVM_CREATE_VM,	      KVM_GET_VCPU_MMAP_SIZE,
	KVM_GET_SUPPORTED_CPUID, KVM_GET_MSR_INDEX_LIST,   KVM_CREATE_VCPU,	      KVM_CREATE_IRQCHIP,
	KVM_CREATE_PIT2,	 KVM_GET_IRQCHIP,	   KVM_SET_IRQCHIP,	      KVM_GET_PIT2,
	KVM_SET_PIT2,		 KVM_GET_CLOCK,		   KVM_SET_CLOCK,	      KVM_SET_TSS_ADDR,
	KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_USER_MEMORY_REGION, KVM_SET_GSI_ROUTING,   KVM_IRQFD,
	KVM_IOEVENTFD,		 KVM_GET_DIRTY_LOG,	   KVM_ENABLE_CAP,	      TUNSETIFF,
	TUNGETIFF,		 TUNSETOFFLOAD,		   TUNSETVNETHDRSZ,	      TUNSETPERSIST,
	SIOCGIFFLAGS,		 SIOCSIFFLAGS,		   SIOCGIFINDEX,	      SIOCGIFHWADDR,
	BLKGETSIZE64,		 BLKSSZGET,		   FIONREAD,		      FIONBIO,
	TCSETSW,		 TCSETSF,		   TIOCGWINSZ,
};

static const int families[] = { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK };

static enum seccomp_mode current_mode = SECCOMP_OFF;
static struct sock_fprog programs[SECCOMP_KINDS];
static const char *kind_names[SECCOMP_KINDS] = { "main", "vcpu", "worker" };

/* For the SIGSYS handler, which must not allocate: names of the calls. */
#define MAX_SYSCALL 512
static char *call_names[MAX_SYSCALL];
static _Thread_local char thread_label[32];

int seccomp_parse_mode(const char *v, enum seccomp_mode *out, char *err, size_t errlen)
{
	if (!strcmp(v, "kill"))
		*out = SECCOMP_KILL;
	else if (!strcmp(v, "log"))
		*out = SECCOMP_LOG;
	else if (!strcmp(v, "off"))
		*out = SECCOMP_OFF;
	else
		return cv_fmt(err, errlen, "invalid --seccomp '%s': use kill, log or off", v);
	return 0;
}

int seccomp_default_mode(enum seccomp_mode *out, char *err, size_t errlen)
{
	const char *env = getenv("CELLVM_SECCOMP");

	*out = SECCOMP_KILL;
	if (!env || !*env)
		return 0;
	if (seccomp_parse_mode(env, out, err, errlen))
		return cv_fmt(err, errlen, "invalid CELLVM_SECCOMP '%s': use kill, log or off", env);
	return 0;
}

static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, unsigned long n, unsigned base)
{
	char digits[24];
	size_t k = 0;

	do
		digits[k++] = "0123456789abcdef"[n % base];
	while ((n /= base) && k < sizeof(digits));
	while (k && at < cap)
		buf[at++] = digits[--k];
	return at;
}

/* Async-signal-safe: formats by hand, then puts the terminal back and ends
 * the process (the refused call may have been inside malloc). */
static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	char msg[256];
	size_t n = 0, cap = sizeof(msg) - 1;
	int nr = si->si_syscall;

	(void)sig;
	n = put(msg, n, cap, "cellvm: seccomp: thread ");
	n = put(msg, n, cap, thread_label[0] ? thread_label : "main");
	n = put(msg, n, cap, " made syscall ");
	n = put(msg, n, cap, nr >= 0 && nr < MAX_SYSCALL && call_names[nr] ? call_names[nr] : "?");
	n = put(msg, n, cap, " (");
	n = put_num(msg, n, cap, (unsigned long)(unsigned)nr, 10);
	if (nr == SYS_ioctl) {
		/* Which request: the lists are per request. */
		n = put(msg, n, cap, ", request 0x");
		n = put_num(msg, n, cap, (unsigned long)((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RSI], 16);
	}
	n = put(msg, n, cap, "), which its filter refuses; the VM ends (--seccomp log reports instead)\n");
	msg[n] = 0;
	console_restore_active();
	if (write(STDERR_FILENO, msg, n) < 0) {
		/* nothing left to tell it to */
	}
	_exit(1);
}

static int add_calls(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);

		if (rc)
			return rc;
	}
	return 0;
}

static int add_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, size_t n)
{
	/* The kernel reads the request as 32 bits, so compare only those. */
	for (size_t i = 0; i < n; i++) {
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					  SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, reqs[i] & 0xffffffffUL));

		if (rc)
			return rc;
	}
	return 0;
}

/* Rules every kind shares whose arguments matter: no executable mappings
 * (guest data never becomes host code). */
static int add_memory_rules(scmp_filter_ctx ctx)
{
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));

	if (!rc)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	return rc;
}

/* Unix, IP and netlink sockets; never raw packets. */
static int add_socket_rules(scmp_filter_ctx ctx)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < sizeof(families) / sizeof(families[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
	return rc;
}

/* Threads only, never a new process; clone3's flags sit in memory a filter
 * cannot read, so it fails as absent and glibc falls back to clone. */
static int add_vmm_rules(scmp_filter_ctx ctx)
{
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				  SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));

	if (!rc)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* Threads it starts load their own, narrower filter on top. */
	if (!rc)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 1,
				      SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER));
	if (!rc)
		rc = add_socket_rules(ctx);
	if (!rc)
		rc = add_calls(ctx, vmm_calls, sizeof(vmm_calls) / sizeof(vmm_calls[0]));
	if (!rc)
		rc = add_ioctls(ctx, vmm_ioctls, sizeof(vmm_ioctls) / sizeof(vmm_ioctls[0]));
	return rc;
}

static int build_rules(scmp_filter_ctx ctx, enum seccomp_kind kind)
{
	int rc = add_calls(ctx, common_calls, sizeof(common_calls) / sizeof(common_calls[0]));

	if (!rc)
		rc = add_memory_rules(ctx);
	if (!rc)
		rc = add_ioctls(ctx, tty_ioctls, sizeof(tty_ioctls) / sizeof(tty_ioctls[0]));
	/* vCPU ioctls are in every kind: the main thread's filter is the
	 * vCPU threads' too. */
	if (!rc && kind != SECCOMP_WORKER)
		rc = add_ioctls(ctx, vcpu_ioctls, sizeof(vcpu_ioctls) / sizeof(vcpu_ioctls[0]));
	if (!rc && kind == SECCOMP_VCPU)
		rc = add_calls(ctx, vcpu_calls, sizeof(vcpu_calls) / sizeof(vcpu_calls[0]));
	if (!rc && kind == SECCOMP_WORKER)
		rc = add_calls(ctx, worker_calls, sizeof(worker_calls) / sizeof(worker_calls[0]));
	if (!rc && kind == SECCOMP_WORKER)
		rc = add_socket_rules(ctx);
	if (!rc && kind == SECCOMP_VMM)
		rc = add_vmm_rules(ctx);
	return rc;
}

/* libseccomp writes the program to a descriptor; read it back into memory
 * so that loading it later is one syscall. */
static int export_program(scmp_filter_ctx ctx, struct sock_fprog *out)
{
	int fd = memfd_create("cellvm-seccomp", MFD_CLOEXEC);
	off_t len;
	void *buf = NULL;
	int rc = CV_EFAIL;

	if (fd < 0)
		return CV_EFAIL;
	if (seccomp_export_bpf(ctx, fd) == 0 && (len = lseek(fd, 0, SEEK_END)) > 0 &&
	    len % sizeof(struct sock_filter) == 0 && len / sizeof(struct sock_filter) <= BPF_MAXINSNS &&
	    (buf = malloc((size_t)len)) && pread(fd, buf, (size_t)len, 0) == len) {
		out->len = (unsigned short)(len / sizeof(struct sock_filter));
		out->filter = buf;
		buf = NULL;
		rc = 0;
	}
	free(buf);
	close(fd);
	return rc;
}

static int compile(enum seccomp_kind kind, uint32_t deny, struct sock_fprog *out)
{
	scmp_filter_ctx ctx = seccomp_init(deny);
	int rc;

	if (!ctx)
		return CV_EFAIL;
	rc = build_rules(ctx, kind);
	if (rc) {
		cv_err("seccomp: cannot build the %s filter: %s", kind_names[kind], strerror(-rc));
		rc = CV_EFAIL;
	} else if ((rc = export_program(ctx, out))) {
		cv_err("seccomp: cannot compile the %s filter", kind_names[kind]);
	}
	seccomp_release(ctx);
	return rc;
}

int seccomp_configure(enum seccomp_mode mode)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };

	current_mode = SECCOMP_OFF;
	if (mode == SECCOMP_OFF)
		return 0;
	/* Local time zone rules are read once now, not under the filter. */
	tzset();
	for (int k = 0; k < SECCOMP_KINDS; k++) {
		free(programs[k].filter);
		programs[k].filter = NULL;
		if (compile(k, mode == SECCOMP_KILL ? SCMP_ACT_TRAP : SCMP_ACT_LOG, &programs[k]))
			return CV_EFAIL;
	}
	if (mode == SECCOMP_KILL) {
		for (int nr = 0; nr < MAX_SYSCALL; nr++)
			if (!call_names[nr])
				call_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSYS, &sa, NULL) < 0) {
			cv_err("seccomp: sigaction: %s", strerror(errno));
			return CV_EFAIL;
		}
	}
	current_mode = mode;
	return 0;
}

int seccomp_enter(enum seccomp_kind kind, const char *label)
{
	if (current_mode == SECCOMP_OFF)
		return 0;
	snprintf(thread_label, sizeof(thread_label), "%s", label);
	if (kind == SECCOMP_VMM)
		module_seal();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &programs[kind]) < 0) {
		cv_err("seccomp: cannot load the %s filter on thread %s: %s", kind_names[kind], label,
		       strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

int seccomp_worker_start(void)
{
	return seccomp_enter(SECCOMP_WORKER, "disk-worker");
}
