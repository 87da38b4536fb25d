#include "snapshot/config.h"

#include <string.h>

#include "snapshot/fields.h"
#include "util/err.h"

static const struct snap_field limit_fields[] = {
	SNAP_FIELD(struct ratelimit_config, bps),
	SNAP_FIELD(struct ratelimit_config, bps_burst),
	SNAP_FIELD(struct ratelimit_config, ops),
	SNAP_FIELD(struct ratelimit_config, ops_burst),
};

/* Version 4's additions to a limit: Firecracker's one-time bursts. */
static const struct snap_field once_fields[] = {
	SNAP_FIELD(struct ratelimit_config, bps_once),
	SNAP_FIELD(struct ratelimit_config, ops_once),
};

static const struct snap_field hostfwd_fields[] = {
	SNAP_FLAG(struct net_hostfwd, udp),	   SNAP_FIELD(struct net_hostfwd, host_addr),
	SNAP_FIELD(struct net_hostfwd, guest_addr), SNAP_FIELD(struct net_hostfwd, host_port),
	SNAP_FIELD(struct net_hostfwd, guest_port),
};

/* Everything of a NIC but its strings, limits and forwards. */
static const struct snap_field nic_fields[] = {
	SNAP_FIELD(struct net_config, mode),	SNAP_ARRAY(struct net_config, mac),
	SNAP_FLAG(struct net_config, mac_set),	SNAP_FLAG(struct net_config, restricted),
	SNAP_FIELD(struct net_config, nfwd),	SNAP_FIELD(struct net_config, net_addr),
	SNAP_FIELD(struct net_config, net_prefix),
};

static const struct snap_field balloon_fields[] = {
	SNAP_FLAG(struct balloon_config, on),	    SNAP_FIELD(struct balloon_config, amount_mib),
	SNAP_FLAG(struct balloon_config, deflate_on_oom), SNAP_FIELD(struct balloon_config, stats_s),
	SNAP_FLAG(struct balloon_config, reporting),
};

void snap_config_encode(struct snap_writer *w, const struct vm_config *c)
{
	snap_put_str(w, c->kernel);
	snap_put_str(w, c->initrd);
	snap_put_str(w, c->cmdline);
	snap_put_str(w, c->name);
	snap_put_u32(w, c->cpus);
	snap_put_u64(w, c->memory);
	snap_put_u8(w, (uint8_t)c->reboot);
	snap_put_u8(w, (uint8_t)c->transport);
	snap_put_u8(w, (uint8_t)c->console);
	snap_put_u32(w, c->ndisks);
	for (unsigned i = 0; i < c->ndisks; i++) {
		const struct disk_config *d = &c->disks[i];

		snap_put_str(w, d->path);
		snap_put_u8(w, d->readonly);
		snap_put_u8(w, (uint8_t)d->format);
		snap_put_str(w, d->id);
		snap_put_fields(w, &d->limit, limit_fields, SNAP_NFIELDS(limit_fields));
	}
	snap_put_u32(w, c->nnics);
	for (unsigned i = 0; i < c->nnics; i++) {
		const struct net_config *n = &c->nics[i];

		snap_put_str(w, n->id);
		snap_put_str(w, n->tap);
		snap_put_str(w, n->name);
		snap_put_str(w, n->path);
		snap_put_fields(w, n, nic_fields, SNAP_NFIELDS(nic_fields));
		for (unsigned k = 0; k < n->nfwd && k < CV_MAX_HOSTFWD; k++)
			snap_put_fields(w, &n->fwd[k], hostfwd_fields, SNAP_NFIELDS(hostfwd_fields));
		snap_put_fields(w, &n->rx, limit_fields, SNAP_NFIELDS(limit_fields));
		snap_put_fields(w, &n->tx, limit_fields, SNAP_NFIELDS(limit_fields));
	}
	snap_put_u8(w, c->vsock.set);
	snap_put_u32(w, c->vsock.cid);
	snap_put_str(w, c->vsock.uds);
	snap_put_fields(w, &c->balloon, balloon_fields, SNAP_NFIELDS(balloon_fields));
	/* Version 4: what later PATCHes may have changed besides. */
	for (unsigned i = 0; i < c->ndisks; i++) {
		snap_put_u8(w, (uint8_t)c->disks[i].cache);
		snap_put_fields(w, &c->disks[i].limit, once_fields, SNAP_NFIELDS(once_fields));
	}
	for (unsigned i = 0; i < c->nnics; i++) {
		snap_put_fields(w, &c->nics[i].rx, once_fields, SNAP_NFIELDS(once_fields));
		snap_put_fields(w, &c->nics[i].tx, once_fields, SNAP_NFIELDS(once_fields));
	}
	snap_put_u8(w, c->entropy.set);
	snap_put_fields(w, &c->entropy.limit, limit_fields, SNAP_NFIELDS(limit_fields));
	snap_put_fields(w, &c->entropy.limit, once_fields, SNAP_NFIELDS(once_fields));
	snap_put_u8(w, c->smt);
	/* Version 5. */
	snap_put_u8(w, c->mmds.set);
	snap_put_u8(w, (uint8_t)c->mmds.version);
	snap_put_u8(w, c->mmds.imds_compat);
	snap_put_u32(w, c->mmds.addr);
	snap_put_u32(w, c->mmds.nics);
}

static void get_v4(struct snap_reader *r, struct vm_config *c)
{
	for (unsigned i = 0; i < c->ndisks && snap_reader_ok(r); i++) {
		uint8_t cache = snap_get_u8(r);

		if (cache > DISK_CACHE_UNSAFE)
			snap_reader_fail(r, "disk cache type out of range");
		c->disks[i].cache = cache;
		snap_get_fields(r, &c->disks[i].limit, once_fields, SNAP_NFIELDS(once_fields));
	}
	for (unsigned i = 0; i < c->nnics && snap_reader_ok(r); i++) {
		snap_get_fields(r, &c->nics[i].rx, once_fields, SNAP_NFIELDS(once_fields));
		snap_get_fields(r, &c->nics[i].tx, once_fields, SNAP_NFIELDS(once_fields));
	}
	c->entropy.set = snap_get_bool(r);
	snap_get_fields(r, &c->entropy.limit, limit_fields, SNAP_NFIELDS(limit_fields));
	snap_get_fields(r, &c->entropy.limit, once_fields, SNAP_NFIELDS(once_fields));
	c->smt = snap_get_bool(r);
	if (c->smt && c->cpus % 2)
		snap_reader_fail(r, "SMT with an odd number of vCPUs");
}

static void get_v5(struct snap_reader *r, struct vm_config *c)
{
	uint8_t v;

	c->mmds.set = snap_get_bool(r);
	v = snap_get_u8(r);
	c->mmds.imds_compat = snap_get_bool(r);
	c->mmds.addr = snap_get_u32(r);
	c->mmds.nics = snap_get_u32(r);
	c->mmds.version = v == 1 ? MMDS_V2 : MMDS_V1;
	if (v > 1 || (c->mmds.nics >> c->nnics))
		snap_reader_fail(r, "MMDS configuration out of range");
}

/* A string that may be absent (NULL) in the configuration. */
static const char *get_opt_str(struct snap_reader *r, char *buf, size_t cap)
{
	bool null;

	snap_get_str(r, buf, cap, &null);
	return null ? NULL : buf;
}

int snap_config_decode(struct snap_reader *r, uint32_t version, struct snap_config *out)
{
	struct vm_config *c = &out->cfg;
	uint8_t reboot, transport, console;

	/* Zero: a restored VM's RAM is anonymous (then its memory file). */
	memset(out, 0, sizeof(*out));
	c->kernel = get_opt_str(r, out->kernel, sizeof(out->kernel));
	c->initrd = get_opt_str(r, out->initrd, sizeof(out->initrd));
	c->cmdline = get_opt_str(r, out->cmdline, sizeof(out->cmdline));
	c->name = get_opt_str(r, out->name, sizeof(out->name));
	c->cpus = snap_get_u32(r);
	c->memory = snap_get_u64(r);
	reboot = snap_get_u8(r);
	transport = snap_get_u8(r);
	console = snap_get_u8(r);
	c->ndisks = snap_get_u32(r);
	if (!c->cmdline || !c->name || c->cpus < 1 || c->cpus > CV_MAX_CPUS || c->memory < CV_MIN_MEMORY ||
	    c->memory > CV_MAX_MEMORY || (c->memory & 4095) || reboot > REBOOT_RESTART || transport > TRANSPORT_MMIO ||
	    console > CONSOLE_VIRTIO || c->ndisks > CV_MAX_DISKS)
		snap_reader_fail(r, "machine configuration out of range");
	c->reboot = reboot;
	c->transport = transport;
	c->console = console;
	for (unsigned i = 0; i < c->ndisks && snap_reader_ok(r); i++) {
		struct disk_config *d = &c->disks[i];
		uint8_t format;

		d->path = get_opt_str(r, c->strings[i], sizeof(c->strings[i]));
		d->readonly = snap_get_bool(r);
		format = snap_get_u8(r);
		snap_get_str(r, d->id, sizeof(d->id), NULL);
		snap_get_fields(r, &d->limit, limit_fields, SNAP_NFIELDS(limit_fields));
		if (!d->path || format > DISK_FORMAT_QCOW2)
			snap_reader_fail(r, "disk configuration out of range");
		d->format = format;
	}
	c->nnics = snap_get_u32(r);
	if (c->nnics > CV_MAX_NICS)
		snap_reader_fail(r, "too many NICs");
	for (unsigned i = 0; i < c->nnics && snap_reader_ok(r); i++) {
		struct net_config *n = &c->nics[i];

		snap_get_str(r, n->id, sizeof(n->id), NULL);
		snap_get_str(r, n->tap, sizeof(n->tap), NULL);
		snap_get_str(r, n->name, sizeof(n->name), NULL);
		snap_get_str(r, n->path, sizeof(n->path), NULL);
		snap_get_fields(r, n, nic_fields, SNAP_NFIELDS(nic_fields));
		if (n->mode > NET_SWITCH || n->nfwd > CV_MAX_HOSTFWD || n->net_prefix > 32)
			snap_reader_fail(r, "NIC configuration out of range");
		for (unsigned k = 0; k < n->nfwd && snap_reader_ok(r); k++)
			snap_get_fields(r, &n->fwd[k], hostfwd_fields, SNAP_NFIELDS(hostfwd_fields));
		snap_get_fields(r, &n->rx, limit_fields, SNAP_NFIELDS(limit_fields));
		snap_get_fields(r, &n->tx, limit_fields, SNAP_NFIELDS(limit_fields));
	}
	if (version >= 3 && snap_reader_ok(r)) {
		c->vsock.set = snap_get_bool(r);
		c->vsock.cid = snap_get_u32(r);
		snap_get_str(r, c->vsock.uds, sizeof(c->vsock.uds), NULL);
		if (c->vsock.set && (c->vsock.cid < 3 || c->vsock.cid == UINT32_MAX || !c->vsock.uds[0]))
			snap_reader_fail(r, "vsock configuration out of range");
		snap_get_fields(r, &c->balloon, balloon_fields, SNAP_NFIELDS(balloon_fields));
		if ((uint64_t)c->balloon.amount_mib << 20 > c->memory || c->balloon.stats_s > CV_MAX_BALLOON_STATS_S)
			snap_reader_fail(r, "balloon configuration out of range");
	}
	if (version >= 4 && snap_reader_ok(r))
		get_v4(r, c);
	if (version >= 5 && snap_reader_ok(r))
		get_v5(r, c);
	return snap_reader_ok(r) ? 0 : CV_EINPUT;
}

int snap_config_override_nics(struct vm_config *c, const struct net_override *o, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct net_config *nic = NULL;

		for (unsigned k = 0; k < c->nnics && !nic; k++)
			if (!strcmp(c->nics[k].id, o[i].id))
				nic = &c->nics[k];
		if (!nic) {
			cv_err("invalid network override: the snapshot has no network interface '%s'", o[i].id);
			return CV_EINPUT;
		}
		/* Tap, bridge and host-only NICs have a tap; NAT and switch none. */
		if (nic->mode == NET_NAT || nic->mode == NET_SWITCH) {
			cv_err("invalid network override: network interface '%s' has no tap (it is on a %s)", o[i].id,
			       nic->mode == NET_NAT ? "NAT" : "switch");
			return CV_EINPUT;
		}
		memcpy(nic->tap, o[i].tap, sizeof(nic->tap));
	}
	return 0;
}
