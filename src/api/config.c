#include "api/config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/cpu_config.h"
#include "api/json.h"
#include "block/nbd.h"
#include "mmds/store.h"
#include "net/mac.h"
#include "util/cmdline.h"
#include "util/err.h"

#define DEFAULT_BOOT_ARGS "console=ttyS0 reboot=k panic=-1"
#define MAX_MEM_MIB (CV_MAX_MEMORY >> 20)
#define MIN_MEM_MIB (CV_MIN_MEMORY >> 20)

#define FIELDS(...) ((const struct jfield[]){ __VA_ARGS__ }), \
	sizeof((const struct jfield[]){ __VA_ARGS__ }) / sizeof(struct jfield)

void api_config_init(struct api_config *c)
{
	memset(c, 0, sizeof(*c));
	c->vcpus = 1;
	c->mem_mib = API_DEFAULT_MEM_MIB;
	c->mmds_size_limit = MMDS_DEFAULT_SIZE_LIMIT;
}

static void drive_free(struct api_drive *d)
{
	free(d->path);
	free(d->partuuid);
	d->path = d->partuuid = NULL;
}

static void logger_free(struct api_logger *l)
{
	free(l->path);
	free(l->module);
	memset(l, 0, sizeof(*l));
}

void api_config_free(struct api_config *c)
{
	free(c->kernel);
	free(c->initrd);
	free(c->boot_args);
	for (unsigned i = 0; i < c->ndrives; i++)
		drive_free(&c->drives[i]);
	logger_free(&c->logger);
	free(c->metrics.path);
	api_config_init(c);
}

int api_check_id(const char *id, char *err, size_t errlen)
{
	if (!*id)
		return cv_fmt(err, errlen, "The ID cannot be empty.");
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return cv_fmt(err, errlen,
				      "API Resource IDs can only contain alphanumeric characters and underscores.");
	return 0;
}

/* A host file the VM will open: it must exist now (Firecracker checks at
 * PUT time too), be a regular file or block device, and be accessible. */
static int check_path(json_t *v, const char *name, char *err, size_t errlen)
{
	const char *p = json_string_value(v);

	if (!json_string_length(v) || strlen(p) != json_string_length(v) || json_string_length(v) >= PATH_MAX)
		return cv_fmt(err, errlen, "invalid %s '%.64s': not a usable path", name, p);
	return 0;
}

static int check_file(json_t *v, const char *name, bool writable, char *err, size_t errlen)
{
	const char *p = json_string_value(v);
	struct stat st;
	int rc;

	if ((rc = check_path(v, name, err, errlen)))
		return rc;
	if (stat(p, &st) < 0 || access(p, R_OK | (writable ? W_OK : 0)) < 0)
		return cv_fmt(err, errlen, "invalid %s '%.200s': %s", name, p, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return cv_fmt(err, errlen, "invalid %s '%.200s': not a regular file or block device", name, p);
	return 0;
}

/* A drive's file, or an NBD URI: only connecting checks that (when the
 * drive opens). */
static int check_drive(json_t *v, bool writable, char *err, size_t errlen)
{
	if (nbd_image_is_uri(json_string_value(v)))
		return check_path(v, "path_on_host", err, errlen);
	return check_file(v, "path_on_host", writable, err, errlen);
}

/* ------------------------------------------------------------- machine */

int api_put_machine(struct api_config *c, json_t *body, bool patch, char *err, size_t errlen)
{
	json_t *vcpus, *mem, *smt, *tmpl, *dirty, *huge, *opts;
	static struct cpu_template t; /* big: not on the stack */
	struct ram_config ram = RAM_CONFIG_DEFAULT;
	uint64_t v;
	unsigned nvcpus = c->vcpus, mib = patch ? c->mem_mib : 0;
	int rc;

	rc = json_fields(body, "machine-config",
			 FIELDS({ "vcpu_count", JF_UINT, !patch, &vcpus }, { "mem_size_mib", JF_UINT, !patch, &mem },
				{ "smt", JF_BOOL, false, &smt }, { "cpu_template", JF_STRING, false, &tmpl },
				{ "track_dirty_pages", JF_BOOL, false, &dirty },
				{ "huge_pages", JF_STRING, false, &huge },
				{ "memory_options", JF_STRING, false, &opts }),
			 err, errlen);
	if (rc)
		return rc;
	if (patch && !vcpus && !mem && !smt && !tmpl && !dirty && !huge && !opts)
		return cv_fmt(err, errlen, "Empty PATCH request.");
	if (vcpus) {
		if ((rc = json_uint_range(vcpus, "vcpu_count", 1, CV_MAX_CPUS, &v, err, errlen)))
			return rc;
		nvcpus = (unsigned)v;
	}
	if (mem) {
		if ((rc = json_uint_range(mem, "mem_size_mib", MIN_MEM_MIB, MAX_MEM_MIB, &v, err, errlen)))
			return rc;
		mib = (unsigned)v;
	}
	/* Firecracker's rule: SMT pairs vCPUs into cores. */
	if ((smt ? json_is_true(smt) : patch && c->smt) && nvcpus > 1 && nvcpus % 2)
		return cv_fmt(err, errlen, "The vCPU number is invalid! The vCPU number can only be 1 or an even "
					   "number when SMT is enabled.");
	if (tmpl && (rc = cpu_template_static(json_string_value(tmpl), &t, err, errlen)))
		return rc;
	if (huge && strcmp(json_string_value(huge), "None") && strcmp(json_string_value(huge), "2M"))
		return cv_fmt(err, errlen, "invalid huge_pages '%.32s': \"None\" or \"2M\"", json_string_value(huge));
	if (opts && (json_string_length(opts) >= sizeof(c->mem_options) ||
		     ram_parse(json_string_value(opts), &ram, err, errlen)))
		return json_string_length(opts) >= sizeof(c->mem_options)
			       ? cv_fmt(err, errlen, "invalid memory_options: too long")
			       : CV_EINPUT;
	if (huge && !strcmp(json_string_value(huge), "2M") && ram.pages != RAM_PAGES_4K)
		return cv_fmt(err, errlen, "huge_pages \"2M\" and memory_options' hugepages exclude each other");
	c->vcpus = nvcpus;
	c->mem_mib = mib;
	if (huge || !patch)
		c->huge_2m = huge && !strcmp(json_string_value(huge), "2M");
	if (opts || !patch)
		snprintf(c->mem_options, sizeof(c->mem_options), "%s", opts ? json_string_value(opts) : "");
	/* PUT resets what it does not name, as Firecracker does. */
	if (tmpl)
		c->tmpl = t;
	else if (!patch && strcmp(c->tmpl.name, "custom"))
		memset(&c->tmpl, 0, sizeof(c->tmpl));
	if (dirty || !patch)
		c->track_dirty_pages = dirty && json_is_true(dirty);
	if (smt || !patch)
		c->smt = smt && json_is_true(smt);
	return 0;
}

json_t *api_machine_json(const struct api_config *c)
{
	json_t *j = json_pack("{s:I, s:I, s:b, s:b, s:s}", "vcpu_count", (json_int_t)c->vcpus, "mem_size_mib",
			      (json_int_t)c->mem_mib, "smt", c->smt, "track_dirty_pages", c->track_dirty_pages, "huge_pages",
			      c->huge_2m ? "2M" : "None");

	/* A custom template is not a machine-config name: GET /vm/config's cpu-config has it. */
	if (j && c->tmpl.n && strcmp(c->tmpl.name, "custom"))
		json_object_set_new(j, "cpu_template", json_string(c->tmpl.name));

	if (j && c->mem_options[0])
		json_object_set_new(j, "memory_options", json_string(c->mem_options));
	return j;
}

/* ------------------------------------------------------------- boot source */

int api_put_boot(struct api_config *c, json_t *body, char *err, size_t errlen)
{
	json_t *kernel, *initrd, *args;
	char *k = NULL, *i = NULL, *a = NULL;
	int rc;

	rc = json_fields(body, "boot-source",
			 FIELDS({ "kernel_image_path", JF_STRING, true, &kernel },
				{ "initrd_path", JF_STRING, false, &initrd }, { "boot_args", JF_STRING, false, &args }),
			 err, errlen);
	if (!rc)
		rc = check_file(kernel, "kernel_image_path", false, err, errlen);
	if (!rc && initrd)
		rc = check_file(initrd, "initrd_path", false, err, errlen);
	if (!rc && args && (json_string_length(args) >= sizeof(c->cmdline) - 64 ||
			    strlen(json_string_value(args)) != json_string_length(args)))
		rc = cv_fmt(err, errlen, "invalid boot_args: longer than %zu bytes or contains NUL",
			    sizeof(c->cmdline) - 64);
	if (rc)
		return rc;
	if (json_str_dup(kernel, &k) || json_str_dup(initrd, &i) || json_str_dup(args, &a)) {
		free(k);
		free(i);
		free(a);
		return CV_EFAIL;
	}
	free(c->kernel);
	free(c->initrd);
	free(c->boot_args);
	c->kernel = k;
	c->initrd = i;
	c->boot_args = a;
	c->boot_set = true;
	return 0;
}

/* ------------------------------------------------------------- rate limiters */

static int parse_bucket(json_t *obj, const char *what, struct api_bucket *b, char *err, size_t errlen)
{
	json_t *size, *burst, *refill;
	int rc;

	*b = (struct api_bucket){ 0 };
	if (!obj)
		return 0;
	rc = json_fields(obj, what,
			 FIELDS({ "size", JF_UINT, true, &size }, { "one_time_burst", JF_UINT, false, &burst },
				{ "refill_time", JF_UINT, true, &refill }),
			 err, errlen);
	if (rc)
		return rc;
	b->set = true;
	b->size = (uint64_t)json_integer_value(size);
	b->refill_time = (uint64_t)json_integer_value(refill);
	b->one_time_burst = burst ? (uint64_t)json_integer_value(burst) : 0;
	if (b->size > (1ULL << 40) || b->one_time_burst > (1ULL << 40) || b->refill_time > 3600000)
		return cv_fmt(err, errlen,
			      "invalid %s: size and one_time_burst at most 2^40, refill_time at most 3600000 ms", what);
	return 0;
}

/* `which` (may be NULL) gets the buckets the object names. */
static int parse_limiter(json_t *obj, const char *what, struct api_limiter *l, unsigned *which, char *err,
			 size_t errlen)
{
	json_t *bw, *ops;
	char name[64];
	int rc;

	*l = (struct api_limiter){ 0 };
	if (which)
		*which = 0;
	if (!obj)
		return 0;
	rc = json_fields(obj, what, FIELDS({ "bandwidth", JF_OBJECT, false, &bw }, { "ops", JF_OBJECT, false, &ops }),
			 err, errlen);
	if (rc)
		return rc;
	snprintf(name, sizeof(name), "%s.bandwidth", what);
	if ((rc = parse_bucket(bw, name, &l->bandwidth, err, errlen)))
		return rc;
	snprintf(name, sizeof(name), "%s.ops", what);
	if (which)
		*which = (bw ? RATELIMIT_BYTES : 0) | (ops ? RATELIMIT_OPS : 0);
	return parse_bucket(ops, name, &l->ops, err, errlen);
}

/* Firecracker refills `size` tokens every `refill_time` ms and holds at
 * most `size`, with `one_time_burst` on top at first: a rate of
 * size/refill_time and a burst of size. A zero in either means no limit,
 * as there. */
static void bucket_to_rate(const struct api_bucket *b, uint64_t *rate, uint64_t *burst, uint64_t *once)
{
	*rate = *burst = *once = 0;
	if (!b->set || !b->size || !b->refill_time)
		return;
	*rate = b->size * 1000 / b->refill_time;
	if (!*rate)
		*rate = 1;
	*burst = b->size;
	*once = b->one_time_burst;
}

static void limiter_to_config(const struct api_limiter *l, struct ratelimit_config *out)
{
	bucket_to_rate(&l->bandwidth, &out->bps, &out->bps_burst, &out->bps_once);
	bucket_to_rate(&l->ops, &out->ops, &out->ops_burst, &out->ops_once);
}

/* The other way, for a VM from the command line or a snapshot: refill_time
 * is how long the burst takes at the rate. */
static void rate_to_bucket(uint64_t rate, uint64_t burst, uint64_t once, struct api_bucket *b)
{
	*b = (struct api_bucket){ 0 };
	if (!rate)
		return;
	b->set = true;
	b->size = burst ? burst : rate;
	b->refill_time = (uint64_t)((unsigned __int128)b->size * 1000 / rate);
	if (!b->refill_time)
		b->refill_time = 1;
	b->one_time_burst = once;
}

static bool config_to_limiter(const struct ratelimit_config *c, struct api_limiter *l)
{
	rate_to_bucket(c->bps, c->bps_burst, c->bps_once, &l->bandwidth);
	rate_to_bucket(c->ops, c->ops_burst, c->ops_once, &l->ops);
	return ratelimit_config_enabled(c);
}

static json_t *bucket_json(const struct api_bucket *b)
{
	if (!b->set)
		return json_null();
	return json_pack("{s:I, s:I, s:I}", "size", (json_int_t)b->size, "one_time_burst",
			 (json_int_t)b->one_time_burst, "refill_time", (json_int_t)b->refill_time);
}

static json_t *limiter_json(bool set, const struct api_limiter *l)
{
	if (!set)
		return json_null();
	return json_pack("{s:o, s:o}", "bandwidth", bucket_json(&l->bandwidth), "ops", bucket_json(&l->ops));
}

/* ------------------------------------------------------------- drives */

static int find_drive(const struct api_config *c, const char *id)
{
	for (unsigned i = 0; i < c->ndrives; i++)
		if (!strcmp(c->drives[i].id, id))
			return (int)i;
	return -1;
}

/* The path's ID and the body's must agree (Firecracker's rule). */
static int id_matches(const char *path_id, json_t *body_id, char *err, size_t errlen)
{
	if (path_id && strcmp(path_id, json_string_value(body_id)))
		return cv_fmt(err, errlen, "The id from the path does not match the id from the body!");
	return api_check_id(json_string_value(body_id), err, errlen);
}

int api_put_drive(struct api_config *c, const char *id, json_t *body, char *err, size_t errlen)
{
	json_t *jid, *partuuid, *root, *cache, *ro, *path, *limit, *engine, *sock, *format;
	struct api_drive d = { 0 };
	int rc, at;

	rc = json_fields(body, "drive",
			 FIELDS({ "drive_id", JF_STRING, true, &jid }, { "partuuid", JF_STRING, false, &partuuid },
				{ "is_root_device", JF_BOOL, true, &root }, { "cache_type", JF_STRING, false, &cache },
				{ "is_read_only", JF_BOOL, false, &ro }, { "path_on_host", JF_STRING, false, &path },
				{ "rate_limiter", JF_OBJECT, false, &limit }, { "io_engine", JF_STRING, false, &engine },
				{ "socket", JF_STRING, false, &sock }, { "format", JF_STRING, false, &format }),
			 err, errlen);
	if (rc || (rc = id_matches(id, jid, err, errlen)))
		return rc;
	if (format && strcmp(json_string_value(format), "raw") && strcmp(json_string_value(format), "qcow2"))
		return cv_fmt(err, errlen, "invalid format '%.32s': raw or qcow2", json_string_value(format));
	d.qcow2 = format && !strcmp(json_string_value(format), "qcow2");
	if (sock)
		return cv_fmt(err, errlen, "vhost-user drives (socket) are not supported by this build of cellvm");
	if (!path)
		return cv_fmt(err, errlen, "missing field 'path_on_host' in drive");
	if ((rc = json_str_copy(jid, "drive_id", d.id, sizeof(d.id), false, err, errlen)))
		return rc;
	d.root = json_is_true(root);
	d.ro = ro && json_is_true(ro);
	if (cache && strcmp(json_string_value(cache), "Unsafe") && strcmp(json_string_value(cache), "Writeback"))
		return cv_fmt(err, errlen, "invalid cache_type '%.32s': use Unsafe or Writeback", json_string_value(cache));
	if (engine && strcmp(json_string_value(engine), "Sync") && strcmp(json_string_value(engine), "Async"))
		return cv_fmt(err, errlen, "invalid io_engine '%.32s': use Sync or Async", json_string_value(engine));
	d.writeback = cache && !strcmp(json_string_value(cache), "Writeback");
	d.async = engine && !strcmp(json_string_value(engine), "Async");
	if ((rc = check_drive(path, !d.ro, err, errlen)) ||
	    (rc = parse_limiter(limit, "rate_limiter", &d.limit, NULL, err, errlen)))
		return rc;
	d.has_limit = limit != NULL;
	if (partuuid && (json_string_length(partuuid) > 64 || strpbrk(json_string_value(partuuid), " \t\n")))
		return cv_fmt(err, errlen, "invalid partuuid '%.64s'", json_string_value(partuuid));
	at = find_drive(c, d.id);
	/* One root drive; it is always the first (vda), as in Firecracker. */
	if (d.root && c->ndrives && c->drives[0].root && at != 0)
		return cv_fmt(err, errlen, "A root block device already exists!");
	if (at < 0 && c->ndrives == CV_MAX_DISKS)
		return cv_fmt(err, errlen, "too many drives: cellvm supports at most %d", CV_MAX_DISKS);
	if (json_str_dup(path, &d.path) || json_str_dup(partuuid, &d.partuuid)) {
		drive_free(&d);
		return CV_EFAIL;
	}
	if (at >= 0) {
		drive_free(&c->drives[at]);
		memmove(&c->drives[at], &c->drives[at + 1], (c->ndrives - (unsigned)at - 1) * sizeof(d));
		c->ndrives--;
	}
	if (d.root) {
		memmove(&c->drives[1], &c->drives[0], c->ndrives * sizeof(d));
		c->drives[0] = d;
	} else {
		c->drives[c->ndrives] = d;
	}
	c->ndrives++;
	return 0;
}

/* A PATCH's limiter over the one in force: the buckets it names replace
 * theirs (Firecracker's BucketUpdate), the others stay. */
static int patch_limiter(json_t *obj, const char *what, const struct api_limiter *now, struct api_limit_patch *p,
			 char *err, size_t errlen)
{
	struct api_limiter l;
	int rc = parse_limiter(obj, what, &l, &p->which, err, errlen);

	if (rc)
		return rc;
	p->merged = *now;
	if (p->which & RATELIMIT_BYTES)
		p->merged.bandwidth = l.bandwidth;
	if (p->which & RATELIMIT_OPS)
		p->merged.ops = l.ops;
	limiter_to_config(&p->merged, &p->cfg);
	return 0;
}

int api_patch_drive(const struct api_config *c, const char *id, json_t *body, struct api_drive_patch *out,
		    char *err, size_t errlen)
{
	json_t *jid, *path, *limit;
	int rc, at;

	memset(out, 0, sizeof(*out));
	rc = json_fields(body, "drive update",
			 FIELDS({ "drive_id", JF_STRING, true, &jid }, { "path_on_host", JF_STRING, false, &path },
				{ "rate_limiter", JF_OBJECT, false, &limit }),
			 err, errlen);
	if (rc || (rc = id_matches(id, jid, err, errlen)))
		return rc;
	if ((at = find_drive(c, json_string_value(jid))) < 0)
		return cv_fmt(err, errlen, "Unable to patch the block device: drive '%s' not found.",
			      json_string_value(jid));
	out->index = at;
	if ((rc = patch_limiter(limit, "rate_limiter", &c->drives[at].limit, &out->limit, err, errlen)))
		return rc;
	if (path && strcmp(json_string_value(path), c->drives[at].path)) {
		if ((rc = check_drive(path, !c->drives[at].ro, err, errlen)))
			return rc;
		out->path = json_string_value(path);
	}
	return 0;
}

void api_commit_limit(bool *has, struct api_limiter *l, const struct api_limit_patch *p)
{
	if (!p->which)
		return;
	*l = p->merged;
	*has = true;
}

int api_put_entropy(struct api_config *c, json_t *body, char *err, size_t errlen)
{
	json_t *limit;
	struct api_limiter l;
	int rc = json_fields(body, "entropy", FIELDS({ "rate_limiter", JF_OBJECT, false, &limit }), err, errlen);

	if (rc || (rc = parse_limiter(limit, "rate_limiter", &l, NULL, err, errlen)))
		return rc;
	c->entropy_set = true;
	c->entropy_has_limit = limit != NULL;
	c->entropy = l;
	return 0;
}

/* ------------------------------------------------------------- network interfaces */

static int find_nic(const struct api_config *c, const char *id)
{
	for (unsigned i = 0; i < c->nnics; i++)
		if (!strcmp(c->nics[i].id, id))
			return (int)i;
	return -1;
}

int api_put_vsock(struct api_config *c, json_t *body, char *err, size_t errlen)
{
	json_t *cid, *path, *id;
	uint64_t n;
	int rc = json_fields(body, "vsock",
			     FIELDS({ "guest_cid", JF_UINT, true, &cid }, { "uds_path", JF_STRING, true, &path },
				    { "vsock_id", JF_STRING, false, &id }),
			     err, errlen);

	if (rc || (rc = json_uint_range(cid, "guest_cid", 3, UINT32_MAX - 1, &n, err, errlen)))
		return rc;
	if (!json_string_length(path) || json_string_length(path) >= sizeof(c->vsock.uds))
		return cv_fmt(err, errlen, "invalid uds_path: 1 to %zu bytes", sizeof(c->vsock.uds) - 1);
	c->vsock.set = true;
	c->vsock.cid = (uint32_t)n;
	snprintf(c->vsock.uds, sizeof(c->vsock.uds), "%s", json_string_value(path));
	return 0;
}

int api_put_nic(struct api_config *c, const char *id, json_t *body, char *err, size_t errlen)
{
	json_t *jid, *host, *mac, *mtu, *rx, *tx;
	struct api_nic n = { 0 };
	int rc, at;

	rc = json_fields(body, "network interface",
			 FIELDS({ "iface_id", JF_STRING, true, &jid }, { "host_dev_name", JF_STRING, true, &host },
				{ "guest_mac", JF_STRING, false, &mac }, { "mtu", JF_UINT, false, &mtu },
				{ "rx_rate_limiter", JF_OBJECT, false, &rx }, { "tx_rate_limiter", JF_OBJECT, false, &tx }),
			 err, errlen);
	if (rc || (rc = id_matches(id, jid, err, errlen)) ||
	    (rc = json_str_copy(jid, "iface_id", n.id, sizeof(n.id), false, err, errlen)) ||
	    (rc = json_str_copy(host, "host_dev_name", n.tap, sizeof(n.tap), false, err, errlen)))
		return rc;
	if (strpbrk(n.tap, "/: \t") || !strcmp(n.tap, ".") || !strcmp(n.tap, ".."))
		return cv_fmt(err, errlen, "invalid host_dev_name '%s': not a network device name", n.tap);
	if (mtu)
		return cv_fmt(err, errlen, "mtu is not supported by this build of cellvm");
	if (mac && !mac_parse(json_string_value(mac), n.mac))
		return cv_fmt(err, errlen, "invalid guest_mac '%.32s' (use e.g. 06:00:AC:10:00:02)", json_string_value(mac));
	n.mac_set = mac != NULL;
	if ((rc = parse_limiter(rx, "rx_rate_limiter", &n.rx, NULL, err, errlen)) ||
	    (rc = parse_limiter(tx, "tx_rate_limiter", &n.tx, NULL, err, errlen)))
		return rc;
	n.has_rx = rx != NULL;
	n.has_tx = tx != NULL;
	at = find_nic(c, n.id);
	for (unsigned i = 0; i < c->nnics; i++) {
		if ((int)i == at)
			continue;
		if (!strcmp(c->nics[i].tap, n.tap))
			return cv_fmt(err, errlen, "The host device name %s is already in use.", n.tap);
		if (n.mac_set && c->nics[i].mac_set && !memcmp(c->nics[i].mac, n.mac, 6))
			return cv_fmt(err, errlen, "The MAC address is already in use: %s", json_string_value(mac));
	}
	if (at < 0 && c->nnics == CV_MAX_NICS)
		return cv_fmt(err, errlen, "too many network interfaces: cellvm supports at most %d", CV_MAX_NICS);
	c->nics[at < 0 ? c->nnics++ : (unsigned)at] = n;
	return 0;
}

int api_patch_nic(const struct api_config *c, const char *id, json_t *body, struct api_nic_patch *out, char *err,
		  size_t errlen)
{
	json_t *jid, *rx, *tx;
	int rc, at;

	memset(out, 0, sizeof(*out));
	rc = json_fields(body, "network interface update",
			 FIELDS({ "iface_id", JF_STRING, true, &jid }, { "rx_rate_limiter", JF_OBJECT, false, &rx },
				{ "tx_rate_limiter", JF_OBJECT, false, &tx }),
			 err, errlen);
	if (rc || (rc = id_matches(id, jid, err, errlen)))
		return rc;
	if ((at = find_nic(c, json_string_value(jid))) < 0)
		return cv_fmt(err, errlen, "Invalid interface ID - not found: %s", json_string_value(jid));
	out->index = at;
	if ((rc = patch_limiter(rx, "rx_rate_limiter", &c->nics[at].rx, &out->rx, err, errlen)))
		return rc;
	return patch_limiter(tx, "tx_rate_limiter", &c->nics[at].tx, &out->tx, err, errlen);
}

/* ------------------------------------------------------------- logger, metrics */

static const char *const level_names[] = { "Off", "Error", "Warning", "Info", "Debug", "Trace" };

int api_parse_logger(json_t *body, struct api_logger *out, char *err, size_t errlen)
{
	json_t *path, *level, *show_level, *origin, *module;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = json_fields(body, "logger",
			 FIELDS({ "log_path", JF_STRING, false, &path }, { "level", JF_STRING, false, &level },
				{ "show_level", JF_BOOL, false, &show_level },
				{ "show_log_origin", JF_BOOL, false, &origin }, { "module", JF_STRING, false, &module }),
			 err, errlen);
	if (rc)
		return rc;
	out->level = API_LOG_INFO;
	if (level) {
		unsigned i;

		for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
			if (!strcasecmp(json_string_value(level), level_names[i]))
				break;
		if (i == sizeof(level_names) / sizeof(level_names[0]))
			return cv_fmt(err, errlen, "invalid level '%.32s': use Error, Warning, Info, Debug, Trace or Off",
				      json_string_value(level));
		out->level = (enum api_log_level)i;
	}
	if (path && (!json_string_length(path) || strlen(json_string_value(path)) != json_string_length(path)))
		return cv_fmt(err, errlen, "invalid log_path: not a usable path");
	out->show_level = show_level && json_is_true(show_level);
	out->show_origin = origin && json_is_true(origin);
	if (json_str_dup(path, &out->path) || json_str_dup(module, &out->module)) {
		logger_free(out);
		return CV_EFAIL;
	}
	out->set = true;
	return 0;
}

void api_logger_set(struct api_config *c, struct api_logger *l)
{
	logger_free(&c->logger);
	c->logger = *l;
	memset(l, 0, sizeof(*l));
}

int api_parse_metrics(json_t *body, struct api_metrics *out, char *err, size_t errlen)
{
	json_t *path, *emit, *props;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = json_fields(body, "metrics",
			 FIELDS({ "metrics_path", JF_STRING, true, &path }, { "emit_id", JF_BOOL, false, &emit },
				{ "properties", JF_OBJECT, false, &props }),
			 err, errlen);
	if (rc)
		return rc;
	if (emit || props)
		return cv_fmt(err, errlen, "metrics %s is not supported by this build of cellvm",
			      emit ? "emit_id" : "properties");
	if (!json_string_length(path) || strlen(json_string_value(path)) != json_string_length(path))
		return cv_fmt(err, errlen, "invalid metrics_path: not a usable path");
	if (json_str_dup(path, &out->path))
		return CV_EFAIL;
	out->set = true;
	return 0;
}

void api_metrics_set(struct api_config *c, struct api_metrics *m)
{
	free(c->metrics.path);
	c->metrics = *m;
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------- from cellvm */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* 2M pages are Firecracker's huge_pages; the rest is cellvm's own. */
static void describe_ram(struct api_config *c, const struct ram_config *vm_ram)
{
	struct ram_config ram = *vm_ram;

	c->huge_2m = ram.pages == RAM_PAGES_2M;
	if (c->huge_2m)
		ram.pages = RAM_PAGES_4K;
	ram_format(&ram, c->mem_options, sizeof(c->mem_options));
}

int api_config_describe(struct api_config *c, const struct vm_config *vm)
{
	/* The logger and metrics stay as configured: they are the process's. */
	struct api_logger logger = c->logger;
	struct api_metrics metrics = c->metrics;
	size_t limit = c->mmds_size_limit;

	c->logger = (struct api_logger){ 0 };
	c->metrics = (struct api_metrics){ 0 };
	api_config_free(c);
	c->logger = logger;
	c->metrics = metrics;
	c->mmds_size_limit = limit;
	c->mmds = vm->mmds;
	c->boot_set = vm->kernel != NULL;
	c->kernel = dup_or_null(vm->kernel);
	c->initrd = dup_or_null(vm->initrd);
	c->boot_args = dup_or_null(vm->cmdline);
	c->vcpus = vm->cpus;
	c->smt = vm->smt;
	c->mem_mib = (unsigned)(vm->memory >> 20);
	describe_ram(c, &vm->ram);
	c->track_dirty_pages = vm->track_dirty_pages;
	c->tmpl = vm->cpu_template;
	c->vsock = vm->vsock;
	c->balloon = vm->balloon;
	c->entropy_set = vm->entropy.set;
	c->entropy_has_limit = config_to_limiter(&vm->entropy.limit, &c->entropy);
	for (unsigned i = 0; i < vm->ndisks; i++) {
		struct api_drive *d = &c->drives[c->ndrives++];

		snprintf(d->id, sizeof(d->id), "%s", vm->disks[i].id);
		d->path = dup_or_null(vm->disks[i].path);
		d->ro = vm->disks[i].readonly;
		d->qcow2 = vm->disks[i].format == DISK_FORMAT_QCOW2;
		d->writeback = vm->disks[i].cache == DISK_CACHE_WRITEBACK;
		d->has_limit = config_to_limiter(&vm->disks[i].limit, &d->limit);
		if (!d->path)
			return CV_EFAIL;
	}
	/* Firecracker's NICs are taps; other modes show their tap, if any. */
	for (unsigned i = 0; i < vm->nnics; i++) {
		struct api_nic *n = &c->nics[c->nnics++];

		snprintf(n->id, sizeof(n->id), "%s", vm->nics[i].id);
		memcpy(n->tap, vm->nics[i].tap, sizeof(n->tap));
		if (vm->nics[i].mac_set)
			memcpy(n->mac, vm->nics[i].mac, 6);
		else
			mac_derive(vm->name, i, n->mac);
		n->mac_set = true;
		n->has_rx = config_to_limiter(&vm->nics[i].rx, &n->rx);
		n->has_tx = config_to_limiter(&vm->nics[i].tx, &n->tx);
	}
	return (vm->kernel && !c->kernel) || (vm->cmdline && !c->boot_args) || (vm->initrd && !c->initrd) ? CV_EFAIL
													     : 0;
}

/* ------------------------------------------------------------- to cellvm */

int api_config_to_vm(struct api_config *c, struct vm_config *vm, char *err, size_t errlen)
{
	if (!c->boot_set)
		return cv_fmt(err, errlen, "Cannot start microvm without kernel configuration.");
	vm_config_defaults(vm);
	vm->kernel = c->kernel;
	vm->initrd = c->initrd;
	vm->cpus = c->vcpus;
	vm->smt = c->smt && c->vcpus > 1;
	vm->cpu_template = c->tmpl;
	vm->memory = (uint64_t)c->mem_mib << 20;
	vm->ram = RAM_CONFIG_DEFAULT;
	/* Checked when it was put. */
	if (ram_parse(c->mem_options, &vm->ram, err, errlen))
		return CV_EINPUT;
	if (c->huge_2m)
		vm->ram.pages = RAM_PAGES_2M;
	if (vm->memory % ram_page_size(&vm->ram))
		return cv_fmt(err, errlen, "mem_size_mib %u is not a whole number of huge pages", c->mem_mib);
	vm->track_dirty_pages = c->track_dirty_pages;
	vm->vsock = c->vsock;
	vm->entropy.set = c->entropy_set;
	limiter_to_config(&c->entropy, &vm->entropy.limit);
	vm->mmds = c->mmds;
	if (c->balloon.on && (uint64_t)c->balloon.amount_mib > c->mem_mib)
		return cv_fmt(err, errlen, "Amount of pages requested is too large.");
	vm->balloon = c->balloon;
	snprintf(c->cmdline, sizeof(c->cmdline), "%s", c->boot_args ? c->boot_args : DEFAULT_BOOT_ARGS);
	if (c->ndrives && c->drives[0].root) {
		char root[96];

		/* As Firecracker: the root drive is vda, or its partition by UUID. */
		if (c->drives[0].partuuid)
			snprintf(root, sizeof(root), "root=PARTUUID=%s", c->drives[0].partuuid);
		else
			snprintf(root, sizeof(root), "root=/dev/vda");
		if (cmdline_add(c->cmdline, sizeof(c->cmdline), root) ||
		    cmdline_add(c->cmdline, sizeof(c->cmdline), c->drives[0].ro ? "ro" : "rw"))
			return cv_fmt(err, errlen, "boot_args too long to add the root device");
	}
	vm->cmdline = c->cmdline;
	for (unsigned i = 0; i < c->ndrives; i++) {
		struct disk_config *d = &vm->disks[i];

		d->path = c->drives[i].path;
		d->readonly = c->drives[i].ro;
		/* Firecracker drives are raw: never guess from guest-written content. */
		d->format = c->drives[i].qcow2 ? DISK_FORMAT_QCOW2 : DISK_FORMAT_RAW;
		d->cache = c->drives[i].writeback ? DISK_CACHE_WRITEBACK : DISK_CACHE_UNSAFE;
		snprintf(d->id, sizeof(d->id), "%s", c->drives[i].id);
		limiter_to_config(&c->drives[i].limit, &d->limit);
	}
	vm->ndisks = c->ndrives;
	for (unsigned i = 0; i < c->nnics; i++) {
		struct net_config *n = &vm->nics[i];

		memset(n, 0, sizeof(*n));
		n->mode = NET_TAP;
		snprintf(n->id, sizeof(n->id), "%s", c->nics[i].id);
		memcpy(n->tap, c->nics[i].tap, sizeof(n->tap));
		memcpy(n->mac, c->nics[i].mac, 6);
		n->mac_set = c->nics[i].mac_set;
		limiter_to_config(&c->nics[i].rx, &n->rx);
		limiter_to_config(&c->nics[i].tx, &n->tx);
	}
	vm->nnics = c->nnics;
	return 0;
}

/* ------------------------------------------------------------- GET /vm/config */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *drive_json(const struct api_drive *d)
{
	json_t *j = json_pack("{s:s, s:o, s:b, s:s, s:b, s:s, s:o, s:s}", "drive_id", d->id, "partuuid",
			 str_or_null(d->partuuid), "is_root_device", d->root, "cache_type",
			 d->writeback ? "Writeback" : "Unsafe", "is_read_only", d->ro, "path_on_host", d->path,
			 "rate_limiter", limiter_json(d->has_limit, &d->limit), "io_engine", d->async ? "Async" : "Sync");

	if (j && d->qcow2)
		json_object_set_new(j, "format", json_string("qcow2"));
	return j;
}

static json_t *nic_json(const struct api_nic *n)
{
	char mac[18];

	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1], n->mac[2], n->mac[3],
		 n->mac[4], n->mac[5]);
	return json_pack("{s:s, s:s, s:o, s:o, s:o}", "iface_id", n->id, "host_dev_name", n->tap, "guest_mac",
			 n->mac_set ? json_string(mac) : json_null(), "rx_rate_limiter", limiter_json(n->has_rx, &n->rx),
			 "tx_rate_limiter", limiter_json(n->has_tx, &n->tx));
}

json_t *api_config_json(const struct api_config *c)
{
	json_t *drives = json_array(), *nics = json_array(), *boot, *logger, *metrics, *vsock, *entropy;

	for (unsigned i = 0; i < c->ndrives; i++)
		json_array_append_new(drives, drive_json(&c->drives[i]));
	for (unsigned i = 0; i < c->nnics; i++)
		json_array_append_new(nics, nic_json(&c->nics[i]));
	boot = !c->boot_set ? json_null()
			    : json_pack("{s:s, s:o, s:o}", "kernel_image_path", c->kernel, "initrd_path",
					str_or_null(c->initrd), "boot_args", str_or_null(c->boot_args));
	logger = !c->logger.set ? json_null()
				: json_pack("{s:o, s:s, s:b, s:b, s:o}", "log_path", str_or_null(c->logger.path), "level",
					    level_names[c->logger.level], "show_level", c->logger.show_level,
					    "show_log_origin", c->logger.show_origin, "module", str_or_null(c->logger.module));
	metrics = !c->metrics.set ? json_null() : json_pack("{s:s}", "metrics_path", c->metrics.path);
	vsock = !c->vsock.set ? json_null()
			      : json_pack("{s:I, s:s}", "guest_cid", (json_int_t)c->vsock.cid, "uds_path", c->vsock.uds);
	entropy = !c->entropy_set ? json_null()
				  : json_pack("{s:o}", "rate_limiter", limiter_json(c->entropy_has_limit, &c->entropy));
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "balloon",
			 c->balloon.on ? api_balloon_json(&c->balloon) : json_null(), "drives", drives, "boot-source", boot,
			 "cpu-config", !strcmp(c->tmpl.name, "custom") ? api_cpu_config_json(&c->tmpl) : json_null(),
			 "logger", logger, "machine-config", api_machine_json(c), "metrics", metrics, "mmds-config",
			 api_mmds_json(c), "network-interfaces", nics, "vsock", vsock, "entropy", entropy);
}
