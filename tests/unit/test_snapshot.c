/* Snapshot building blocks without KVM: the byte stream, field tables, the
 * state file (round trip, every truncation, every flipped byte, duplicate
 * and stray sections), device save/load with out-of-range values, the
 * registry's refusal of a device without a state section, the CPU feature
 * check, the configuration's round trip and the memory layers of a diff
 * chain. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>

#include "arch/x86/vcpu_state.h"
#include "hw/i8042.h"
#include "hw/pci.h"
#include "hw/serial.h"
#include "net/netopt.h"
#include "snapshot/config.h"
#include "snapshot/fields.h"
#include "snapshot/file.h"
#include "snapshot/memchain.h"
#include "snapshot/stream.h"
#include "util/err.h"
#include "vmm/disks.h"
#include "vmm/state.h"

static void test_stream_round_trip(void **state)
{
	struct snap_writer w;
	struct snap_reader r;
	char s[16];
	bool null;

	(void)state;
	snap_writer_init(&w);
	snap_put_u8(&w, 0xab);
	snap_put_u16(&w, 0x1234);
	snap_put_u32(&w, 0xdeadbeef);
	snap_put_u64(&w, 0x0123456789abcdefULL);
	snap_put_str(&w, "hello");
	snap_put_str(&w, NULL);
	assert_false(w.oom);
	/* Little-endian on the wire, whatever the host. */
	assert_int_equal(w.buf[1], 0x34);
	assert_int_equal(w.buf[2], 0x12);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_get_u8(&r), 0xab);
	assert_int_equal(snap_get_u16(&r), 0x1234);
	assert_int_equal(snap_get_u32(&r), 0xdeadbeef);
	assert_true(snap_get_u64(&r) == 0x0123456789abcdefULL);
	snap_get_str(&r, s, sizeof(s), &null);
	assert_string_equal(s, "hello");
	assert_false(null);
	snap_get_str(&r, s, sizeof(s), &null);
	assert_true(null);
	assert_true(snap_reader_ok(&r));
	assert_int_equal(snap_reader_left(&r), 0);
	/* Past the end: zeros and a sticky error. */
	assert_int_equal(snap_get_u32(&r), 0);
	assert_false(snap_reader_ok(&r));
	snap_writer_free(&w);
}

static void test_stream_hostile(void **state)
{
	uint8_t two = 2, longstr[] = { 20, 0, 0, 0, 'a', 'b' }, nul[] = { 2, 0, 0, 0, 'a', 0 };
	struct snap_reader r;
	char s[8];

	(void)state;
	snap_reader_init(&r, &two, 1);
	snap_get_bool(&r);
	assert_false(snap_reader_ok(&r));
	snap_reader_init(&r, longstr, sizeof(longstr));
	snap_get_str(&r, s, sizeof(s), NULL);
	assert_false(snap_reader_ok(&r));
	assert_string_equal(s, "");
	snap_reader_init(&r, nul, sizeof(nul));
	snap_get_str(&r, s, sizeof(s), NULL);
	assert_false(snap_reader_ok(&r));
}

/* A small file: three sections. */
static void build_file(struct snap_file_writer *w)
{
	struct snap_writer a, b;

	snap_file_start(w);
	snap_writer_init(&a);
	snap_put_u32(&a, 42);
	snap_file_add(w, "alpha", 1, &a);
	snap_writer_init(&b);
	snap_put_str(&b, "payload of beta");
	snap_file_add(w, "beta", 3, &b);
	snap_file_add(w, "empty", 1, &(struct snap_writer){ 0 });
	snap_file_finish(w);
	snap_writer_free(&a);
	snap_writer_free(&b);
}

static void test_file_round_trip(void **state)
{
	struct snap_file_writer w;
	struct snap_file f;
	struct snap_section *s;
	struct snap_reader r;
	char err[256];

	(void)state;
	build_file(&w);
	assert_int_equal(snap_file_parse(w.out.buf, w.out.len, &f, err, sizeof(err)), 0);
	assert_int_equal(f.n, 3);
	assert_null(snap_file_get(&f, "gamma"));
	s = snap_file_get(&f, "beta");
	assert_non_null(s);
	assert_int_equal(s->version, 3);
	assert_true(s->used);
	snap_reader_init(&r, s->data, s->len);
	snap_get_str(&r, err, sizeof(err), NULL);
	assert_string_equal(err, "payload of beta");
	s = snap_file_get(&f, "empty");
	assert_non_null(s);
	assert_int_equal(s->len, 0);
	snap_file_free(&f);
	snap_file_writer_free(&w);
}

/* Every proper prefix of a valid file is refused, and so is every file with
 * one byte changed anywhere (header, section header or payload). */
static void test_file_truncated_and_flipped(void **state)
{
	struct snap_file_writer w;
	struct snap_file f;
	char err[256];
	uint8_t *copy;

	(void)state;
	build_file(&w);
	for (size_t len = 0; len < w.out.len; len++) {
		err[0] = 0;
		assert_int_equal(snap_file_parse(w.out.buf, len, &f, err, sizeof(err)), CV_EINPUT);
		assert_true(err[0]);
	}
	copy = malloc(w.out.len);
	assert_non_null(copy);
	for (size_t i = 0; i < w.out.len; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(copy, w.out.buf, w.out.len);
			copy[i] ^= (uint8_t)(1u << bit);
			if (snap_file_parse(copy, w.out.len, &f, err, sizeof(err)) == 0) {
				/* Only a change that keeps every length and CRC valid may
				 * parse: an id or version byte. Then the section set
				 * differs from the original. */
				assert_true(!snap_file_get(&f, "alpha") || !snap_file_get(&f, "beta") ||
					    !snap_file_get(&f, "empty") || f.sec[0].version != 1 ||
					    f.sec[1].version != 3 || f.sec[2].version != 1);
				snap_file_free(&f);
			}
		}
	}
	free(copy);
	snap_file_writer_free(&w);
}

static void test_file_refusals(void **state)
{
	struct snap_file_writer w;
	struct snap_writer p;
	struct snap_file f;
	char err[256];

	(void)state;
	/* Another format version, named. */
	build_file(&w);
	w.out.buf[8] = 9;
	assert_int_equal(snap_file_parse(w.out.buf, w.out.len, &f, err, sizeof(err)), CV_EINPUT);
	assert_non_null(strstr(err, "version 9"));
	snap_file_writer_free(&w);
	/* Stray bytes after the last section. */
	build_file(&w);
	snap_put_u8(&w.out, 0);
	assert_int_equal(snap_file_parse(w.out.buf, w.out.len, &f, err, sizeof(err)), CV_EINPUT);
	snap_file_writer_free(&w);
	/* The same id twice. */
	snap_file_start(&w);
	snap_writer_init(&p);
	snap_put_u8(&p, 1);
	snap_file_add(&w, "dup", 1, &p);
	snap_file_add(&w, "dup", 1, &p);
	snap_file_finish(&w);
	assert_int_equal(snap_file_parse(w.out.buf, w.out.len, &f, err, sizeof(err)), CV_EINPUT);
	assert_non_null(strstr(err, "twice"));
	snap_writer_free(&p);
	snap_file_writer_free(&w);
	/* Not a snapshot at all. */
	assert_int_equal(snap_file_parse((const uint8_t *)"hello world, not a snapshot", 27, &f, err, sizeof(err)),
			 CV_EINPUT);
	assert_non_null(strstr(err, "not a cellvm snapshot"));
}

static void no_irq(void *ctx, unsigned irq, int level)
{
	(void)ctx;
	(void)irq;
	(void)level;
}

static void test_serial_round_trip_and_range(void **state)
{
	struct serial a, b;
	struct snap_writer w;
	struct snap_reader r;
	uint8_t lcr = 0x03;

	(void)state;
	assert_int_equal(serial_init(&a, -1, 4, no_irq, NULL), 0);
	assert_int_equal(serial_init(&b, -1, 4, no_irq, NULL), 0);
	serial_io(&a, SERIAL_COM1_PORT + 3, &lcr, 1, true);
	assert_int_equal(serial_receive(&a, (const uint8_t *)"xyz", 3), 3);
	snap_writer_init(&w);
	assert_int_equal(serial_save(&a, &w), 0);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(serial_load(&b, &r), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	assert_int_equal(b.lcr, 0x03);
	assert_int_equal(b.rx_len, 3);
	assert_memory_equal(b.rx + b.rx_head, "xyz", 3);
	assert_int_equal(b.out_fd, -1); /* handles are not state */

	/* A FIFO index past the FIFO: refused, the device untouched. */
	a.rx_head = SERIAL_RX_FIFO + 5;
	snap_writer_free(&w);
	snap_writer_init(&w);
	serial_save(&a, &w);
	snap_reader_init(&r, w.buf, w.len);
	b.lcr = 0x07;
	assert_int_equal(serial_load(&b, &r), CV_EINPUT);
	assert_int_equal(b.lcr, 0x07);
	assert_true(b.rx_head < SERIAL_RX_FIFO);
	/* Truncated. */
	snap_reader_init(&r, w.buf, w.len - 1);
	assert_int_equal(serial_load(&b, &r), CV_EINPUT);
	snap_writer_free(&w);
	serial_destroy(&a);
	serial_destroy(&b);
}

static void ignore_power(void *ctx, enum power_event ev)
{
	(void)ctx;
	(void)ev;
}

static void test_i8042_queue_range(void **state)
{
	struct i8042 k;
	struct snap_writer w;
	struct snap_reader r;

	(void)state;
	assert_int_equal(i8042_init(&k, ignore_power, no_irq, NULL), 0);
	k.q_len = I8042_QUEUE + 1;
	snap_writer_init(&w);
	i8042_save(&k, &w);
	k.q_len = 0;
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(i8042_load(&k, &r), CV_EINPUT);
	assert_int_equal(k.q_len, 0);
	snap_writer_free(&w);
	i8042_destroy(&k);
}

static int save_nothing(void *dev, struct snap_writer *w)
{
	(void)dev;
	snap_put_u8(w, 7);
	return 0;
}

static int load_nothing(void *dev, struct snap_reader *r)
{
	(void)dev;
	return snap_get_u8(r) == 7 ? 0 : CV_EINPUT;
}

static uint32_t seen_version;

static int load_seen_version(void *dev, struct snap_reader *r)
{
	seen_version = r->version;
	return load_nothing(dev, r);
}

static void handler(void *opaque, uint64_t addr, uint8_t *data, unsigned size, bool write)
{
	(void)opaque;
	(void)addr;
	(void)data;
	(void)size;
	(void)write;
}

/* A device on a bus whose author forgot its state section makes every
 * snapshot of the VM fail; once it registers one, coverage passes and the
 * section round-trips through a state file. */
static void test_device_without_state_is_refused(void **state)
{
	static struct state_registry reg;
	static struct bus pio, mmio;
	static struct pci_host pci;
	int dev_a, dev_b;
	struct snap_file_writer w;
	struct snap_file f;
	char err[128];

	(void)state;
	memset(&reg, 0, sizeof(reg));
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	assert_int_equal(pci_host_init(&pci, &pio, &mmio, 0xe0000000, 0xc0000000, 0x10000000), 0);
	assert_int_equal(bus_register(&pio, 0x100, 4, handler, &dev_a), 0);
	assert_int_equal(bus_register(&mmio, 0xd0000000, 0x1000, handler, &dev_b), 0);
	assert_int_equal(state_register(&reg, "a", 1, save_nothing, load_nothing, &dev_a, &dev_a, NULL), 0);
	assert_int_equal(state_register(&reg, "pci", 1, pci_host_save, pci_host_load, &pci, &pci, &pci.bridge), 0);
	/* dev_b has no section. */
	assert_int_equal(state_check_coverage(&reg, &pio, &mmio, &pci), CV_EFAIL);
	assert_non_null(strstr(cv_last_error(), "0xd0000000"));
	assert_int_equal(state_register(&reg, "b", 1, save_nothing, load_nothing, &dev_b, &dev_b, NULL), 0);
	assert_int_equal(state_check_coverage(&reg, &pio, &mmio, &pci), 0);
	/* A PCI device in a slot without a section is refused too. */
	{
		static struct pci_dev extra;

		pci_dev_header(&extra, 0x1af4, 0x1041, 0x020000, 0x1af4, 0x1100, 1);
		assert_true(pci_add(&pci, &extra) > 0);
		assert_int_equal(state_check_coverage(&reg, &pio, &mmio, &pci), CV_EFAIL);
		assert_non_null(strstr(cv_last_error(), "PCI device in slot"));
		assert_int_equal(state_register(&reg, "extra", 1, save_nothing, load_nothing, &extra, &extra, NULL), 0);
		assert_int_equal(state_check_coverage(&reg, &pio, &mmio, &pci), 0);
	}
	/* Registering an id twice is a bug, refused. */
	assert_int_equal(state_register(&reg, "a", 1, save_nothing, load_nothing, &dev_a, NULL, NULL), CV_EFAIL);

	snap_file_start(&w);
	assert_int_equal(state_save_all(&reg, &w), 0);
	snap_file_finish(&w);
	assert_int_equal(snap_file_parse(w.out.buf, w.out.len, &f, err, sizeof(err)), 0);
	assert_int_equal(state_load_all(&reg, &f), 0);
	snap_file_free(&f);
	/* An entry that also reads older sections loads version 1, and its
	 * loader is told which version it reads. */
	reg.e[0].version = 2;
	reg.e[0].load = load_seen_version;
	assert_int_equal(snap_file_parse(w.out.buf, w.out.len, &f, err, sizeof(err)), 0);
	assert_int_equal(state_load_all(&reg, &f), 0);
	assert_int_equal(seen_version, 1);
	snap_file_free(&f);
	/* A section of another version is refused, naming both. */
	reg.e[0].min_version = 2;
	assert_int_equal(snap_file_parse(w.out.buf, w.out.len, &f, err, sizeof(err)), 0);
	assert_int_equal(state_load_all(&reg, &f), CV_EINPUT);
	assert_non_null(strstr(cv_last_error(), "version 1"));
	snap_file_free(&f);
	snap_file_writer_free(&w);
	pci_host_destroy(&pci);
}

/* Each disk's queues go in their own section; an old snapshot without it
 * had one queue a disk; hostile values are refused. */
static void test_disk_queues_section(void **state)
{
	struct vm_config a = { .cpus = 4, .ndisks = 2 }, b = { .ndisks = 2 };
	struct snap_writer w;
	struct snap_reader r;
	static const uint32_t bad[][2] = { { 0, 0 }, { 17, 0 }, { 1, 1000001 }, { UINT32_MAX, 0 } };

	(void)state;
	a.disks[1].queues = 2;
	a.disks[1].poll_us = 50;
	snap_writer_init(&w);
	vm_disks_encode_queues(&a, &w);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(vm_disks_decode_queues(&b, &r), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	/* The default is recorded as what it came to: one per vCPU. */
	assert_int_equal(b.disks[0].queues, 4);
	assert_int_equal(b.disks[0].poll_us, 0);
	assert_int_equal(b.disks[1].queues, 2);
	assert_int_equal(b.disks[1].poll_us, 50);
	/* Another number of disks. */
	b.ndisks = 1;
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(vm_disks_decode_queues(&b, &r), CV_EINPUT);
	snap_writer_free(&w);
	/* No section: one queue, no polling. */
	assert_int_equal(vm_disks_decode_queues(&b, NULL), 0);
	assert_int_equal(b.disks[0].queues, 1);
	assert_int_equal(b.disks[0].poll_us, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snap_writer_init(&w);
		snap_put_u32(&w, 1);
		snap_put_u32(&w, bad[i][0]);
		snap_put_u32(&w, bad[i][1]);
		snap_reader_init(&r, w.buf, w.len);
		assert_int_equal(vm_disks_decode_queues(&b, &r), CV_EINPUT);
		assert_non_null(strstr(r.bad, "out of range"));
		snap_writer_free(&w);
	}
}

/* The PCI config space check: read-only bits must match. */
static void test_pci_config_of_another_device(void **state)
{
	struct pci_dev a, b;
	struct snap_writer w;
	struct snap_reader r;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	pci_dev_header(&a, 0x1af4, 0x1041, 0x020000, 0x1af4, 0x1100, 1);
	pci_dev_header(&b, 0x1af4, 0x1042, 0x018000, 0x1af4, 0x1100, 1);
	snap_writer_init(&w);
	pci_dev_save(&a, &w);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(pci_dev_load(&b, &r), CV_EINPUT);
	assert_int_equal(pci_cfg_read(&b, 2, 2), 0x1042);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(pci_dev_load(&a, &r), 0);
	snap_writer_free(&w);
}

static void test_cpuid_check(void **state)
{
	static struct cpuid_table host, saved;
	char err[256];

	(void)state;
	memset(&host, 0, sizeof(host));
	host.nent = 2;
	host.e[0] = (struct kvm_cpuid_entry2){ .function = 1, .ecx = 0x80200001, .edx = 0x0f8bfbff };
	host.e[1] = (struct kvm_cpuid_entry2){ .function = 7, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					       .ebx = 0x00000209 };
	saved = host;
	assert_int_equal(x86_cpuid_check(&saved, &host, err, sizeof(err)), 0);
	/* Fewer features than the host: fine. Leaf 1 EBX (APIC ID) and OSXSAVE
	 * do not count. */
	saved.e[1].ebx = 0x1;
	saved.e[0].ebx = 0x12345678;
	saved.e[0].ecx |= 1u << 27;
	assert_int_equal(x86_cpuid_check(&saved, &host, err, sizeof(err)), 0);
	/* AVX2 (7.0 EBX bit 5) seen by the guest, missing here: refused, named. */
	saved.e[1].ebx |= 1u << 5;
	assert_int_equal(x86_cpuid_check(&saved, &host, err, sizeof(err)), CV_EINPUT);
	assert_non_null(strstr(err, "CPUID 7.0 ebx bit 5"));
}

static void test_config_round_trip(void **state)
{
	static struct vm_config c;
	static struct snap_config out;
	struct snap_writer w;
	struct snap_reader r;
	const size_t mmds_len = 1 + 1 + 1 + 4 + 4;

	(void)state;
	vm_config_defaults(&c);
	c.kernel = "/k/vmlinux";
	c.cmdline = "console=ttyS0 quiet";
	c.name = "web1";
	c.cpus = 4;
	c.memory = 2ULL << 30;
	c.transport = TRANSPORT_MMIO;
	c.ndisks = 1;
	c.disks[0] = (struct disk_config){ .path = "/d/root.qcow2", .readonly = true, .format = DISK_FORMAT_QCOW2,
					   .id = "root", .cache = DISK_CACHE_UNSAFE,
					   .limit = { .bps = 1 << 20, .ops = 100, .bps_once = 4096 } };
	c.nnics = 1;
	c.nics[0] = (struct net_config){
		.id = "eth0", .mode = NET_NAT, .mac = { 2, 0, 0, 0, 0, 9 }, .mac_set = true, .nfwd = 1
	};
	c.nics[0].fwd[0] = (struct net_hostfwd){ .host_port = 8080, .guest_port = 80 };
	c.nics[0].tx = (struct ratelimit_config){ .bps = 1000, .bps_burst = 500, .ops_once = 7 };
	c.entropy = (struct entropy_config){ .set = true, .limit = { .bps = 100, .bps_burst = 100, .bps_once = 10 } };
	c.smt = true;
	snap_writer_init(&w);
	snap_config_encode(&w, &c);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_decode(&r, SNAP_CONFIG_VERSION, &out), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	assert_string_equal(out.cfg.kernel, "/k/vmlinux");
	assert_null(out.cfg.initrd);
	assert_string_equal(out.cfg.name, "web1");
	assert_int_equal(out.cfg.cpus, 4);
	assert_true(out.cfg.memory == 2ULL << 30);
	assert_int_equal(out.cfg.transport, TRANSPORT_MMIO);
	assert_string_equal(out.cfg.disks[0].path, "/d/root.qcow2");
	assert_true(out.cfg.disks[0].readonly);
	assert_string_equal(out.cfg.disks[0].id, "root");
	assert_int_equal(out.cfg.disks[0].limit.ops, 100);
	assert_int_equal(out.cfg.nics[0].mode, NET_NAT);
	assert_int_equal(out.cfg.nics[0].fwd[0].host_port, 8080);
	assert_int_equal(out.cfg.nics[0].mac[5], 9);
	assert_string_equal(out.cfg.nics[0].id, "eth0");
	/* Version 4: cache types, one-time bursts, the entropy device. */
	assert_int_equal(out.cfg.disks[0].cache, DISK_CACHE_UNSAFE);
	assert_int_equal(out.cfg.disks[0].limit.bps_once, 4096);
	assert_int_equal(out.cfg.nics[0].tx.ops_once, 7);
	assert_true(out.cfg.entropy.set);
	assert_int_equal(out.cfg.entropy.limit.bps, 100);
	assert_int_equal(out.cfg.entropy.limit.bps_once, 10);
	assert_true(out.cfg.smt);
	/* Every truncation is refused. */
	for (size_t len = 0; len < w.len; len++) {
		snap_reader_init(&r, w.buf, len);
		assert_int_equal(snap_config_decode(&r, SNAP_CONFIG_VERSION, &out), CV_EINPUT);
	}
	assert_false(out.cfg.vsock.set);
	/* Version 3 had none of version 4's tail (per disk a cache byte and
	 * two bursts, per NIC four, the entropy flag and six limit fields, SMT):
	 * it loads with writeback disks and no entropy limit. */
	size_t v4 = (1 + 2 * 8) + 4 * 8 + (1 + 6 * 8) + 1;

	snap_reader_init(&r, w.buf, w.len - mmds_len - v4);
	assert_int_equal(snap_config_decode(&r, 3, &out), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	assert_int_equal(out.cfg.disks[0].cache, DISK_CACHE_WRITEBACK);
	assert_false(out.cfg.entropy.set);
	assert_int_equal(out.cfg.disks[0].limit.bps_once, 0);
	/* Version 2 had no vsock (set, cid, empty uds) and no balloon (on,
	 * amount, deflate_on_oom, stats, reporting): what it wrote still
	 * loads, without them. */
	snap_reader_init(&r, w.buf, w.len - mmds_len - v4 - (1 + 4 + 4) - (1 + 4 + 1 + 4 + 1));
	assert_int_equal(snap_config_decode(&r, 2, &out), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	/* Version 4 had no MMDS (set, version, imds_compat, address, NICs). */
	snap_reader_init(&r, w.buf, w.len - mmds_len);
	assert_int_equal(snap_config_decode(&r, 4, &out), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	assert_false(out.cfg.mmds.set);
	assert_false(out.cfg.vsock.set);
	assert_int_equal(out.cfg.cpus, 4);
	/* The MMDS comes back; a NIC the VM does not have is refused. */
	c.mmds = (struct mmds_config){ .set = true, .version = MMDS_V2, .imds_compat = true, .addr = 0xa9fe0102, .nics = 1 };
	snap_writer_free(&w);
	snap_writer_init(&w);
	snap_config_encode(&w, &c);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_decode(&r, SNAP_CONFIG_VERSION, &out), 0);
	assert_true(out.cfg.mmds.set && out.cfg.mmds.version == MMDS_V2 && out.cfg.mmds.imds_compat);
	assert_true(out.cfg.mmds.addr == 0xa9fe0102 && out.cfg.mmds.nics == 1);
	c.mmds.nics = 2;
	snap_writer_free(&w);
	snap_writer_init(&w);
	snap_config_encode(&w, &c);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_decode(&r, SNAP_CONFIG_VERSION, &out), CV_EINPUT);
	c.mmds = (struct mmds_config){ 0 };
	/* A vsock comes back; a CID that cannot be is refused. */
	c.vsock = (struct vsock_config){ .set = true, .cid = 9, .uds = "/run/v.sock" };
	snap_writer_free(&w);
	snap_writer_init(&w);
	snap_config_encode(&w, &c);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_decode(&r, SNAP_CONFIG_VERSION, &out), 0);
	assert_true(out.cfg.vsock.set);
	assert_int_equal(out.cfg.vsock.cid, 9);
	assert_string_equal(out.cfg.vsock.uds, "/run/v.sock");
	c.vsock.cid = 2;
	snap_writer_free(&w);
	snap_writer_init(&w);
	snap_config_encode(&w, &c);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_decode(&r, SNAP_CONFIG_VERSION, &out), CV_EINPUT);
	c.vsock.set = false;
	/* Out-of-range values too: 0 vCPUs. */
	c.cpus = 0;
	snap_writer_free(&w);
	snap_writer_init(&w);
	snap_config_encode(&w, &c);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(snap_config_decode(&r, SNAP_CONFIG_VERSION, &out), CV_EINPUT);
	snap_writer_free(&w);
}

/* A restore's network overrides: the named NIC gets the new tap; an
 * unknown NIC, or one with no tap, is refused with nothing changed. */
static void test_network_overrides(void **state)
{
	static struct vm_config c;
	struct net_override o[CV_MAX_NICS];
	unsigned n = 0;
	char err[256];

	(void)state;
	vm_config_defaults(&c);
	c.nnics = 2;
	c.nics[0] = (struct net_config){ .id = "eth0", .mode = NET_TAP, .tap = "tap0" };
	c.nics[1] = (struct net_config){ .id = "net1", .mode = NET_NAT };
	assert_int_equal(netopt_override(o, &n, "eth0", "clone7", err, sizeof(err)), 0);
	assert_int_equal(netopt_override(o, &n, "eth0", "clone8", err, sizeof(err)), CV_EINPUT);
	assert_non_null(strstr(err, "given twice"));
	assert_int_equal(netopt_override(o, &n, "net1", "a-tap-name-too-long", err, sizeof(err)), CV_EINPUT);
	assert_non_null(strstr(err, "is not a tap name"));
	assert_int_equal(n, 1);
	assert_int_equal(snap_config_override_nics(&c, o, n), 0);
	assert_string_equal(c.nics[0].tap, "clone7");
	assert_int_equal(netopt_override(o, &n, "net1", "tapx", err, sizeof(err)), 0);
	assert_int_equal(snap_config_override_nics(&c, o + 1, 1), CV_EINPUT); /* NAT has no tap */
	assert_string_equal(c.nics[1].tap, "");
	snprintf(o[1].id, sizeof(o[1].id), "eth9");
	assert_int_equal(snap_config_override_nics(&c, o + 1, 1), CV_EINPUT);
}

/* A chain of a full layer and two diffs round-trips; truncations, a chain
 * that starts with a diff, a relative path and too many layers are
 * refused; a layer whose file changed is reported. */
static void test_mem_chain(void **state)
{
	char dir[] = "/tmp/cellvm-memchain-XXXXXX", a[64], b[64];
	static struct mem_chain c, out;
	uint64_t pages[2] = { 0x5, 1ULL << 63 };
	struct snap_writer w;
	struct snap_reader r;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/full", dir);
	snprintf(b, sizeof(b), "%s/diff", dir);
	assert_non_null(f = fopen(a, "w"));
	fclose(f);
	assert_non_null(f = fopen(b, "w"));
	fclose(f);
	mem_chain_init(&c, 2);
	assert_int_equal(mem_chain_push(&c, b, pages), 0); /* replaced by the full layer below */
	assert_int_equal(mem_chain_push(&c, a, NULL), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(mem_chain_push(&c, b, pages), 0);
	assert_int_equal(mem_chain_push(&c, b, pages), 0);
	snap_writer_init(&w);
	mem_chain_encode(&c, &w);
	snap_reader_init(&r, w.buf, w.len);
	mem_chain_init(&out, 2);
	assert_int_equal(mem_chain_decode(&r, &out), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	assert_int_equal(out.n, 3);
	assert_string_equal(out.layer[0].path, a);
	assert_null(out.layer[0].pages);
	assert_true(out.layer[2].pages[1] == 1ULL << 63);
	assert_int_equal(mem_chain_check(&out, 1), 0);
	for (size_t len = 0; len < w.len; len++) {
		snap_reader_init(&r, w.buf, len);
		assert_int_equal(mem_chain_decode(&r, &out), -1);
		assert_int_equal(out.n, 0);
	}
	/* The file under a layer changed: refused by name. */
	assert_non_null(f = fopen(b, "w"));
	fputs("x", f);
	fclose(f);
	assert_int_equal(mem_chain_check(&c, 1), CV_EINPUT);
	assert_non_null(strstr(cv_last_error(), "changed since the snapshot (its size differs)"));
	/* A chain that starts with a diff, and a relative path. */
	for (int k = 0; k < 2; k++) {
		snap_writer_free(&w);
		snap_writer_init(&w);
		snap_put_u32(&w, 1);
		snap_put_str(&w, k ? "relative/path" : a);
		for (int i = 0; i < 4; i++)
			snap_put_u64(&w, 0);
		snap_put_u8(&w, k ? 0 : 1);
		snap_put_u64(&w, 0);
		snap_put_u64(&w, 0);
		snap_reader_init(&r, w.buf, w.len);
		assert_int_equal(mem_chain_decode(&r, &out), -1);
	}
	snap_writer_free(&w);
	snap_writer_init(&w);
	snap_put_u32(&w, MEMCHAIN_MAX + 1);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(mem_chain_decode(&r, &out), -1);
	while (c.n < MEMCHAIN_MAX)
		assert_int_equal(mem_chain_push(&c, b, pages), 0);
	assert_int_equal(mem_chain_push(&c, b, pages), CV_EFAIL);
	snap_writer_free(&w);
	mem_chain_free(&c);
	unlink(a);
	unlink(b);
	rmdir(dir);
}

/* A vCPU section round-trips, and a hostile one (sizes that do not match
 * the KVM structures, too many MSRs) is refused. */
static void test_vcpu_encoding(void **state)
{
	static struct x86_vcpu_state a, b;
	struct snap_writer w;
	struct snap_reader r;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.cpuid.nent = 1;
	a.cpuid.e[0].function = 1;
	a.regs.rip = 0xffffffff81000000ULL;
	a.has_xsave = true;
	a.xsave_len = sizeof(struct kvm_xsave);
	a.xsave = calloc(1, a.xsave_len);
	assert_non_null(a.xsave);
	a.xsave[5] = 0x5a;
	a.nmsrs = 2;
	a.msrs[0] = (struct kvm_msr_entry){ .index = 0x10, .data = 1000 };
	a.msrs[1] = (struct kvm_msr_entry){ .index = 0x4b564d10, .data = 0x1000 | 0x11 };
	a.tsc_khz = 2000000;
	snap_writer_init(&w);
	x86_vcpu_encode(&w, &a);
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(x86_vcpu_decode(&r, &b), 0);
	assert_int_equal(snap_reader_left(&r), 0);
	assert_true(b.regs.rip == a.regs.rip);
	assert_int_equal(b.xsave[5], 0x5a);
	assert_int_equal(b.nmsrs, 2);
	assert_true(b.msrs[1].data == 0x1011);
	/* One second later at 2 GHz: the TSC moves on by 2e9. */
	x86_vcpu_advance_tsc(&b, 1000000000ULL);
	assert_true(b.msrs[0].data == 1000 + 2000000000ULL);
	x86_vcpu_state_free(&b);
	for (size_t len = 0; len < w.len; len += 97) {
		snap_reader_init(&r, w.buf, len);
		assert_int_equal(x86_vcpu_decode(&r, &b), CV_EINPUT);
	}
	/* The register block's size field says 8 bytes: refused. */
	w.buf[4 + sizeof(struct kvm_cpuid_entry2)] = 8;
	w.buf[4 + sizeof(struct kvm_cpuid_entry2) + 1] = 0;
	snap_reader_init(&r, w.buf, w.len);
	assert_int_equal(x86_vcpu_decode(&r, &b), CV_EINPUT);
	snap_writer_free(&w);
	x86_vcpu_state_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_round_trip),
		cmocka_unit_test(test_stream_hostile),
		cmocka_unit_test(test_file_round_trip),
		cmocka_unit_test(test_file_truncated_and_flipped),
		cmocka_unit_test(test_file_refusals),
		cmocka_unit_test(test_serial_round_trip_and_range),
		cmocka_unit_test(test_i8042_queue_range),
		cmocka_unit_test(test_device_without_state_is_refused),
		cmocka_unit_test(test_disk_queues_section),
		cmocka_unit_test(test_pci_config_of_another_device),
		cmocka_unit_test(test_cpuid_check),
		cmocka_unit_test(test_config_round_trip),
		cmocka_unit_test(test_network_overrides),
		cmocka_unit_test(test_vcpu_encoding),
		cmocka_unit_test(test_mem_chain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
