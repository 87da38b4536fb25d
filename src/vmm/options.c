#include "vmm/options.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cpu_config.h"
#include "net/netopt.h"
#include "util/err.h"
#include "util/size.h"
#include "virtio/blk.h"
#include "virtio/poll.h"
#include "vmm/seccomp.h"
#include "vmm/balloon_opt.h"
#include "vmm/mmds_opt.h"

const char options_run_usage[] =
	"usage: cellvm run --kernel PATH [options]\n"
	"  --kernel PATH        bzImage or uncompressed ELF vmlinux\n"
	"  --initrd PATH        initial ramdisk\n"
	"  --cmdline STR        kernel command line (default \"console=ttyS0 reboot=k panic=-1\")\n"
	"  --cpus N[,quota=P%][,pin=LIST]  number of vCPUs, 1..64 (default 1); quota caps their CPU\n"
	"                       time at P% of one host CPU; pin runs vCPU i on the i-th host CPU of\n"
	"                       LIST (0-3 or 0,2,...)\n"
	"  --memory SIZE[,OPT]  guest RAM, e.g. 512M or 2G (default 256M); OPT: backend=anon|memfd,\n"
	"                       file=PATH, hugepages=2M|1G|thp, shared=on|off, merge=on, prealloc=on,\n"
	"                       node=N\n"
	"  --cpu-template T2|C3|None|FILE  the CPUID the guest sees: a static template, or a\n"
	"                       custom one in Firecracker's cpu-config JSON (cpuid_modifiers)\n"
	"  --reboot exit|restart  what a guest reboot does (default exit)\n"
	"  --disk PATH[,ro][,id=NAME][,format=raw|qcow2][,iops=N][,bps=SIZE]  a virtio disk (repeatable, up to 8);\n"
	"                       iops/bps limit operations and bytes per second (bursts: iops_burst=, bps_burst=);\n"
	"                       queues=N request queues, 1..16 (default one per vCPU); poll_us=N polls each\n"
	"                       queue for N microseconds after a completion before waiting for a kick\n"
	"                       (0..1000000, default 0: latency for CPU)\n"
	"  --transport pci|mmio  how virtio devices attach (default pci)\n"
	"  --net MODE[,options]  a virtio NIC (repeatable, up to 4); MODE is one of\n"
	"                         nat[,hostfwd=tcp|udp:[HOSTIP]:PORT-[GUESTIP]:PORT]...[,restrict=on]\n"
	"                         tap=NAME | bridge=BR[,tap=NAME] | hostonly=NAME[,net=A.B.C.0/N][,tap=NAME]\n"
	"                         switch=PATH (a `cellvm switch PATH` running on this host)\n"
	"                       options of every mode: mac=MAC, rx_rate=SIZE, tx_rate=SIZE (bytes/s),\n"
	"                       rx_burst=SIZE, tx_burst=SIZE\n"
	"  --vsock cid=N,uds=PATH  a virtio-vsock device: guest CID N (3 and up); the host reaches\n"
	"                       guest ports through PATH (\"CONNECT PORT\\n\"), the guest reaches\n"
	"                       host port P at PATH_P\n"
	"  --mmds [nics=net0+net1][,version=V1|V2][,address=IP][,imds_compat=on]  the metadata\n"
	"                       service (MMDS) on those NICs (default net0, V1, 169.254.169.254);\n"
	"                       its data comes with the API's PUT /mmds\n"
	"  --console serial|virtio  where this terminal's input goes: ttyS0 or hvc0 (default serial)\n"
	"  --name NAME          the VM's name; NIC MAC addresses derive from it (default cellvm)\n"
	"  --api-sock PATH      serve Firecracker's API on this Unix socket (pause, snapshots, ...);\n"
	"                       without --kernel, --config-file or --restore the VM waits for its\n"
	"                       configuration and InstanceStart\n"
	"  --config-file FILE   the VM in Firecracker's JSON config format (boot-source, drives, ...)\n"
	"  --console-sock PATH  the serial console on this Unix socket instead of stdin/stdout\n"
	"  --pid-file PATH      write the PID here and hold a lock on it while running\n"
	"  --restore DIR        continue the VM snapshotted into DIR (DIR/state, DIR/memory; made by\n"
	"                       the API's PUT /snapshot/create); the VM's options come from the snapshot\n"
	"  --net-override IFACE=TAP  with --restore or --incoming: NIC IFACE (netN, or the API's\n"
	"                       iface_id) uses tap TAP instead of the VM's (each clone needs its own)\n"
	"  --incoming tcp:ADDR:PORT  wait for a VM migrating here (PUT /migrate on the source), then\n"
	"                       run it; with --migrate-token TOKEN, which the source must give, and\n"
	"                       --migrate-tls: TLS keyed by the token (the source sends tls: true)\n"
	"  --receive-dir DIR  with --incoming: disks the source sends along (copy_storage) are\n"
	"                       written to DIR under their file names\n"
	"  --disk-override DRIVE=PATH  with --incoming: the copy of drive DRIVE (vda, vdb, ... or its\n"
	"                       id) goes to PATH\n"
	"  --allow-backing DIR  qcow2 backing files may also lie under DIR (else only in the directory\n"
	"                       of the image given: an image must not make the guest read host files)\n"
	"  --seccomp kill|log|off  the VMM's per-thread syscall filters (default kill, or\n"
	"                       $CELLVM_SECCOMP): kill ends the VMM on a refused call, naming it;\n"
	"                       log lets it through and the kernel logs it (dmesg: type=1326)\n"
	"  --balloon amount=MIB[,deflate_on_oom=on][,stats=SECONDS][,free_page_reporting=on]\n"
	"                       a virtio-balloon: MIB taken from the guest at boot (default 0; PUT/PATCH\n"
	"                       /balloon change it), deflate when the guest runs out of memory,\n"
	"                       statistics every SECONDS, idle free pages handed back to the host\n"
	"  --track-dirty-pages  track the pages the guest writes, so that the API can take Diff\n"
	"                       snapshots (only what changed since the previous snapshot)\n"
	"Console: the guest's ttyS0 is this terminal; Ctrl-A x quits, Ctrl-A h helps.\n";

void vm_config_defaults(struct vm_config *cfg)
{
	*cfg = (struct vm_config){
		.cmdline = "console=ttyS0 reboot=k panic=-1",
		.cpus = 1,
		.memory = 256ULL << 20,
		.ram = RAM_CONFIG_DEFAULT,
		.reboot = REBOOT_EXIT,
		.name = "cellvm",
	};
}

/* LIST: host CPUs as 0-3 or 0,2,5 (or both); each must be one cellvm may
 * run on. */
static int parse_pin(const char *opt, const char *list, struct vm_config *cfg, char *err, size_t errlen)
{
	cpu_set_t allowed;
	const char *p = list;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		CPU_ZERO(&allowed);
	cfg->npin = 0;
	while (*p) {
		char *end;
		unsigned long lo, hi;

		errno = 0;
		lo = strtoul(p, &end, 10);
		hi = lo;
		if (end != p && *end == '-') {
			p = end + 1;
			hi = strtoul(p, &end, 10);
		}
		if (end == p || errno || *p == '-' || (*end && *end != ',') || hi < lo || hi >= CPU_SETSIZE)
			return cv_fmt(err, errlen, "invalid --cpus '%s': pin= takes host CPUs like 0-3 or 0,2", opt);
		for (unsigned long c = lo; c <= hi; c++) {
			if (!CPU_ISSET(c, &allowed))
				return cv_fmt(err, errlen, "invalid --cpus '%s': host CPU %lu is not one cellvm may run on",
					      opt, c);
			if (cfg->npin == CV_MAX_CPUS)
				return cv_fmt(err, errlen, "invalid --cpus '%s': more than %d CPUs to pin to", opt,
					      CV_MAX_CPUS);
			cfg->pin[cfg->npin++] = (int)c;
		}
		p = *end ? end + 1 : end;
	}
	if (!cfg->npin)
		return cv_fmt(err, errlen, "invalid --cpus '%s': pin= needs at least one host CPU", opt);
	return 0;
}

/* --cpus N[,pin=LIST][,quota=P%] */
static int parse_cpus(const char *v, struct vm_config *cfg, char *err, size_t errlen)
{
	char buf[256], pins[256] = "", *save = NULL, *tok;
	char *end;
	unsigned long n;

	if (strlen(v) >= sizeof(buf))
		return cv_fmt(err, errlen, "invalid --cpus: value too long");
	strcpy(buf, v);
	tok = strtok_r(buf, ",", &save);
	errno = 0;
	n = tok ? strtoul(tok, &end, 10) : 0;
	if (!tok || !*tok || *end || errno || tok[0] == '-' || n < 1 || n > CV_MAX_CPUS)
		return cv_fmt(err, errlen, "invalid --cpus '%s': must be between 1 and %d", v, CV_MAX_CPUS);
	cfg->cpus = (unsigned)n;
	cfg->npin = 0;
	cfg->cpu_quota = 0;
	while ((tok = strtok_r(NULL, ",", &save))) {
		/* The pin list has commas of its own: bare numbers after pin= are its. */
		if (!strncmp(tok, "pin=", 4) || (*pins && !strchr(tok, '='))) {
			size_t len = strlen(pins);

			snprintf(pins + len, sizeof(pins) - len, "%s%s", len ? "," : "", tok + (len ? 0 : 4));
			if (!*pins)
				return cv_fmt(err, errlen, "invalid --cpus '%s': pin= needs at least one host CPU", v);
			continue;
		}
		if (!strncmp(tok, "quota=", 6)) {
			const char *q = tok + 6;

			errno = 0;
			n = strtoul(q, &end, 10);
			if (end == q || *q == '-' || errno || strcmp(end, "%") || n < 1)
				return cv_fmt(err, errlen, "invalid --cpus '%s': quota= is a percentage of one host CPU, "
							   "like 150%%", v);
			if (n >= 100 * cfg->cpus)
				return cv_fmt(err, errlen,
					      "invalid --cpus '%s': quota %lu%% is not below what %u vCPUs can use (%u%%)", v,
					      n, cfg->cpus, 100 * cfg->cpus);
			cfg->cpu_quota = (unsigned)n;
			continue;
		}
		return cv_fmt(err, errlen, "invalid --cpus '%s': unknown option '%s' (pin=, quota=)", v, tok);
	}
	return *pins ? parse_pin(v, pins, cfg, err, errlen) : 0;
}

/* --memory SIZE[,OPTION...] (the options: vmm/ram.h). */
static int parse_memory(const char *v, struct vm_config *cfg, char *err, size_t errlen)
{
	const char *comma = strchr(v, ',');
	char size[32];
	uint64_t n;

	if ((comma ? (size_t)(comma - v) : strlen(v)) >= sizeof(size))
		return cv_fmt(err, errlen, "invalid --memory '%.40s': not a size (use e.g. 512M, 2G)", v);
	snprintf(size, sizeof(size), "%.*s", comma ? (int)(comma - v) : (int)strlen(v), v);
	if (!size_parse(size, &n))
		return cv_fmt(err, errlen, "invalid --memory '%s': not a size (use e.g. 512M, 2G)", size);
	if (n < CV_MIN_MEMORY || n > CV_MAX_MEMORY)
		return cv_fmt(err, errlen, "invalid --memory '%s': must be between 16M and 1T", size);
	/* KVM memory slots are page-granular. */
	if (n & 4095)
		return cv_fmt(err, errlen, "invalid --memory '%s': must be a multiple of 4K", size);
	cfg->memory = n;
	cfg->ram = RAM_CONFIG_DEFAULT;
	if (comma && ram_parse(comma + 1, &cfg->ram, err, errlen))
		return CV_EINPUT;
	if (n % ram_page_size(&cfg->ram))
		return cv_fmt(err, errlen, "invalid --memory '%s': not a whole number of huge pages", v);
	return 0;
}

static int parse_reboot(const char *v, enum reboot_action *out, char *err, size_t errlen)
{
	if (!strcmp(v, "exit"))
		*out = REBOOT_EXIT;
	else if (!strcmp(v, "restart"))
		*out = REBOOT_RESTART;
	else
		return cv_fmt(err, errlen, "invalid --reboot '%s': use exit or restart", v);
	return 0;
}

static int parse_transport(const char *v, enum virtio_transport_kind *out, char *err, size_t errlen)
{
	if (!strcmp(v, "pci"))
		*out = TRANSPORT_PCI;
	else if (!strcmp(v, "mmio"))
		*out = TRANSPORT_MMIO;
	else
		return cv_fmt(err, errlen, "invalid --transport '%s': use pci or mmio", v);
	return 0;
}

static int parse_console(const char *v, enum console_kind *out, char *err, size_t errlen)
{
	if (!strcmp(v, "serial"))
		*out = CONSOLE_SERIAL;
	else if (!strcmp(v, "virtio"))
		*out = CONSOLE_VIRTIO;
	else
		return cv_fmt(err, errlen, "invalid --console '%s': use serial or virtio", v);
	return 0;
}

/* cid=N,uds=PATH: both required, once each. */
static int parse_vsock(const char *v, struct vsock_config *vs, char *err, size_t errlen)
{
	char buf[256], *save = NULL;
	bool cid = false;

	if (vs->set)
		return cv_fmt(err, errlen, "invalid --vsock '%s': a VM has one vsock device", v);
	if (strlen(v) >= sizeof(buf))
		return cv_fmt(err, errlen, "invalid --vsock '%.64s...': too long", v);
	snprintf(buf, sizeof(buf), "%s", v);
	for (char *opt = strtok_r(buf, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		if (!strncmp(opt, "cid=", 4)) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(opt + 4, &end, 10);
			if (cid || opt[4] < '0' || opt[4] > '9' || *end || errno || n < 3 || n >= UINT32_MAX)
				return cv_fmt(err, errlen, "invalid --vsock '%s': cid must be given once, 3..%u", v,
					      UINT32_MAX - 1);
			vs->cid = (uint32_t)n;
			cid = true;
		} else if (!strncmp(opt, "uds=", 4) && !vs->uds[0] && opt[4] && strlen(opt + 4) < sizeof(vs->uds)) {
			snprintf(vs->uds, sizeof(vs->uds), "%s", opt + 4);
		} else if (!strncmp(opt, "uds=", 4)) {
			return cv_fmt(err, errlen, "invalid --vsock '%s': uds must be given once, 1..%zu bytes", v,
				      sizeof(vs->uds) - 1);
		} else {
			return cv_fmt(err, errlen, "invalid --vsock '%s': unknown option '%s' (cid=N,uds=PATH)", v, opt);
		}
	}
	if (!cid || !vs->uds[0])
		return cv_fmt(err, errlen, "invalid --vsock '%s': needs cid=N and uds=PATH", v);
	vs->set = true;
	return 0;
}

/* MODE[,option]... (net/netopt.h) */
static int parse_net(const char *v, struct vm_config *cfg, char *err, size_t errlen)
{
	int rc;

	if (cfg->nnics == CV_MAX_NICS)
		return cv_fmt(err, errlen, "too many --net options (at most %d)", CV_MAX_NICS);
	if ((rc = netopt_parse(v, &cfg->nics[cfg->nnics], err, errlen)))
		return rc;
	snprintf(cfg->nics[cfg->nnics].id, sizeof(cfg->nics[0].id), "net%u", cfg->nnics);
	cfg->nnics++;
	return 0;
}

/* --net-override ID=TAP */
static int parse_override(const char *v, struct vm_config *cfg, char *err, size_t errlen)
{
	const char *eq = strchr(v, '=');
	char id[CV_NIC_ID_MAX + 2];

	if (!eq || (size_t)(eq - v) >= sizeof(id))
		return cv_fmt(err, errlen, "invalid --net-override '%s': use IFACE=TAP (e.g. net0=tap7)", v);
	snprintf(id, sizeof(id), "%.*s", (int)(eq - v), v);
	return netopt_override(cfg->overrides, &cfg->noverrides, id, eq + 1, err, errlen);
}

/* --disk-override DRIVE=PATH */
static int parse_disk_override(const char *v, struct vm_config *cfg, char *err, size_t errlen)
{
	const char *eq = strchr(v, '=');
	struct disk_override *o = &cfg->disk_overrides[cfg->ndisk_overrides];

	if (!eq || eq == v || (size_t)(eq - v) >= sizeof(o->drive) || !eq[1])
		return cv_fmt(err, errlen, "invalid --disk-override '%s': use DRIVE=PATH (e.g. vda=/srv/vm.img)", v);
	if (cfg->ndisk_overrides == CV_MAX_DISKS)
		return cv_fmt(err, errlen, "too many --disk-override options (at most %d)", CV_MAX_DISKS);
	snprintf(o->drive, sizeof(o->drive), "%.*s", (int)(eq - v), v);
	for (unsigned i = 0; i < cfg->ndisk_overrides; i++)
		if (!strcmp(cfg->disk_overrides[i].drive, o->drive))
			return cv_fmt(err, errlen, "invalid --disk-override '%s': drive '%s' given twice", v, o->drive);
	o->path = eq + 1;
	cfg->ndisk_overrides++;
	return 0;
}

/* iops=N / iops_burst=N: a positive count. */
static bool parse_count(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return *s >= '0' && *s <= '9' && !*end && !errno && *out;
}

/* The rate-limit options of --disk; false if opt is none of them. */
static bool disk_limit_option(const char *opt, struct ratelimit_config *l, bool *ok)
{
	const char *val = strchr(opt, '=');
	size_t klen = val ? (size_t)(val - opt) : 0;

	if (!val)
		return false;
	val++;
	if (klen == 4 && !strncmp(opt, "iops", 4))
		*ok = parse_count(val, &l->ops);
	else if (klen == 10 && !strncmp(opt, "iops_burst", 10))
		*ok = parse_count(val, &l->ops_burst);
	else if (klen == 3 && !strncmp(opt, "bps", 3))
		*ok = size_parse(val, &l->bps) && l->bps;
	else if (klen == 9 && !strncmp(opt, "bps_burst", 9))
		*ok = size_parse(val, &l->bps_burst) && l->bps_burst;
	else
		return false;
	return true;
}

/* queues=N / poll_us=N: a decimal in [min, max]. */
static bool parse_bounded(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v < min || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

/* PATH[,ro][,id=NAME][,format=F][,queues=N][,poll_us=N] */
static int parse_disk(const char *v, struct vm_config *cfg, char *err, size_t errlen)
{
	struct disk_config *d;
	char *buf, *opt, *save = NULL;

	if (cfg->ndisks == CV_MAX_DISKS)
		return cv_fmt(err, errlen, "too many --disk options (at most %d)", CV_MAX_DISKS);
	if (strlen(v) >= sizeof(cfg->strings[0]))
		return cv_fmt(err, errlen, "invalid --disk '%.64s...': too long", v);
	d = &cfg->disks[cfg->ndisks];
	*d = (struct disk_config){ 0 };
	buf = strcpy(cfg->strings[cfg->ndisks], v);
	d->path = strtok_r(buf, ",", &save);
	if (!d->path || !*d->path || v[0] == ',')
		return cv_fmt(err, errlen, "invalid --disk '%s': missing path", v);
	while ((opt = strtok_r(NULL, ",", &save))) {
		bool ok;

		if (disk_limit_option(opt, &d->limit, &ok)) {
			if (!ok)
				return cv_fmt(err, errlen,
					      "invalid --disk '%s': bad '%s' (iops=N, bps=SIZE per second, e.g. 10M)", v,
					      opt);
		} else if (!strcmp(opt, "ro"))
			d->readonly = true;
		else if (!strcmp(opt, "format=raw"))
			d->format = DISK_FORMAT_RAW;
		else if (!strcmp(opt, "format=qcow2"))
			d->format = DISK_FORMAT_QCOW2;
		else if (!strncmp(opt, "format=", 7))
			return cv_fmt(err, errlen, "invalid --disk '%s': unknown format '%s' (raw or qcow2)", v, opt + 7);
		else if (!strncmp(opt, "queues=", 7)) {
			if (!parse_bounded(opt + 7, 1, VIRTIO_BLK_MAX_QUEUES, &d->queues))
				return cv_fmt(err, errlen, "invalid --disk '%s': bad queues '%s' (1..%d)", v, opt + 7,
					      VIRTIO_BLK_MAX_QUEUES);
		} else if (!strncmp(opt, "poll_us=", 8)) {
			if (!parse_bounded(opt + 8, 0, VQ_POLL_MAX_US, &d->poll_us))
				return cv_fmt(err, errlen, "invalid --disk '%s': bad poll_us '%s' (0..%d)", v, opt + 8,
					      VQ_POLL_MAX_US);
		} else if (!strncmp(opt, "id=", 3) && strlen(opt + 3) <= CV_DISK_ID_MAX)
			strcpy(d->id, opt + 3);
		else if (!strncmp(opt, "id=", 3))
			return cv_fmt(err, errlen, "invalid --disk '%s': id longer than %d characters", v,
				      CV_DISK_ID_MAX);
		else
			return cv_fmt(err, errlen, "invalid --disk '%s': unknown option '%s'", v, opt);
	}
	if (!d->id[0])
		snprintf(d->id, sizeof(d->id), "disk%u", cfg->ndisks);
	cfg->ndisks++;
	return 0;
}

/* Where the value of an option about the process (API, config file,
 * console socket, pid file) rather than the VM goes; NULL for others. */
static const char **process_option(const char *name, struct vm_config *cfg)
{
	return !strcmp(name, "--api-sock")	? &cfg->api_sock
	       : !strcmp(name, "--config-file")	? &cfg->config_file
	       : !strcmp(name, "--console-sock") ? &cfg->console_sock
	       : !strcmp(name, "--pid-file")	? &cfg->pid_file
	       : !strcmp(name, "--restore")	? &cfg->restore_dir
	       : !strcmp(name, "--incoming")	? &cfg->incoming
	       : !strcmp(name, "--migrate-token") ? &cfg->migrate_token
	       : !strcmp(name, "--receive-dir") ? &cfg->receive_dir
						: NULL;
}

/* Options that describe the VM itself, which an API socket or a config
 * file describes instead. */
static bool is_vm_option(const char *name)
{
	return !strcmp(name, "--kernel") || !strcmp(name, "--initrd") || !strcmp(name, "--cmdline") ||
	       !strcmp(name, "--cpus") || !strcmp(name, "--memory") || !strcmp(name, "--disk") ||
	       !strcmp(name, "--net") || !strcmp(name, "--cpu-template") || !strcmp(name, "--vsock") ||
	       !strcmp(name, "--balloon") || !strcmp(name, "--mmds");
}

int options_parse_run(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen)
{
	const char *vm_option = NULL, *transport_or_console = NULL;

	vm_config_defaults(cfg);
	if (seccomp_default_mode(&cfg->seccomp, err, errlen))
		return CV_EINPUT;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *val;
		const char *eq = strchr(arg, '=');
		char name[32];
		size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		int rc = 0;

		if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
			return 1;
		if (!strcmp(arg, "--track-dirty-pages")) {
			cfg->track_dirty_pages = true;
			continue;
		}
		if (!strcmp(arg, "--migrate-tls")) {
			cfg->migrate_tls = true;
			continue;
		}
		if (strncmp(arg, "--", 2) || nlen >= sizeof(name))
			return cv_fmt(err, errlen, "unknown option '%s'", arg);
		memcpy(name, arg, nlen);
		name[nlen] = 0;
		if (strcmp(name, "--kernel") && strcmp(name, "--initrd") && strcmp(name, "--cmdline") &&
		    strcmp(name, "--cpus") && strcmp(name, "--memory") && strcmp(name, "--reboot") &&
		    strcmp(name, "--disk") && strcmp(name, "--transport") && strcmp(name, "--net") &&
		    strcmp(name, "--console") && strcmp(name, "--name") && strcmp(name, "--net-override") &&
		    strcmp(name, "--disk-override") && strcmp(name, "--seccomp") && strcmp(name, "--cpu-template") &&
		    strcmp(name, "--allow-backing") && strcmp(name, "--vsock") && strcmp(name, "--balloon") &&
		    strcmp(name, "--mmds") && !process_option(name, cfg))
			return cv_fmt(err, errlen, "unknown option '%s'", arg);
		if (is_vm_option(name))
			vm_option = arg;
		if (!strcmp(name, "--transport") || !strcmp(name, "--console") || !strcmp(name, "--reboot"))
			transport_or_console = arg;
		if (eq) {
			val = eq + 1;
		} else {
			if (i + 1 >= argc)
				return cv_fmt(err, errlen, "option '%s' needs a value", name);
			val = argv[++i];
		}
		if (!strcmp(name, "--kernel"))
			cfg->kernel = val;
		else if (!strcmp(name, "--initrd"))
			cfg->initrd = val;
		else if (!strcmp(name, "--cmdline"))
			cfg->cmdline = val;
		else if (!strcmp(name, "--cpus"))
			rc = parse_cpus(val, cfg, err, errlen);
		else if (!strcmp(name, "--memory"))
			rc = parse_memory(val, cfg, err, errlen);
		else if (!strcmp(name, "--disk"))
			rc = parse_disk(val, cfg, err, errlen);
		else if (!strcmp(name, "--transport"))
			rc = parse_transport(val, &cfg->transport, err, errlen);
		else if (!strcmp(name, "--net"))
			rc = parse_net(val, cfg, err, errlen);
		else if (!strcmp(name, "--net-override"))
			rc = parse_override(val, cfg, err, errlen);
		else if (!strcmp(name, "--disk-override"))
			rc = parse_disk_override(val, cfg, err, errlen);
		else if (!strcmp(name, "--balloon"))
			rc = balloon_parse(val, &cfg->balloon, err, errlen);
		else if (!strcmp(name, "--console"))
			rc = parse_console(val, &cfg->console, err, errlen);
		else if (!strcmp(name, "--allow-backing") &&
			 cfg->nallow_backing == sizeof(cfg->allow_backing) / sizeof(cfg->allow_backing[0]))
			rc = cv_fmt(err, errlen, "invalid --allow-backing '%s': at most %zu directories", val,
				    sizeof(cfg->allow_backing) / sizeof(cfg->allow_backing[0]));
		else if (!strcmp(name, "--allow-backing"))
			cfg->allow_backing[cfg->nallow_backing++] = val;
		else if (!strcmp(name, "--cpu-template"))
			rc = api_cpu_template_arg(val, &cfg->cpu_template, err, errlen);
		else if (!strcmp(name, "--seccomp"))
			rc = seccomp_parse_mode(val, &cfg->seccomp, err, errlen);
		else if (!strcmp(name, "--vsock"))
			rc = parse_vsock(val, &cfg->vsock, err, errlen);
		else if (!strcmp(name, "--mmds"))
			rc = mmds_parse(val, &cfg->mmds, err, errlen);
		else if (process_option(name, cfg) && !*val)
			rc = cv_fmt(err, errlen, "invalid %s '': must not be empty", name);
		else if (process_option(name, cfg))
			*process_option(name, cfg) = val;
		else if (!strcmp(name, "--name") && !*val)
			rc = cv_fmt(err, errlen, "invalid --name '': must not be empty");
		else if (!strcmp(name, "--name"))
			cfg->name = val;
		else
			rc = parse_reboot(val, &cfg->reboot, err, errlen);
		if (rc)
			return rc;
	}
	if (cfg->restore_dir && (vm_option || cfg->config_file || transport_or_console))
		return cv_fmt(err, errlen, "'%s' cannot be combined with --restore: the snapshot describes the VM",
			      vm_option ? vm_option : cfg->config_file ? "--config-file" : transport_or_console);
	if (cfg->incoming && (vm_option || cfg->config_file || cfg->restore_dir || transport_or_console))
		return cv_fmt(err, errlen, "'%s' cannot be combined with --incoming: the migration describes the VM",
			      vm_option ? vm_option : cfg->config_file ? "--config-file" : cfg->restore_dir ? "--restore"
												     : transport_or_console);
	if (cfg->migrate_tls && !cfg->incoming)
		return cv_fmt(err, errlen, "--migrate-tls is for --incoming: the source asks for TLS in PUT /migrate");
	if (!cfg->incoming != !cfg->migrate_token)
		return cv_fmt(err, errlen, "--incoming and --migrate-token go together: the source must give the token");
	if (cfg->noverrides && !cfg->restore_dir && !cfg->incoming)
		return cv_fmt(err, errlen,
			      "--net-override is for --restore and --incoming: a new VM names its taps in --net");
	if ((cfg->receive_dir || cfg->ndisk_overrides) && !cfg->incoming)
		return cv_fmt(err, errlen, "'%s' is for --incoming: where the disks a migration sends along go",
			      cfg->receive_dir ? "--receive-dir" : "--disk-override");
	if (vm_option && cfg->config_file)
		return cv_fmt(err, errlen, "'%s' cannot be combined with --config-file: the VM is described there",
			      vm_option);
	if (!cfg->kernel && !cfg->api_sock && !cfg->config_file && !cfg->restore_dir && !cfg->incoming)
		return cv_fmt(err, errlen, "missing --kernel PATH (see cellvm run --help)");
	if (mmds_check(&cfg->mmds, cfg->nnics, err, errlen))
		return CV_EINPUT;
	return balloon_check(&cfg->balloon, cfg->memory, err, errlen);
}
