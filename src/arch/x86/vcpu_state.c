#include "arch/x86/vcpu_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/err.h"

#define MSR_IA32_TSC 0x10

/* MSRs some KVMs keep state in without listing them in
 * KVM_GET_MSR_INDEX_LIST: PVM's VIF page address and mode flags, without
 * which a restored PVM guest's interrupt flag is not the host's. Each is
 * saved only if this vCPU reads it. */
static const uint32_t unlisted_msrs[] = { 0x4b564d10 };

static int get(int fd, unsigned long req, void *arg, const char *name)
{
	if (ioctl(fd, req, arg) < 0) {
		cv_err("%s: %s", name, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

/* Every MSR KVM offers to save, minus those this vCPU cannot read (KVM
 * lists MSRs of features the guest's CPUID may lack). */
static int get_msrs(int kvm_fd, int vcpu_fd, struct x86_vcpu_state *s)
{
	_Alignas(struct kvm_msr_list) uint8_t lbuf[sizeof(struct kvm_msr_list) + VCPU_MAX_MSRS * sizeof(uint32_t)];
	_Alignas(struct kvm_msrs) uint8_t mbuf[sizeof(struct kvm_msrs) + VCPU_MAX_MSRS * sizeof(struct kvm_msr_entry)];
	struct kvm_msr_list *list = (struct kvm_msr_list *)lbuf;
	struct kvm_msrs *m = (struct kvm_msrs *)mbuf;
	uint32_t next = 0;

	list->nmsrs = VCPU_MAX_MSRS;
	if (get(kvm_fd, KVM_GET_MSR_INDEX_LIST, list, "KVM_GET_MSR_INDEX_LIST"))
		return CV_EFAIL;
	s->nmsrs = 0;
	/* KVM_GET_MSRS stops at the first MSR it cannot read and returns how
	 * many it did: skip that one and go on after it. */
	while (next < list->nmsrs) {
		int got;

		memset(mbuf, 0, sizeof(mbuf));
		m->nmsrs = list->nmsrs - next;
		for (uint32_t i = 0; i < m->nmsrs; i++)
			m->entries[i].index = list->indices[next + i];
		got = ioctl(vcpu_fd, KVM_GET_MSRS, m);
		if (got < 0) {
			cv_err("KVM_GET_MSRS: %s", strerror(errno));
			return CV_EFAIL;
		}
		for (int i = 0; i < got; i++)
			s->msrs[s->nmsrs++] = m->entries[i];
		next += (uint32_t)got + 1;
	}
	for (size_t i = 0; i < sizeof(unlisted_msrs) / sizeof(unlisted_msrs[0]); i++) {
		bool listed = false;

		for (uint32_t k = 0; k < list->nmsrs; k++)
			listed |= list->indices[k] == unlisted_msrs[i];
		memset(mbuf, 0, sizeof(mbuf));
		m->nmsrs = 1;
		m->entries[0].index = unlisted_msrs[i];
		if (!listed && s->nmsrs < VCPU_MAX_MSRS && ioctl(vcpu_fd, KVM_GET_MSRS, m) == 1)
			s->msrs[s->nmsrs++] = m->entries[0];
	}
	return 0;
}

int x86_vcpu_get(int kvm_fd, int vm_fd, int vcpu_fd, const struct cpuid_table *cpuid, const uint64_t *tsc,
		 struct x86_vcpu_state *s)
{
	int xsave2 = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	int khz;

	memset(s, 0, sizeof(*s));
	s->cpuid = *cpuid;
	if (get(vcpu_fd, KVM_GET_REGS, &s->regs, "KVM_GET_REGS") ||
	    get(vcpu_fd, KVM_GET_SREGS, &s->sregs, "KVM_GET_SREGS") ||
	    get(vcpu_fd, KVM_GET_LAPIC, &s->lapic, "KVM_GET_LAPIC") ||
	    get(vcpu_fd, KVM_GET_DEBUGREGS, &s->debugregs, "KVM_GET_DEBUGREGS") ||
	    get(vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events, "KVM_GET_VCPU_EVENTS") ||
	    get(vcpu_fd, KVM_GET_MP_STATE, &s->mp, "KVM_GET_MP_STATE"))
		return CV_EFAIL;
	s->xsave_len = xsave2 > (int)sizeof(struct kvm_xsave) ? (uint32_t)xsave2 : sizeof(struct kvm_xsave);
	if (!(s->xsave = calloc(1, s->xsave_len))) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	s->has_xsave = ioctl(vcpu_fd, xsave2 > 0 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, s->xsave) == 0;
	if (!s->has_xsave) {
		free(s->xsave);
		s->xsave = NULL;
		s->xsave_len = 0;
		if (get(vcpu_fd, KVM_GET_FPU, &s->fpu, "KVM_GET_FPU"))
			return CV_EFAIL;
	}
	s->has_xcrs = ioctl(vcpu_fd, KVM_GET_XCRS, &s->xcrs) == 0;
	if (get_msrs(kvm_fd, vcpu_fd, s))
		return CV_EFAIL;
	for (uint32_t i = 0; tsc && i < s->nmsrs; i++)
		if (s->msrs[i].index == MSR_IA32_TSC)
			s->msrs[i].data = *tsc;
	khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
	s->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	return 0;
}

static int set(int fd, unsigned long req, const void *arg, const char *name)
{
	if (ioctl(fd, req, arg) < 0) {
		cv_err("restore: %s: %s", name, strerror(errno));
		return CV_EFAIL;
	}
	return 0;
}

static int set_msrs(int vcpu_fd, const struct x86_vcpu_state *s)
{
	_Alignas(struct kvm_msrs) uint8_t mbuf[sizeof(struct kvm_msrs) + VCPU_MAX_MSRS * sizeof(struct kvm_msr_entry)];
	struct kvm_msrs *m = (struct kvm_msrs *)mbuf;
	int done;

	memset(mbuf, 0, sizeof(mbuf));
	/* The TSC first: MSRs such as TSC_DEADLINE are relative to it. */
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index == MSR_IA32_TSC)
			m->entries[m->nmsrs++] = s->msrs[i];
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index != MSR_IA32_TSC)
			m->entries[m->nmsrs++] = s->msrs[i];
	done = ioctl(vcpu_fd, KVM_SET_MSRS, m);
	if (done < 0 || (uint32_t)done != m->nmsrs) {
		cv_err("restore: KVM_SET_MSRS refused MSR 0x%x: %s", done < 0 ? 0 : m->entries[done].index,
		       done < 0 ? strerror(errno) : "not settable on this host");
		return CV_EFAIL;
	}
	return 0;
}

int x86_vcpu_set(int vcpu_fd, const struct x86_vcpu_state *s)
{
	struct kvm_vcpu_events ev = s->events;

	/* Order matters: SREGS carries the APIC base and EFER the rest
	 * depends on; the LAPIC must be in its saved timer mode before the
	 * TSC deadline MSR is written; events and MP state go last. */
	if (set(vcpu_fd, KVM_SET_SREGS, &s->sregs, "KVM_SET_SREGS") ||
	    set(vcpu_fd, KVM_SET_REGS, &s->regs, "KVM_SET_REGS"))
		return CV_EFAIL;
	if (s->has_xsave ? set(vcpu_fd, KVM_SET_XSAVE, s->xsave, "KVM_SET_XSAVE")
			 : set(vcpu_fd, KVM_SET_FPU, &s->fpu, "KVM_SET_FPU"))
		return CV_EFAIL;
	if (s->has_xcrs && set(vcpu_fd, KVM_SET_XCRS, &s->xcrs, "KVM_SET_XCRS"))
		return CV_EFAIL;
	if (set(vcpu_fd, KVM_SET_LAPIC, &s->lapic, "KVM_SET_LAPIC") || set_msrs(vcpu_fd, s) ||
	    set(vcpu_fd, KVM_SET_DEBUGREGS, &s->debugregs, "KVM_SET_DEBUGREGS") ||
	    set(vcpu_fd, KVM_SET_MP_STATE, &s->mp, "KVM_SET_MP_STATE"))
		return CV_EFAIL;
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | KVM_VCPUEVENT_VALID_SHADOW;
	return set(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS");
}

void x86_vcpu_state_free(struct x86_vcpu_state *s)
{
	free(s->xsave);
	s->xsave = NULL;
}

void x86_vcpu_advance_tsc(struct x86_vcpu_state *s, uint64_t ns)
{
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index == MSR_IA32_TSC)
			s->msrs[i].data += (uint64_t)((unsigned __int128)ns * s->tsc_khz / 1000000);
}

static void put_blob(struct snap_writer *w, const void *p, size_t n)
{
	snap_put_u32(w, (uint32_t)n);
	snap_put_bytes(w, p, n);
}

static void get_blob(struct snap_reader *r, void *p, size_t n, const char *what)
{
	if (snap_get_u32(r) != n) {
		snap_reader_fail(r, what);
		return;
	}
	snap_get_bytes(r, p, n);
}

void x86_vcpu_encode(struct snap_writer *w, const struct x86_vcpu_state *s)
{
	snap_put_u32(w, s->cpuid.nent);
	snap_put_bytes(w, s->cpuid.e, s->cpuid.nent * sizeof(s->cpuid.e[0]));
	put_blob(w, &s->regs, sizeof(s->regs));
	put_blob(w, &s->sregs, sizeof(s->sregs));
	snap_put_u8(w, s->has_xsave);
	if (s->has_xsave)
		put_blob(w, s->xsave, s->xsave_len);
	else
		put_blob(w, &s->fpu, sizeof(s->fpu));
	snap_put_u8(w, s->has_xcrs);
	if (s->has_xcrs)
		put_blob(w, &s->xcrs, sizeof(s->xcrs));
	put_blob(w, &s->lapic, sizeof(s->lapic));
	put_blob(w, &s->debugregs, sizeof(s->debugregs));
	put_blob(w, &s->events, sizeof(s->events));
	snap_put_u32(w, s->mp.mp_state);
	snap_put_u32(w, s->nmsrs);
	for (uint32_t i = 0; i < s->nmsrs; i++) {
		snap_put_u32(w, s->msrs[i].index);
		snap_put_u64(w, s->msrs[i].data);
	}
	snap_put_u32(w, s->tsc_khz);
}

int x86_vcpu_decode(struct snap_reader *r, struct x86_vcpu_state *s)
{
	memset(s, 0, sizeof(*s));
	s->cpuid.nent = snap_get_u32(r);
	if (s->cpuid.nent > CPUID_MAX_ENTRIES)
		snap_reader_fail(r, "too many CPUID entries");
	else
		snap_get_bytes(r, s->cpuid.e, s->cpuid.nent * sizeof(s->cpuid.e[0]));
	get_blob(r, &s->regs, sizeof(s->regs), "register block of the wrong size");
	get_blob(r, &s->sregs, sizeof(s->sregs), "segment register block of the wrong size");
	s->has_xsave = snap_get_bool(r);
	if (s->has_xsave && snap_reader_ok(r)) {
		uint32_t n = snap_get_u32(r);

		if (n < sizeof(struct kvm_xsave) || n > (1u << 20)) {
			snap_reader_fail(r, "XSAVE area of an impossible size");
		} else if (!(s->xsave = calloc(1, n))) {
			snap_reader_fail(r, "out of memory");
		} else {
			s->xsave_len = n;
			snap_get_bytes(r, s->xsave, n);
		}
	} else if (!s->has_xsave) {
		get_blob(r, &s->fpu, sizeof(s->fpu), "FPU block of the wrong size");
	}
	s->has_xcrs = snap_get_bool(r);
	if (s->has_xcrs)
		get_blob(r, &s->xcrs, sizeof(s->xcrs), "XCR block of the wrong size");
	get_blob(r, &s->lapic, sizeof(s->lapic), "local APIC block of the wrong size");
	get_blob(r, &s->debugregs, sizeof(s->debugregs), "debug register block of the wrong size");
	get_blob(r, &s->events, sizeof(s->events), "event block of the wrong size");
	s->mp.mp_state = snap_get_u32(r);
	s->nmsrs = snap_get_u32(r);
	if (s->nmsrs > VCPU_MAX_MSRS)
		snap_reader_fail(r, "too many MSRs");
	for (uint32_t i = 0; i < s->nmsrs && snap_reader_ok(r); i++) {
		s->msrs[i].index = snap_get_u32(r);
		s->msrs[i].data = snap_get_u64(r);
	}
	s->tsc_khz = snap_get_u32(r);
	if (!snap_reader_ok(r)) {
		x86_vcpu_state_free(s);
		return CV_EINPUT;
	}
	return 0;
}

/* The leaves whose registers are feature bits (a guest may rely on every
 * set bit staying set). */
static const struct {
	uint32_t fn, idx;
	const char *name;
} feature_leaves[] = {
	{ 0x1, 0, "1" }, { 0x7, 0, "7.0" }, { 0x7, 1, "7.1" }, { 0xd, 1, "0xd.1" },
	{ 0x80000001, 0, "0x80000001" }, { 0x80000007, 0, "0x80000007" }, { 0x80000008, 0, "0x80000008" },
};

static const struct kvm_cpuid_entry2 *find(const struct cpuid_table *t, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < t->nent && i < CPUID_MAX_ENTRIES; i++)
		if (t->e[i].function == fn && (!(t->e[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || t->e[i].index == idx))
			return &t->e[i];
	return NULL;
}

int x86_cpuid_check(const struct cpuid_table *saved, const struct cpuid_table *host, char *err, size_t errlen)
{
	static const char *const regs[] = { "eax", "ebx", "ecx", "edx" };

	for (size_t l = 0; l < sizeof(feature_leaves) / sizeof(feature_leaves[0]); l++) {
		const struct kvm_cpuid_entry2 *s = find(saved, feature_leaves[l].fn, feature_leaves[l].idx);
		const struct kvm_cpuid_entry2 *h = find(host, feature_leaves[l].fn, feature_leaves[l].idx);
		uint32_t sv[4], hv[4] = { 0 };

		if (!s)
			continue;
		/* 1.ebx and 0x80000008.eax/ebx hold IDs and sizes, not features;
		 * 1.ecx bit 27 (OSXSAVE) follows the guest's CR4. */
		sv[0] = s->eax, sv[1] = s->ebx, sv[2] = s->ecx, sv[3] = s->edx;
		if (h)
			hv[0] = h->eax, hv[1] = h->ebx, hv[2] = h->ecx, hv[3] = h->edx;
		for (unsigned k = 0; k < 4; k++) {
			uint32_t missing;

			if ((feature_leaves[l].fn == 1 && k < 2) || (feature_leaves[l].fn == 0x80000008 && k < 3) ||
			    (feature_leaves[l].fn == 0xd && k != 0))
				continue;
			missing = sv[k] & ~hv[k];
			if (feature_leaves[l].fn == 1 && k == 2)
				missing &= ~(1u << 27);
			if (missing)
				return cv_fmt(err, errlen,
					      "the guest saw CPU features this host lacks: CPUID %s %s bit %d "
					      "(saved 0x%08x, host 0x%08x)",
					      feature_leaves[l].name, regs[k], __builtin_ctz(missing), sv[k], hv[k]);
		}
	}
	return 0;
}
