/* The virtio-pci modern transport (src/virtio/pci.c) driven as a guest
 * driver would: config space through ECAM, BAR 0 through the PCI memory
 * window. The device behind it is a fake with two queues. MSI-X routes,
 * irqfds and ioeventfds need a real VM, so every test is skipped without
 * /dev/kvm. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "helpers.h"
#include "hw/pci.h"
#include "util/err.h"
#include "virtio/device.h"
#include "virtio/pci.h"
#include "vmm/bus.h"
#include "vmm/event_loop.h"
#include "vmm/irq.h"

#define ECAM 0xe0000000ULL
#define WIN 0xc0000000ULL
#define WIN_SIZE 0x10000000ULL
#define SLOT 1
#define NQ 2
#define QMAX 64
#define NVEC (NQ + 1)
#define RAM (1 * MiB)
#define DEV_FEATURES ((1ULL << 0) | (1ULL << 5))
#define NO_VEC VIRTIO_MSI_NO_VECTOR
#define MSIX_ENTRY_MASKED_BIT 1

#define CC(f) offsetof(struct virtio_pci_common_cfg, f)
#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK

struct cap {
	unsigned at; /* config-space offset of the capability */
	unsigned bar, len;
	uint32_t offset, length;
};

struct env {
	int kvm, vm;
	struct event_loop loop;
	struct irq_router irq;
	struct bus pio, mmio;
	struct pci_host h;
	struct guest_mem mem;
	struct virtio_dev dev;
	struct virtio_pci t;
	uint8_t config[8];
	uint64_t bar;
	/* What the fake device saw. */
	unsigned notified[NQ], activated, resets, config_writes;
	uint32_t config_write_off, config_write_len;
	/* Located by walking the capability list. */
	struct cap vcap[6]; /* by cfg_type, 1..5 */
	unsigned msix_cap;
	uint32_t notify_mult;
};

/* ---- the fake device ----------------------------------------------------- */

static void fake_notify(struct virtio_dev *d, unsigned q)
{
	struct env *e = d->priv;

	assert_true(q < NQ);
	e->notified[q]++;
}

static int fake_activate(struct virtio_dev *d)
{
	struct env *e = d->priv;

	e->activated++;
	return 0;
}

static void fake_reset(struct virtio_dev *d)
{
	struct env *e = d->priv;

	e->resets++;
}

static void fake_config_write(struct virtio_dev *d, uint32_t off, uint32_t len)
{
	struct env *e = d->priv;

	e->config_writes++;
	e->config_write_off = off;
	e->config_write_len = len;
}

static const struct virtio_ops fake_ops = {
	.name = "fake",
	.device_id = 2,
	.num_queues = NQ,
	.queue_max = QMAX,
	.notify = fake_notify,
	.activate = fake_activate,
	.reset = fake_reset,
	.config_write = fake_config_write,
};

/* ---- access helpers ------------------------------------------------------ */

static uint64_t ecam_addr(unsigned reg)
{
	return ECAM + ((uint64_t)SLOT << 15) + reg;
}

static uint32_t cfg_read(struct env *e, unsigned reg, unsigned size)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;

	assert_true(bus_access(&e->mmio, ecam_addr(reg), b, size, false));
	memcpy(&v, b, size);
	return v;
}

static void cfg_write(struct env *e, unsigned reg, unsigned size, uint32_t v)
{
	uint8_t b[4];

	memcpy(b, &v, 4);
	assert_true(bus_access(&e->mmio, ecam_addr(reg), b, size, true));
}

static uint64_t bar_read(struct env *e, uint64_t off, unsigned size)
{
	uint8_t b[8];
	uint64_t v = 0;

	memset(b, 0xcc, sizeof(b));
	assert_true(bus_access(&e->mmio, e->bar + off, b, size, false));
	memcpy(&v, b, size);
	return v;
}

static void bar_write(struct env *e, uint64_t off, unsigned size, uint64_t v)
{
	uint8_t b[8];

	memcpy(b, &v, 8);
	assert_true(bus_access(&e->mmio, e->bar + off, b, size, true));
}

static uint64_t common_off(struct env *e, size_t field)
{
	return e->vcap[VIRTIO_PCI_CAP_COMMON_CFG].offset + field;
}

#define COMMON_R(e, f) \
	bar_read(e, common_off(e, CC(f)), sizeof(((struct virtio_pci_common_cfg *)0)->f))
#define COMMON_W(e, f, v) \
	bar_write(e, common_off(e, CC(f)), sizeof(((struct virtio_pci_common_cfg *)0)->f), (v))

static void set_status(struct env *e, uint8_t s)
{
	COMMON_W(e, device_status, s);
}

static uint64_t msix_table(struct env *e)
{
	return cfg_read(e, e->msix_cap + 4, 4) & ~7u;
}

static uint64_t msix_pba(struct env *e)
{
	return cfg_read(e, e->msix_cap + 8, 4) & ~7u;
}

static uint32_t msix_entry_read(struct env *e, unsigned v, unsigned word)
{
	return (uint32_t)bar_read(e, msix_table(e) + 16 * v + 4 * word, 4);
}

static void msix_entry_write(struct env *e, unsigned v, unsigned word, uint32_t val)
{
	bar_write(e, msix_table(e) + 16 * v + 4 * word, 4, val);
}

static uint64_t pba_bits(struct env *e)
{
	return bar_read(e, msix_pba(e), 8);
}

static void signal_queue(struct env *e, unsigned q)
{
	pthread_mutex_lock(&e->dev.lock);
	e->dev.transport->signal_queue(&e->dev, q);
	pthread_mutex_unlock(&e->dev.lock);
}

static void signal_config(struct env *e)
{
	pthread_mutex_lock(&e->dev.lock);
	e->dev.transport->signal_config(&e->dev);
	pthread_mutex_unlock(&e->dev.lock);
}

/* Walks the capability list (bounded, so a loop fails the test) and records
 * the virtio structures and the MSI-X capability. */
static unsigned walk_caps(struct env *e)
{
	unsigned at = cfg_read(e, 0x34, 1), n = 0;

	memset(e->vcap, 0, sizeof(e->vcap));
	e->msix_cap = 0;
	assert_true(cfg_read(e, 0x06, 2) & 0x10); /* status: capability list */
	for (; at; at = cfg_read(e, at + 1, 1)) {
		unsigned id = cfg_read(e, at, 1);

		if (++n > 48)
			fail_msg("capability list does not end");
		if (at < 0x40 || at > 0xfc || at % 4)
			fail_msg("capability at 0x%x", at);
		if (id == 0x09) {
			unsigned type = cfg_read(e, at + 3, 1);

			if (type < 1 || type > 5)
				fail_msg("vendor capability of type %u", type);
			if (e->vcap[type].at)
				fail_msg("two capabilities of type %u", type);
			e->vcap[type] = (struct cap){ .at = at, .len = cfg_read(e, at + 2, 1), .bar = cfg_read(e, at + 4, 1),
						      .offset = cfg_read(e, at + 8, 4), .length = cfg_read(e, at + 12, 4) };
		} else if (id == 0x11) {
			if (e->msix_cap)
				fail_msg("two MSI-X capabilities");
			e->msix_cap = at;
		} else {
			fail_msg("unexpected capability 0x%02x at 0x%x", id, at);
		}
	}
	return n;
}

/* ---- fixture ------------------------------------------------------------- */

static int setup(void **state)
{
	struct env *e;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm;

	*state = NULL;
	if (kvm < 0)
		return 0; /* the tests skip */
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0 || ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		if (vm >= 0)
			close(vm);
		close(kvm);
		return 0;
	}
	e = calloc(1, sizeof(*e));
	assert_non_null(e);
	e->kvm = kvm;
	e->vm = vm;
	assert_int_equal(event_loop_init(&e->loop), 0);
	assert_int_equal(irq_router_init(&e->irq, vm), 0);
	guest_mem_layout(&e->mem, RAM, LAYOUT_MMIO_HOLE);
	e->mem.host = aligned_alloc(4096, RAM);
	assert_non_null(e->mem.host);
	memset(e->mem.host, 0, RAM);
	assert_int_equal(pci_host_init(&e->h, &e->pio, &e->mmio, ECAM, WIN, WIN_SIZE), 0);
	memcpy(e->config, "\x01\x02\x03\x04\x05\x06\x07\x08", sizeof(e->config));
	assert_int_equal(virtio_dev_init(&e->dev, &fake_ops, e, DEV_FEATURES, e->config, sizeof(e->config), &e->mem,
					 &e->loop),
			 0);
	assert_int_equal(virtio_pci_init(&e->t, &e->dev, &e->h, &e->irq, vm), 0);
	/* Firmware placed BAR 0; the driver turns decoding on. */
	e->bar = (cfg_read(e, 0x10, 4) & ~0xfULL) | (uint64_t)cfg_read(e, 0x14, 4) << 32;
	assert_true(e->bar >= WIN && e->bar < WIN + WIN_SIZE);
	cfg_write(e, 0x04, 2, 0x0006);
	walk_caps(e);
	e->notify_mult = cfg_read(e, e->vcap[VIRTIO_PCI_CAP_NOTIFY_CFG].at + 16, 4);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	if (!e)
		return 0;
	virtio_pci_destroy(&e->t);
	virtio_dev_destroy(&e->dev);
	pci_host_destroy(&e->h);
	irq_router_destroy(&e->irq);
	event_loop_destroy(&e->loop);
	free(e->mem.host);
	close(e->vm);
	close(e->kvm);
	free(e);
	return 0;
}

static struct env *env_of(void **state)
{
	if (!*state)
		skip(); /* no /dev/kvm, or no VM with an irqchip */
	return *state;
}

/* Features, FEATURES_OK, two queues in guest RAM, DRIVER_OK. */
static void bring_up(struct env *e)
{
	unsigned activated = e->activated;

	set_status(e, S_ACK | S_DRV);
	COMMON_W(e, guest_feature_select, 1);
	COMMON_W(e, guest_feature, 1); /* VERSION_1 */
	set_status(e, S_ACK | S_DRV | S_FOK);
	assert_int_equal(COMMON_R(e, device_status), S_ACK | S_DRV | S_FOK);
	for (unsigned q = 0; q < NQ; q++) {
		uint64_t base = 0x10000 * (q + 1);

		COMMON_W(e, queue_select, q);
		COMMON_W(e, queue_desc_lo, base);
		COMMON_W(e, queue_avail_lo, base + 0x1000);
		COMMON_W(e, queue_used_lo, base + 0x2000);
		COMMON_W(e, queue_enable, 1);
	}
	set_status(e, S_ACK | S_DRV | S_FOK | S_DOK);
	assert_int_equal(COMMON_R(e, device_status), S_ACK | S_DRV | S_FOK | S_DOK);
	assert_int_equal(e->activated, activated + 1);
}

/* ---- capabilities -------------------------------------------------------- */

static void test_identity(void **state)
{
	struct env *e = env_of(state);

	assert_int_equal(cfg_read(e, 0x00, 2), 0x1af4);
	assert_int_equal(cfg_read(e, 0x02, 2), 0x1040 + 2);
	assert_true(cfg_read(e, 0x08, 1) >= 1); /* modern devices: revision >= 1 */
	assert_int_equal(cfg_read(e, 0x2c, 2), 0x1af4);
	/* 64-bit memory BAR. */
	assert_int_equal(cfg_read(e, 0x10, 4) & 0x7, 0x4);
}

static void test_capability_list(void **state)
{
	struct env *e = env_of(state);
	uint64_t bar_size = e->t.pci.bar_size[0];

	for (unsigned type = 1; type <= 5; type++) {
		const struct cap *c = &e->vcap[type];

		if (!c->at)
			fail_msg("no virtio capability of type %u", type);
		assert_int_equal(c->bar, 0);
		assert_true(c->len >= sizeof(struct virtio_pci_cap));
		if (type != VIRTIO_PCI_CAP_PCI_CFG && (c->offset + (uint64_t)c->length > bar_size || !c->length))
			fail_msg("type %u structure [0x%x, +0x%x) is not inside the BAR", type, c->offset, c->length);
	}
	assert_true(e->vcap[VIRTIO_PCI_CAP_COMMON_CFG].length >= sizeof(struct virtio_pci_common_cfg));
	assert_int_equal(e->vcap[VIRTIO_PCI_CAP_NOTIFY_CFG].len, sizeof(struct virtio_pci_notify_cap));
	assert_int_equal(e->vcap[VIRTIO_PCI_CAP_PCI_CFG].len, sizeof(struct virtio_pci_cfg_cap));
	assert_int_equal(e->vcap[VIRTIO_PCI_CAP_DEVICE_CFG].length, sizeof(e->config));
	assert_true(e->vcap[VIRTIO_PCI_CAP_ISR_CFG].length >= 1);
	assert_true(e->notify_mult > 0 && e->notify_mult % 2 == 0);

	/* The offsets point at the right structures. */
	assert_int_equal(bar_read(e, e->vcap[VIRTIO_PCI_CAP_COMMON_CFG].offset + CC(num_queues), 2), NQ);
	for (unsigned i = 0; i < sizeof(e->config); i++)
		assert_int_equal(bar_read(e, e->vcap[VIRTIO_PCI_CAP_DEVICE_CFG].offset + i, 1), e->config[i]);
	signal_config(e);
	assert_int_equal(bar_read(e, e->vcap[VIRTIO_PCI_CAP_ISR_CFG].offset, 1), VIRTIO_PCI_ISR_CONFIG);

	/* MSI-X: one vector per queue plus config, table and PBA in BAR 0. */
	assert_int_not_equal(e->msix_cap, 0);
	assert_int_equal((cfg_read(e, e->msix_cap + 2, 2) & 0x7ff) + 1, NVEC);
	assert_int_equal(cfg_read(e, e->msix_cap + 4, 4) & 7, 0);
	assert_int_equal(cfg_read(e, e->msix_cap + 8, 4) & 7, 0);
	assert_true(msix_table(e) + 16 * NVEC <= bar_size);
	assert_true(msix_pba(e) + 8 <= bar_size);
	for (unsigned v = 0; v < NVEC; v++)
		assert_int_equal(msix_entry_read(e, v, 3), 1); /* masked at reset */
}

static void test_notify_cap_covers_queues(void **state)
{
	struct env *e = env_of(state);
	const struct cap *n = &e->vcap[VIRTIO_PCI_CAP_NOTIFY_CFG];

	assert_int_equal(COMMON_R(e, num_queues), NQ);
	for (unsigned q = 0; q < NQ; q++) {
		uint64_t off;

		COMMON_W(e, queue_select, q);
		off = (uint64_t)COMMON_R(e, queue_notify_off) * e->notify_mult;
		assert_true(off + 2 <= n->length);
		for (unsigned p = 0; p < q; p++) {
			COMMON_W(e, queue_select, p);
			assert_true(COMMON_R(e, queue_notify_off) * e->notify_mult != off);
		}
	}
}

/* ---- features ------------------------------------------------------------ */

static void test_device_features(void **state)
{
	struct env *e = env_of(state);
	uint64_t want = DEV_FEATURES | 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_RING_F_EVENT_IDX |
			1ULL << VIRTIO_RING_F_INDIRECT_DESC;

	COMMON_W(e, device_feature_select, 0);
	assert_int_equal(COMMON_R(e, device_feature_select), 0);
	assert_int_equal(COMMON_R(e, device_feature), (uint32_t)want);
	COMMON_W(e, device_feature_select, 1);
	assert_int_equal(COMMON_R(e, device_feature), want >> 32);
	assert_true(COMMON_R(e, device_feature) & 1); /* VERSION_1 is bit 32 */
	COMMON_W(e, device_feature_select, 2);
	assert_int_equal(COMMON_R(e, device_feature), 0);
	COMMON_W(e, device_feature_select, 0xffffffff);
	assert_int_equal(COMMON_R(e, device_feature), 0);
	/* device_feature is read-only. */
	COMMON_W(e, device_feature_select, 0);
	COMMON_W(e, device_feature, 0);
	assert_int_equal(COMMON_R(e, device_feature), (uint32_t)want);
}

static void test_features_ok(void **state)
{
	static const struct {
		uint32_t lo, hi;
		bool ok;
	} cases[] = {
		{ 0, 1, true },
		{ (uint32_t)DEV_FEATURES | 1u << VIRTIO_RING_F_EVENT_IDX, 1, true },
		{ (uint32_t)DEV_FEATURES, 0, false },  /* legacy: no VERSION_1 */
		{ 0, 0, false },
		{ 1u << 1, 1, false },                 /* bit 1 was not offered */
		{ 0, 1 | 1u << 8, false },             /* nor bit 40 */
		{ (uint32_t)DEV_FEATURES | 1u << 31, 1, false },
	};
	struct env *e = env_of(state);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t st;

		set_status(e, 0);
		set_status(e, S_ACK | S_DRV);
		COMMON_W(e, guest_feature_select, 0);
		COMMON_W(e, guest_feature, cases[i].lo);
		COMMON_W(e, guest_feature_select, 1);
		COMMON_W(e, guest_feature, cases[i].hi);
		assert_int_equal(COMMON_R(e, guest_feature), cases[i].hi);
		COMMON_W(e, guest_feature_select, 0);
		assert_int_equal(COMMON_R(e, guest_feature), cases[i].lo);
		set_status(e, S_ACK | S_DRV | S_FOK);
		st = (uint8_t)COMMON_R(e, device_status);
		if (!!(st & S_FOK) != cases[i].ok)
			fail_msg("features 0x%08x%08x: FEATURES_OK %s", cases[i].hi, cases[i].lo,
				 cases[i].ok ? "refused" : "kept");
		assert_int_equal(st & (S_ACK | S_DRV), S_ACK | S_DRV);
		if (cases[i].ok) {
			/* Accepted features are frozen. */
			COMMON_W(e, guest_feature, 0);
			assert_int_equal(COMMON_R(e, guest_feature), cases[i].lo);
			assert_int_equal(e->dev.driver_features, (uint64_t)cases[i].hi << 32 | cases[i].lo);
		}
	}
}

/* ---- queues -------------------------------------------------------------- */

static void test_queue_size(void **state)
{
	struct env *e = env_of(state);

	COMMON_W(e, queue_select, 0);
	assert_int_equal(COMMON_R(e, queue_size), QMAX);
	COMMON_W(e, queue_size, 32);
	assert_int_equal(COMMON_R(e, queue_size), 32);
	COMMON_W(e, queue_size, 2 * QMAX); /* larger than the device allows */
	assert_int_equal(COMMON_R(e, queue_size), 32);
	COMMON_W(e, queue_select, 1);
	assert_int_equal(COMMON_R(e, queue_size), QMAX); /* per queue */
	COMMON_W(e, queue_select, 0);
	assert_int_equal(COMMON_R(e, queue_enable), 0);
	COMMON_W(e, queue_enable, 1);
	assert_int_equal(COMMON_R(e, queue_enable), 1);
	COMMON_W(e, queue_size, 16); /* too late */
	assert_int_equal(COMMON_R(e, queue_size), 32);
	assert_int_equal(e->dev.vq[0].size, 32);
}

static void test_queue_addresses(void **state)
{
	struct env *e = env_of(state);

	COMMON_W(e, queue_select, 1);
	COMMON_W(e, queue_desc_lo, 0x12345000);
	COMMON_W(e, queue_desc_hi, 0x1);
	COMMON_W(e, queue_avail_lo, 0x9abcd000);
	COMMON_W(e, queue_avail_hi, 0x2);
	COMMON_W(e, queue_used_lo, 0x0fed0000);
	COMMON_W(e, queue_used_hi, 0x3);
	assert_int_equal(COMMON_R(e, queue_desc_lo), 0x12345000);
	assert_int_equal(COMMON_R(e, queue_desc_hi), 0x1);
	assert_int_equal(COMMON_R(e, queue_avail_lo), 0x9abcd000);
	assert_int_equal(COMMON_R(e, queue_avail_hi), 0x2);
	assert_int_equal(COMMON_R(e, queue_used_lo), 0x0fed0000);
	assert_int_equal(COMMON_R(e, queue_used_hi), 0x3);
	assert_int_equal(e->dev.vq[1].desc_gpa, 0x112345000ULL);
	assert_int_equal(e->dev.vq[1].avail_gpa, 0x29abcd000ULL);
	assert_int_equal(e->dev.vq[1].used_gpa, 0x30fed0000ULL);
	/* Changing the low half keeps the high one. */
	COMMON_W(e, queue_desc_lo, 0x1000);
	assert_int_equal(e->dev.vq[1].desc_gpa, 0x100001000ULL);
	/* The other queue is untouched. */
	COMMON_W(e, queue_select, 0);
	assert_int_equal(COMMON_R(e, queue_desc_lo), 0);
	assert_int_equal(COMMON_R(e, queue_used_hi), 0);
	/* An enabled queue's layout is fixed. */
	COMMON_W(e, queue_select, 1);
	COMMON_W(e, queue_enable, 1);
	COMMON_W(e, queue_desc_lo, 0x2000);
	COMMON_W(e, queue_used_hi, 0);
	assert_int_equal(e->dev.vq[1].desc_gpa, 0x100001000ULL);
	assert_int_equal(e->dev.vq[1].used_gpa, 0x30fed0000ULL);
}

static void test_queue_select_out_of_range(void **state)
{
	struct env *e = env_of(state);

	assert_int_equal(COMMON_R(e, num_queues), NQ);
	for (unsigned sel = NQ; sel <= 0xffff; sel = sel * 2 + 1) {
		COMMON_W(e, queue_select, sel);
		assert_int_equal(COMMON_R(e, queue_select), sel);
		assert_int_equal(COMMON_R(e, queue_size), 0);
		/* Writes to a queue that does not exist go nowhere. */
		COMMON_W(e, queue_size, 16);
		COMMON_W(e, queue_desc_lo, 0x4000);
		COMMON_W(e, queue_enable, 1);
		COMMON_W(e, queue_msix_vector, 0);
		assert_int_equal(COMMON_R(e, queue_size), 0);
		assert_int_equal(COMMON_R(e, queue_enable), 0);
		assert_int_equal(COMMON_R(e, queue_desc_lo), 0);
	}
	for (unsigned q = NQ; q < VIRTIO_MAX_QUEUES; q++) {
		assert_false(e->dev.vq[q].ready);
		assert_int_equal(e->dev.vq[q].desc_gpa, 0);
	}
	COMMON_W(e, queue_select, 0);
	assert_int_equal(COMMON_R(e, queue_size), QMAX);
	assert_int_equal(COMMON_R(e, queue_enable), 0);
	assert_int_equal(COMMON_R(e, queue_msix_vector), NO_VEC);
}

/* One 8-byte write covering queue_select, queue_size and queue_msix_vector
 * (found by tests/fuzz/fuzz_transport.c): the queue fields go to the queue
 * selected before the write; the vector was stored at queue_vector[new
 * selection], past the array. */
static void test_wide_write_changing_queue_select(void **state)
{
	struct env *e = env_of(state);
	uint64_t v = 0xd600 | (uint64_t)16 << 16 | (uint64_t)0 << 32; /* select, size, vector 0 */

	COMMON_W(e, queue_select, 0);
	bar_write(e, common_off(e, CC(queue_select)), 8, v);
	assert_int_equal(COMMON_R(e, queue_select), 0xd600);
	COMMON_W(e, queue_select, 0);
	assert_int_equal(COMMON_R(e, queue_size), 16);
	assert_int_equal(COMMON_R(e, queue_msix_vector), 0);
}

static void test_reset_clears_everything(void **state)
{
	struct env *e = env_of(state);

	COMMON_W(e, msix_config, 0);
	for (unsigned q = 0; q < NQ; q++) {
		COMMON_W(e, queue_select, q);
		COMMON_W(e, queue_size, 32);
		COMMON_W(e, queue_msix_vector, q + 1);
	}
	bring_up(e);
	COMMON_W(e, queue_select, 1);
	signal_config(e);

	set_status(e, 0);
	assert_int_equal(e->resets, 1);
	assert_int_equal(COMMON_R(e, device_status), 0);
	assert_int_equal(COMMON_R(e, queue_select), 0);
	assert_int_equal(COMMON_R(e, msix_config), NO_VEC);
	for (unsigned sel = 0; sel < 2; sel++) {
		COMMON_W(e, guest_feature_select, sel);
		assert_int_equal(COMMON_R(e, guest_feature), 0);
	}
	assert_int_equal(e->dev.driver_features, 0);
	for (unsigned q = 0; q < NQ; q++) {
		COMMON_W(e, queue_select, q);
		assert_int_equal(COMMON_R(e, queue_size), QMAX);
		assert_int_equal(COMMON_R(e, queue_enable), 0);
		assert_int_equal(COMMON_R(e, queue_msix_vector), NO_VEC);
		assert_int_equal(COMMON_R(e, queue_desc_lo), 0);
		assert_int_equal(COMMON_R(e, queue_avail_lo), 0);
		assert_int_equal(COMMON_R(e, queue_used_lo), 0);
	}
	assert_int_equal(bar_read(e, e->vcap[VIRTIO_PCI_CAP_ISR_CFG].offset, 1), 0);
	/* A reset device kicks nothing. */
	bar_write(e, e->vcap[VIRTIO_PCI_CAP_NOTIFY_CFG].offset, 2, 0);
	assert_int_equal(e->notified[0], 0);
	/* And it can be brought up again. */
	bring_up(e);
	assert_int_equal(e->activated, 2);
}

/* ---- interrupts ---------------------------------------------------------- */

static void test_vector_registers(void **state)
{
	static const struct {
		uint16_t write, read;
	} cases[] = {
		{ 0, 0 }, { NVEC - 1, NVEC - 1 }, { 1, 1 }, { NVEC, NO_VEC }, { 0x7ff, NO_VEC },
		{ 0x8000, NO_VEC }, { NO_VEC, NO_VEC },
	};
	struct env *e = env_of(state);

	assert_int_equal(COMMON_R(e, msix_config), NO_VEC);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		COMMON_W(e, msix_config, cases[i].write);
		assert_int_equal(COMMON_R(e, msix_config), cases[i].read);
		for (unsigned q = 0; q < NQ; q++) {
			COMMON_W(e, queue_select, q);
			assert_int_equal(COMMON_R(e, queue_msix_vector), i ? cases[i - 1].read : NO_VEC);
			COMMON_W(e, queue_msix_vector, cases[i].write);
			assert_int_equal(COMMON_R(e, queue_msix_vector), cases[i].read);
		}
	}
}

static void test_msix_table(void **state)
{
	struct env *e = env_of(state);

	for (unsigned v = 0; v < NVEC; v++) {
		msix_entry_write(e, v, 0, 0xfee00000 + 0x1000 * v);
		msix_entry_write(e, v, 1, v);
		msix_entry_write(e, v, 2, 0x4020 + v);
	}
	for (unsigned v = 0; v < NVEC; v++) {
		assert_int_equal(msix_entry_read(e, v, 0), 0xfee00000 + 0x1000 * v);
		assert_int_equal(msix_entry_read(e, v, 1), v);
		assert_int_equal(msix_entry_read(e, v, 2), 0x4020 + v);
		assert_int_equal(msix_entry_read(e, v, 3), 1);
	}
	/* Vector control: only the mask bit exists. */
	msix_entry_write(e, 1, 3, 0xffffffff);
	assert_int_equal(msix_entry_read(e, 1, 3), 1);
	msix_entry_write(e, 1, 3, 0xfffffffe);
	assert_int_equal(msix_entry_read(e, 1, 3), 0);
	/* Not dword accesses: reads 0, writes ignored. */
	assert_int_equal(bar_read(e, msix_table(e) + 16 * 2, 2), 0);
	bar_write(e, msix_table(e) + 16 * 2, 2, 0);
	assert_int_equal(msix_entry_read(e, 2, 0), 0xfee02000);
	/* Past the last entry. */
	assert_int_equal(bar_read(e, msix_table(e) + 16 * NVEC, 4), 0);
	bar_write(e, msix_table(e) + 16 * NVEC, 4, 0x12345678);
	assert_int_equal(bar_read(e, msix_table(e) + 16 * NVEC, 4), 0);
}

static void msix_enable(struct env *e, bool enable, bool mask_all)
{
	uint16_t ctrl = (uint16_t)cfg_read(e, e->msix_cap + 2, 2) & 0x3fff;

	cfg_write(e, e->msix_cap + 2, 2, ctrl | (enable ? 0x8000 : 0) | (mask_all ? 0x4000 : 0));
}

static void test_pba_pending_while_masked(void **state)
{
	struct env *e = env_of(state);

	msix_enable(e, true, false);
	COMMON_W(e, queue_select, 0);
	COMMON_W(e, queue_msix_vector, 1);
	COMMON_W(e, msix_config, 2);
	msix_entry_write(e, 1, 0, 0xfee00000);
	msix_entry_write(e, 1, 2, 0x4031);
	assert_int_equal(pba_bits(e), 0);

	signal_queue(e, 0); /* entry 1 is masked */
	assert_int_equal(pba_bits(e), 1 << 1);
	msix_entry_write(e, 1, 3, 0); /* unmask: delivered, no longer pending */
	assert_int_equal(pba_bits(e), 0);
	signal_queue(e, 0);
	assert_int_equal(pba_bits(e), 0);

	/* The config vector is separate. */
	signal_config(e);
	assert_int_equal(pba_bits(e), 1 << 2);
	/* Queue 1 has no vector: nothing to hold. */
	signal_queue(e, 1);
	assert_int_equal(pba_bits(e), 1 << 2);
	msix_entry_write(e, 2, 3, 0);
	assert_int_equal(pba_bits(e), 0);
	/* The PBA is read-only. */
	bar_write(e, msix_pba(e), 4, 0xffffffff);
	assert_int_equal(pba_bits(e), 0);
}

static void test_pba_function_mask_and_disable(void **state)
{
	struct env *e = env_of(state);

	COMMON_W(e, queue_select, 1);
	COMMON_W(e, queue_msix_vector, 0);
	msix_entry_write(e, 0, 3, 0); /* the entry itself is unmasked */

	/* MSI-X off: held. */
	signal_queue(e, 1);
	assert_int_equal(pba_bits(e), 1);
	msix_enable(e, true, false);
	assert_int_equal(pba_bits(e), 0);

	/* Function mask: held until cleared. */
	msix_enable(e, true, true);
	signal_queue(e, 1);
	assert_int_equal(pba_bits(e), 1);
	msix_enable(e, true, false);
	assert_int_equal(pba_bits(e), 0);
}

static void test_isr_read_clears(void **state)
{
	struct env *e = env_of(state);
	uint64_t isr = e->vcap[VIRTIO_PCI_CAP_ISR_CFG].offset;

	assert_int_equal(bar_read(e, isr, 1), 0);
	signal_queue(e, 0);
	assert_int_equal(bar_read(e, isr, 1), 1);
	assert_int_equal(bar_read(e, isr, 1), 0);
	signal_config(e);
	assert_int_equal(bar_read(e, isr, 1), VIRTIO_PCI_ISR_CONFIG);
	assert_int_equal(bar_read(e, isr, 1), 0);
	signal_queue(e, 1);
	signal_config(e);
	assert_int_equal(bar_read(e, isr, 4), 1 | VIRTIO_PCI_ISR_CONFIG);
	assert_int_equal(bar_read(e, isr, 1), 0);
	/* Writes do not set it. */
	bar_write(e, isr, 1, 3);
	assert_int_equal(bar_read(e, isr, 1), 0);
}

/* ---- other BAR regions --------------------------------------------------- */

static void test_pci_cfg_window(void **state)
{
	struct env *e = env_of(state);
	unsigned c = e->vcap[VIRTIO_PCI_CAP_PCI_CFG].at;

	/* Read num_queues (2 bytes) through the window. */
	cfg_write(e, c + 4, 1, 0);
	cfg_write(e, c + 8, 4, (uint32_t)common_off(e, CC(num_queues)));
	cfg_write(e, c + 12, 4, 2);
	assert_int_equal(cfg_read(e, c + 16, 2), NQ);
	/* A dword: the device feature word 0. */
	COMMON_W(e, device_feature_select, 0);
	cfg_write(e, c + 8, 4, (uint32_t)common_off(e, CC(device_feature)));
	cfg_write(e, c + 12, 4, 4);
	assert_int_equal(cfg_read(e, c + 16, 4), (uint32_t)(DEV_FEATURES | 1ULL << VIRTIO_RING_F_EVENT_IDX |
								 1ULL << VIRTIO_RING_F_INDIRECT_DESC));
	/* A byte of device configuration. */
	cfg_write(e, c + 8, 4, e->vcap[VIRTIO_PCI_CAP_DEVICE_CFG].offset + 5);
	cfg_write(e, c + 12, 4, 1);
	assert_int_equal(cfg_read(e, c + 16, 1), e->config[5]);
	/* Writes go through too: queue_select. */
	cfg_write(e, c + 8, 4, (uint32_t)common_off(e, CC(queue_select)));
	cfg_write(e, c + 12, 4, 2);
	cfg_write(e, c + 16, 2, 1);
	assert_int_equal(COMMON_R(e, queue_select), 1);
	/* Misaligned or odd-sized windows do nothing. */
	cfg_write(e, c + 8, 4, (uint32_t)common_off(e, CC(queue_select)) + 1);
	cfg_write(e, c + 16, 2, 0);
	assert_int_equal(COMMON_R(e, queue_select), 1);
	cfg_write(e, c + 8, 4, (uint32_t)common_off(e, CC(queue_select)));
	cfg_write(e, c + 12, 4, 3);
	cfg_write(e, c + 16, 2, 0);
	assert_int_equal(COMMON_R(e, queue_select), 1);
	/* Only BAR 0 exists. */
	cfg_write(e, c + 12, 4, 2);
	cfg_write(e, c + 4, 1, 1);
	cfg_write(e, c + 16, 2, 0);
	assert_int_equal(COMMON_R(e, queue_select), 1);
}

static void test_device_config_access(void **state)
{
	struct env *e = env_of(state);
	uint64_t dc = e->vcap[VIRTIO_PCI_CAP_DEVICE_CFG].offset;

	assert_int_equal(bar_read(e, dc, 4), 0x04030201);
	assert_int_equal(bar_read(e, dc + 4, 4), 0x08070605);
	assert_int_equal(bar_read(e, dc, 8), 0x0807060504030201ULL);
	/* Past the end: zeroes. */
	assert_int_equal(bar_read(e, dc + 6, 4), 0);
	assert_int_equal(bar_read(e, dc + sizeof(e->config), 1), 0);
	bar_write(e, dc + 2, 2, 0xbbaa);
	assert_int_equal(e->config_writes, 1);
	assert_int_equal(e->config_write_off, 2);
	assert_int_equal(e->config_write_len, 2);
	assert_int_equal(e->config[2], 0xaa);
	assert_int_equal(e->config[3], 0xbb);
	bar_write(e, dc + 7, 2, 0xffff);
	assert_int_equal(e->config_writes, 1);
}

static void test_notify_kicks_live_queues(void **state)
{
	struct env *e = env_of(state);
	uint64_t n = e->vcap[VIRTIO_PCI_CAP_NOTIFY_CFG].offset;
	uint64_t one = 1;

	/* Not yet DRIVER_OK: a doorbell does nothing. */
	bar_write(e, n, 2, 0);
	assert_int_equal(e->notified[0], 0);

	bring_up(e);
	for (unsigned q = 0; q < NQ; q++) {
		COMMON_W(e, queue_select, q);
		bar_write(e, n + (uint64_t)COMMON_R(e, queue_notify_off) * e->notify_mult, 2, q);
		assert_int_equal(e->notified[q], 1);
		assert_int_equal(e->notified[1 - q], q ? 1 : 0);
	}
	/* The fast path: the ioeventfd, served by the event loop. */
	assert_int_equal(write(e->t.kick_efd[1], &one, sizeof(one)), sizeof(one));
	assert_true(event_loop_run_once(&e->loop, 1000) >= 0);
	assert_int_equal(e->notified[1], 2);
	assert_int_equal(e->notified[0], 1);
}

/* KVM refuses a second ioeventfd on an address already taken: that tells
 * whether the transport's doorbells are registered there. */
static bool doorbell_registered(struct env *e, uint64_t addr)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	struct kvm_ioeventfd f = { .addr = addr, .len = 2, .fd = fd };
	bool taken;

	assert_true(fd >= 0);
	taken = ioctl(e->vm, KVM_IOEVENTFD, &f) < 0 && errno == EEXIST;
	if (!taken) {
		f.flags = KVM_IOEVENTFD_FLAG_DEASSIGN;
		assert_int_equal(ioctl(e->vm, KVM_IOEVENTFD, &f), 0);
	}
	close(fd);
	return taken;
}

static void test_doorbells_follow_the_bar(void **state)
{
	struct env *e = env_of(state);
	uint64_t n = e->vcap[VIRTIO_PCI_CAP_NOTIFY_CFG].offset, moved = WIN + 0x100000;

	assert_true(doorbell_registered(e, e->bar + n));
	assert_true(doorbell_registered(e, e->bar + n + e->notify_mult));
	cfg_write(e, 0x04, 2, 0); /* decoding off */
	assert_false(doorbell_registered(e, e->bar + n));
	cfg_write(e, 0x10, 4, (uint32_t)moved);
	cfg_write(e, 0x04, 2, 0x0006);
	assert_false(doorbell_registered(e, e->bar + n));
	assert_true(doorbell_registered(e, moved + n));
	assert_true(doorbell_registered(e, moved + n + e->notify_mult));
}

static void no_notify(struct virtio_dev *d, unsigned q)
{
	(void)d;
	(void)q;
}

/* A device with every queue a virtio device may have: an MSI-X vector
 * for each, all of them in its state, which loads back. */
static void test_many_queues(void **state)
{
	static const struct virtio_ops many_ops = {
		.name = "many", .device_id = 2, .num_queues = VIRTIO_MAX_QUEUES, .queue_max = QMAX, .notify = no_notify,
	};
	struct env *e = env_of(state);
	struct virtio_dev *d = calloc(1, sizeof(*d));
	struct virtio_pci *t = calloc(1, sizeof(*t));
	struct snap_writer w;
	struct snap_reader r;

	assert_non_null(d);
	assert_non_null(t);
	assert_int_equal(virtio_dev_init(d, &many_ops, NULL, 0, NULL, 0, &e->mem, &e->loop), 0);
	assert_int_equal(virtio_pci_init(t, d, &e->h, &e->irq, e->vm), 0);
	assert_int_equal(t->nvec, VIRTIO_MAX_QUEUES + 1);
	/* MSI-X table size, less one. */
	assert_int_equal(pci_cfg_read(&t->pci, e->msix_cap + 2, 2) & 0x7ff, VIRTIO_MAX_QUEUES);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->queue_vector[q] = (uint16_t)(VIRTIO_MAX_QUEUES - q);
	for (unsigned v = 0; v < t->nvec; v++)
		t->msix[v].data = 0x4000 + v;
	t->pending[VIRTIO_MAX_QUEUES] = true;
	snap_writer_init(&w);
	assert_int_equal(virtio_pci_save(t, &w), 0);
	memset(t->queue_vector, 0, sizeof(t->queue_vector));
	memset(t->msix, 0, sizeof(t->msix));
	t->pending[VIRTIO_MAX_QUEUES] = false;
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_pci_load(t, &r), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		assert_int_equal(t->queue_vector[q], VIRTIO_MAX_QUEUES - q);
	for (unsigned v = 0; v < t->nvec; v++)
		assert_int_equal(t->msix[v].data, 0x4000 + v);
	assert_true(t->pending[VIRTIO_MAX_QUEUES]);
	/* Version 1 sections had room for 8 queues: this device has more. */
	snap_reader_init(&r, w.buf, w.len);
	r.version = 1;
	assert_int_equal(virtio_pci_load(t, &r), CV_EINPUT);
	/* The transport of a two-queue device refuses the many-queue state. */
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_pci_load(&e->t, &r), CV_EINPUT);
	snap_writer_free(&w);
	virtio_pci_destroy(t);
	for (unsigned i = 0; i < PCI_SLOTS; i++)
		if (e->h.slot[i] == &t->pci)
			e->h.slot[i] = NULL;
	virtio_dev_destroy(d);
	free(t);
	free(d);
}

/* A section of version 1 (8 queue vectors, 9 MSI-X entries whatever the
 * device had) still loads. */
static void test_v1_state_loads(void **state)
{
	struct env *e = env_of(state);
	struct snap_writer w;
	struct snap_reader r;

	snap_writer_init(&w);
	pci_dev_save(&e->t.pci, &w);
	snap_put_u32(&w, 0); /* dev_feat_sel */
	snap_put_u32(&w, 1); /* drv_feat_sel */
	snap_put_u16(&w, 1); /* queue_sel */
	snap_put_u16(&w, 0); /* config_vector */
	for (unsigned q = 0; q < 8; q++)
		snap_put_u16(&w, q < NQ ? (uint16_t)(q + 1) : NO_VEC);
	snap_put_u8(&w, 0); /* isr */
	for (unsigned v = 0; v < 9; v++) {
		snap_put_u32(&w, 0xfee00000);
		snap_put_u32(&w, 0);
		snap_put_u32(&w, 0x30 + v);
		snap_put_u32(&w, MSIX_ENTRY_MASKED_BIT);
	}
	for (unsigned v = 0; v < 9; v++)
		snap_put_u8(&w, v == 2);
	snap_reader_init(&r, w.buf, w.len);
	r.version = 1;
	assert_int_equal(virtio_pci_load(&e->t, &r), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	assert_int_equal(e->t.queue_sel, 1);
	assert_int_equal(e->t.queue_vector[0], 1);
	assert_int_equal(e->t.queue_vector[1], 2);
	assert_int_equal(e->t.msix[2].data, 0x32);
	assert_true(e->t.pending[2]);
	/* The same bytes are not a current section (no counts up front). */
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_pci_load(&e->t, &r), CV_EINPUT);
	snap_writer_free(&w);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_capability_list),
		T(test_notify_cap_covers_queues),
		T(test_device_features),
		T(test_features_ok),
		T(test_queue_size),
		T(test_queue_addresses),
		T(test_queue_select_out_of_range),
		T(test_reset_clears_everything),
		T(test_vector_registers),
		T(test_msix_table),
		T(test_pba_pending_while_masked),
		T(test_pba_function_mask_and_disable),
		T(test_isr_read_clears),
		T(test_pci_cfg_window),
		T(test_device_config_access),
		T(test_notify_kicks_live_queues),
		T(test_doorbells_follow_the_bar),
		T(test_wide_write_changing_queue_select),
		T(test_many_queues),
		T(test_v1_state_loads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
