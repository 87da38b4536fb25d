#include "vmm/dirty_log.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/err.h"

int dirty_log_start(struct dirty_log *d, struct guest_mem *m)
{
	uint64_t words = guest_mem_bitmap_words(m);

	memset(d, 0, sizeof(*d));
	d->pending = calloc(words, 8);
	d->scratch = calloc(words + 1, 8);
	m->dirty = calloc(words, 8);
	if (!d->pending || !d->scratch || !m->dirty) {
		cv_err("dirty page tracking: out of memory for %llu pages", (unsigned long long)guest_mem_pages(m));
		goto fail;
	}
	if (guest_mem_set_slot_flags(m, KVM_MEM_LOG_DIRTY_PAGES))
		goto fail;
	d->on = true;
	return 0;
fail:
	dirty_log_free(d);
	free(m->dirty);
	m->dirty = NULL;
	return CV_EFAIL;
}

/* ORs KVM's log of `slot` (pages [first, first+n) of RAM) into pending. */
static int collect_slot(struct dirty_log *d, const struct guest_mem *m, unsigned slot, uint64_t first, uint64_t n)
{
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = d->scratch };

	memset(d->scratch, 0, (n + 63) / 64 * 8);
	if (ioctl(m->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
		cv_err("KVM_GET_DIRTY_LOG (slot %u): %s", slot, strerror(errno));
		return CV_EFAIL;
	}
	for (uint64_t w = 0; w < (n + 63) / 64; w++) {
		uint64_t bits = d->scratch[w];

		while (bits) {
			uint64_t pg = first + w * 64 + (uint64_t)__builtin_ctzll(bits);

			d->pending[pg / 64] |= 1ULL << (pg % 64);
			bits &= bits - 1;
		}
	}
	return 0;
}

int dirty_log_collect(struct dirty_log *d, struct guest_mem *m)
{
	uint64_t low = m->low_size / 4096, words = guest_mem_bitmap_words(m);

	if (!d->on)
		return 0;
	if (collect_slot(d, m, 0, 0, low) ||
	    (m->size > m->low_size && collect_slot(d, m, 1, low, guest_mem_pages(m) - low)))
		return CV_EFAIL;
	for (uint64_t w = 0; w < words; w++)
		d->pending[w] |= __atomic_exchange_n(&m->dirty[w], 0, __ATOMIC_RELAXED);
	return 0;
}

void dirty_log_clear(struct dirty_log *d, const struct guest_mem *m)
{
	if (d->on)
		memset(d->pending, 0, guest_mem_bitmap_words(m) * 8);
}

void dirty_log_free(struct dirty_log *d)
{
	free(d->pending);
	free(d->scratch);
	d->pending = d->scratch = NULL;
	d->on = false;
}

void dirty_log_stop(struct dirty_log *d, struct guest_mem *m)
{
	uint64_t *vmm = m->dirty;

	if (!d->on)
		return;
	guest_mem_set_slot_flags(m, 0);
	m->dirty = NULL;
	free(vmm);
	dirty_log_free(d);
}

void dirty_log_mark_all(struct dirty_log *d, const struct guest_mem *m)
{
	if (d->on)
		memset(d->pending, 0xff, guest_mem_bitmap_words(m) * 8);
}
