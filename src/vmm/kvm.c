#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/err.h"

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_IRQCHIP, "IRQCHIP" },         { KVM_CAP_USER_MEMORY, "USER_MEMORY" },
	{ KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR" }, { KVM_CAP_PIT2, "PIT2" },
	{ KVM_CAP_EXT_CPUID, "EXT_CPUID" },     { KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT" },
	{ KVM_CAP_MP_STATE, "MP_STATE" },
};

bool kvm_host_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

int kvm_open(struct kvm *k)
{
	const char *dev = getenv("CELLVM_KVM_DEVICE");
	int v;

	memset(k, 0, sizeof(*k));
	if (!dev || !*dev)
		dev = "/dev/kvm";
	k->fd = open(dev, O_RDWR | O_CLOEXEC);
	if (k->fd < 0) {
		cv_err("cannot open %s: %s (is the kvm module loaded and are you in the kvm group?)", dev,
		       strerror(errno));
		return CV_EINPUT;
	}
	v = ioctl(k->fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		cv_err("%s is not a usable KVM device (API version %d, need %d)", dev, v, KVM_API_VERSION);
		goto fail_input;
	}
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(k->fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			cv_err("%s lacks KVM_CAP_%s, which cellvm needs (host kernel too old?)", dev,
			       required_caps[i].name);
			goto fail_input;
		}
	}
	k->run_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->run_size <= 0) {
		cv_err("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		goto fail;
	}
	v = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (v <= 0)
		v = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	k->max_vcpus = v > 0 ? (unsigned)v : 1;
	k->pvm = kvm_host_is_pvm();
	if (cpuid_supported(k->fd, &k->cpuid))
		goto fail;
	return 0;
fail_input:
	kvm_close(k);
	return CV_EINPUT;
fail:
	kvm_close(k);
	return CV_EFAIL;
}

void kvm_close(struct kvm *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
}
