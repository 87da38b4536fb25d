#include "hw/vmgenid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "util/err.h"

int vmgenid_new(struct guest_mem *m, uint64_t addr)
{
	uint8_t *p = guest_mem_ptr(m, addr, VMGENID_LEN);
	uint8_t id[VMGENID_LEN];

	if (!p || getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
		cv_err("cannot make a VM generation ID: %s", p ? strerror(errno) : "no RAM at its address");
		return CV_EFAIL;
	}
	memcpy(p, id, sizeof(id));
	guest_mem_mark_dirty(m, p, sizeof(id));
	return 0;
}

int vmgenid_changed(struct guest_mem *m, uint64_t addr, struct pm *pm)
{
	if (vmgenid_new(m, addr))
		return CV_EFAIL;
	pm_gpe_raise(pm, VMGENID_GPE);
	return 0;
}
