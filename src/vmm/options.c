#include "vmm/options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/mac.h"
#include "util/err.h"
#include "util/size.h"

const char options_run_usage[] =
	"usage: cellvm run --kernel PATH [options]\n"
	"  --kernel PATH        bzImage or uncompressed ELF vmlinux\n"
	"  --initrd PATH        initial ramdisk\n"
	"  --cmdline STR        kernel command line (default \"console=ttyS0 reboot=k panic=-1\")\n"
	"  --cpus N             number of vCPUs, 1..64 (default 1)\n"
	"  --memory SIZE        guest RAM, e.g. 512M or 2G (default 256M)\n"
	"  --reboot exit|restart  what a guest reboot does (default exit)\n"
	"  --disk PATH[,ro][,id=NAME][,format=raw|qcow2]  a virtio disk (repeatable, up to 8)\n"
	"  --transport pci|mmio  how virtio devices attach (default pci)\n"
	"  --net tap=NAME[,mac=MAC]  a virtio NIC on a tap device (repeatable, up to 4)\n"
	"  --console serial|virtio  where this terminal's input goes: ttyS0 or hvc0 (default serial)\n"
	"  --name NAME          the VM's name; NIC MAC addresses derive from it (default cellvm)\n"
	"Console: the guest's ttyS0 is this terminal; Ctrl-A x quits, Ctrl-A h helps.\n";

void vm_config_defaults(struct vm_config *cfg)
{
	*cfg = (struct vm_config){
		.cmdline = "console=ttyS0 reboot=k panic=-1",
		.cpus = 1,
		.memory = 256ULL << 20,
		.reboot = REBOOT_EXIT,
		.name = "cellvm",
	};
}

static int parse_cpus(const char *v, unsigned *out, char *err, size_t errlen)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (!*v || *end || errno || v[0] == '-' || n < 1 || n > CV_MAX_CPUS)
		return cv_fmt(err, errlen, "invalid --cpus '%s': must be between 1 and %d", v, CV_MAX_CPUS);
	*out = (unsigned)n;
	return 0;
}

static int parse_memory(const char *v, uint64_t *out, char *err, size_t errlen)
{
	uint64_t n;

	if (!size_parse(v, &n))
		return cv_fmt(err, errlen, "invalid --memory '%s': not a size (use e.g. 512M, 2G)", v);
	if (n < CV_MIN_MEMORY || n > CV_MAX_MEMORY)
		return cv_fmt(err, errlen, "invalid --memory '%s': must be between 16M and 1T", v);
	/* KVM memory slots are page-granular. */
	if (n & 4095)
		return cv_fmt(err, errlen, "invalid --memory '%s': must be a multiple of 4K", v);
	*out = n;
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

/* tap=NAME[,mac=MAC] */
static int parse_net(const char *v, struct vm_config *cfg, char *err, size_t errlen)
{
	struct net_config *n;
	const char *p = v;

	if (cfg->nnics == CV_MAX_NICS)
		return cv_fmt(err, errlen, "too many --net options (at most %d)", CV_MAX_NICS);
	n = &cfg->nics[cfg->nnics];
	*n = (struct net_config){ 0 };
	while (*p) {
		size_t len = strcspn(p, ",");
		char opt[64];

		if (len >= sizeof(opt))
			return cv_fmt(err, errlen, "invalid --net '%s': option too long", v);
		memcpy(opt, p, len);
		opt[len] = 0;
		if (!strncmp(opt, "tap=", 4) && len > 4 && len - 4 < sizeof(n->tap))
			strcpy(n->tap, opt + 4);
		else if (!strncmp(opt, "tap=", 4))
			return cv_fmt(err, errlen, "invalid --net '%s': tap name must be 1 to 15 characters", v);
		else if (!strncmp(opt, "mac=", 4) && mac_parse(opt + 4, n->mac))
			n->mac_set = true;
		else if (!strncmp(opt, "mac=", 4))
			return cv_fmt(err, errlen, "invalid --net '%s': bad MAC '%s' (use e.g. 52:54:00:12:34:56)", v,
				      opt + 4);
		else
			return cv_fmt(err, errlen, "invalid --net '%s': unknown option '%s'", v, opt);
		p += len + (p[len] == ',');
	}
	if (!n->tap[0])
		return cv_fmt(err, errlen, "invalid --net '%s': missing tap=NAME", v);
	cfg->nnics++;
	return 0;
}

/* PATH[,ro][,id=NAME][,format=F] */
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
		if (!strcmp(opt, "ro"))
			d->readonly = true;
		else if (!strcmp(opt, "format=raw"))
			d->format = DISK_FORMAT_RAW;
		else if (!strcmp(opt, "format=qcow2"))
			d->format = DISK_FORMAT_QCOW2;
		else if (!strncmp(opt, "format=", 7))
			return cv_fmt(err, errlen, "invalid --disk '%s': unknown format '%s' (raw or qcow2)", v, opt + 7);
		else if (!strncmp(opt, "id=", 3) && strlen(opt + 3) <= CV_DISK_ID_MAX)
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

int options_parse_run(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen)
{
	vm_config_defaults(cfg);
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *val;
		const char *eq = strchr(arg, '=');
		char name[32];
		size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		int rc = 0;

		if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
			return 1;
		if (strncmp(arg, "--", 2) || nlen >= sizeof(name))
			return cv_fmt(err, errlen, "unknown option '%s'", arg);
		memcpy(name, arg, nlen);
		name[nlen] = 0;
		if (strcmp(name, "--kernel") && strcmp(name, "--initrd") && strcmp(name, "--cmdline") &&
		    strcmp(name, "--cpus") && strcmp(name, "--memory") && strcmp(name, "--reboot") &&
		    strcmp(name, "--disk") && strcmp(name, "--transport") && strcmp(name, "--net") &&
		    strcmp(name, "--console") && strcmp(name, "--name"))
			return cv_fmt(err, errlen, "unknown option '%s'", arg);
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
			rc = parse_cpus(val, &cfg->cpus, err, errlen);
		else if (!strcmp(name, "--memory"))
			rc = parse_memory(val, &cfg->memory, err, errlen);
		else if (!strcmp(name, "--disk"))
			rc = parse_disk(val, cfg, err, errlen);
		else if (!strcmp(name, "--transport"))
			rc = parse_transport(val, &cfg->transport, err, errlen);
		else if (!strcmp(name, "--net"))
			rc = parse_net(val, cfg, err, errlen);
		else if (!strcmp(name, "--console"))
			rc = parse_console(val, &cfg->console, err, errlen);
		else if (!strcmp(name, "--name") && !*val)
			rc = cv_fmt(err, errlen, "invalid --name '': must not be empty");
		else if (!strcmp(name, "--name"))
			cfg->name = val;
		else
			rc = parse_reboot(val, &cfg->reboot, err, errlen);
		if (rc)
			return rc;
	}
	if (!cfg->kernel)
		return cv_fmt(err, errlen, "missing --kernel PATH (see cellvm run --help)");
	return 0;
}
