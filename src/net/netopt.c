#include "net/netopt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "net/mac.h"
#include "util/err.h"
#include "util/size.h"

/* "1.2.3.4" strictly (inet_pton also refuses leading zeros and short forms). */
static bool parse_ip(const char *s, size_t len, uint32_t *out)
{
	char buf[16];
	struct in_addr a;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (inet_pton(AF_INET, buf, &a) != 1)
		return false;
	*out = a.s_addr;
	return true;
}

static bool parse_port(const char *s, size_t len, uint16_t *out)
{
	unsigned long v = 0;

	if (!len || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (!v || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

bool netopt_parse_hostfwd(const char *s, struct net_hostfwd *f)
{
	const char *p, *colon, *dash, *gcolon;

	*f = (struct net_hostfwd){ .host_addr = htonl(INADDR_LOOPBACK) };
	if (!strncmp(s, "tcp:", 4))
		p = s + 4;
	else if (!strncmp(s, "udp:", 4))
		p = s + 4, f->udp = true;
	else
		return false;
	/* [HOSTIP]:HOSTPORT-[GUESTIP]:GUESTPORT */
	if (!(colon = strchr(p, ':')) || !(dash = strchr(colon, '-')) || !(gcolon = strchr(dash, ':')))
		return false;
	if (colon > p && !parse_ip(p, (size_t)(colon - p), &f->host_addr))
		return false;
	if (!parse_port(colon + 1, (size_t)(dash - colon - 1), &f->host_port))
		return false;
	if (gcolon > dash + 1 && !parse_ip(dash + 1, (size_t)(gcolon - dash - 1), &f->guest_addr))
		return false;
	return parse_port(gcolon + 1, strlen(gcolon + 1), &f->guest_port);
}

bool netopt_parse_cidr(const char *s, unsigned min, unsigned max, uint32_t *addr, unsigned *prefix)
{
	const char *slash = strchr(s, '/');
	unsigned long n;
	uint32_t a, mask;
	char *end;

	if (!slash || !parse_ip(s, (size_t)(slash - s), &a) || slash[1] < '0' || slash[1] > '9')
		return false;
	errno = 0;
	n = strtoul(slash + 1, &end, 10);
	if (*end || errno || n < min || n > max || (slash[1] == '0' && slash[2]))
		return false;
	a = ntohl(a);
	mask = n ? ~0u << (32 - n) : 0;
	if (a & ~mask)
		return false;
	*addr = a;
	*prefix = (unsigned)n;
	return true;
}

static const char *const mode_names[] = {
	[NET_TAP] = "tap",
	[NET_NAT] = "nat",
	[NET_BRIDGE] = "bridge",
	[NET_HOSTONLY] = "hostonly",
	[NET_SWITCH] = "switch",
};

/* A network-interface name for --net: 1..15 characters that the kernel
 * accepts (no '/', ':', blanks). */
static bool ifname_ok(const char *s)
{
	size_t n = strlen(s);

	return n && n < 16 && !strpbrk(s, "/: \t\n") && strcmp(s, ".") && strcmp(s, "..");
}

/* The mode from the first item. */
static int parse_mode(const char *v, const char *item, struct net_config *n, char *err, size_t errlen)
{
	const char *val = strchr(item, '=');
	size_t klen = val ? (size_t)(val - item) : strlen(item);

	if (!strcmp(item, "nat")) {
		n->mode = NET_NAT;
		return 0;
	}
	for (int m = NET_TAP; m <= NET_SWITCH; m++) {
		if (m == NET_NAT || strlen(mode_names[m]) != klen || strncmp(item, mode_names[m], klen))
			continue;
		n->mode = (enum net_mode)m;
		if (!val || !val[1])
			return cv_fmt(err, errlen, "invalid --net '%s': %s needs a value (%s=...)", v, mode_names[m],
				      mode_names[m]);
		val++;
		if (m == NET_SWITCH) {
			if (strlen(val) >= sizeof(n->path))
				return cv_fmt(err, errlen, "invalid --net '%s': switch path longer than %zu bytes", v,
					      sizeof(n->path) - 1);
			strcpy(n->path, val);
		} else if (m == NET_HOSTONLY && (strlen(val) > 11 || strspn(val, "abcdefghijklmnopqrstuvwxyz"
										 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
										 "0123456789_-") != strlen(val))) {
			/* It names the bridge cvh-NAME: 15 characters at most. */
			return cv_fmt(err, errlen,
				      "invalid --net '%s': host-only network name must be 1 to 11 of A-Z a-z 0-9 _ -",
				      v);
		} else if (!ifname_ok(val)) {
			return cv_fmt(err, errlen, "invalid --net '%s': %s name '%s' must be 1 to 15 characters", v,
				      mode_names[m], val);
		} else {
			strcpy(m == NET_TAP ? n->tap : n->name, val);
		}
		return 0;
	}
	return cv_fmt(err, errlen, "invalid --net '%s': unknown mode '%s' (nat, tap=, bridge=, hostonly=, switch=)",
		      v, item);
}

static int parse_rate(const char *v, const char *opt, const char *val, uint64_t *out, char *err, size_t errlen)
{
	if (!size_parse(val, out) || !*out)
		return cv_fmt(err, errlen, "invalid --net '%s': bad %s '%s' (bytes per second, e.g. 10M)", v, opt,
			      val);
	return 0;
}

static int parse_option(const char *v, const char *opt, struct net_config *n, char *err, size_t errlen)
{
	const char *eq = strchr(opt, '=');
	const char *val = eq ? eq + 1 : "";
	size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
	char key[16];

	if (klen >= sizeof(key))
		return cv_fmt(err, errlen, "invalid --net '%s': unknown option '%s'", v, opt);
	memcpy(key, opt, klen);
	key[klen] = 0;
	if (!strcmp(key, "mac")) {
		if (!mac_parse(val, n->mac))
			return cv_fmt(err, errlen, "invalid --net '%s': bad MAC '%s' (use e.g. 52:54:00:12:34:56)", v,
				      val);
		n->mac_set = true;
		return 0;
	}
	if (!strcmp(key, "rx_rate"))
		return parse_rate(v, key, val, &n->rx.bps, err, errlen);
	if (!strcmp(key, "tx_rate"))
		return parse_rate(v, key, val, &n->tx.bps, err, errlen);
	if (!strcmp(key, "rx_burst"))
		return parse_rate(v, key, val, &n->rx.bps_burst, err, errlen);
	if (!strcmp(key, "tx_burst"))
		return parse_rate(v, key, val, &n->tx.bps_burst, err, errlen);
	if (!strcmp(key, "tap") && (n->mode == NET_BRIDGE || n->mode == NET_HOSTONLY)) {
		if (!ifname_ok(val))
			return cv_fmt(err, errlen, "invalid --net '%s': tap name '%s' must be 1 to 15 characters", v,
				      val);
		strcpy(n->tap, val);
		return 0;
	}
	if (!strcmp(key, "hostfwd") && n->mode == NET_NAT) {
		if (n->nfwd == CV_MAX_HOSTFWD)
			return cv_fmt(err, errlen, "invalid --net '%s': more than %d hostfwd options", v,
				      CV_MAX_HOSTFWD);
		if (!netopt_parse_hostfwd(val, &n->fwd[n->nfwd]))
			return cv_fmt(err, errlen,
				      "invalid --net '%s': bad hostfwd '%s' (use tcp|udp:[HOSTIP]:PORT-[GUESTIP]:PORT)",
				      v, val);
		n->nfwd++;
		return 0;
	}
	if (!strcmp(key, "restrict") && n->mode == NET_NAT) {
		if (strcmp(val, "on") && strcmp(val, "off"))
			return cv_fmt(err, errlen, "invalid --net '%s': restrict must be on or off", v);
		n->restricted = !strcmp(val, "on");
		return 0;
	}
	if (!strcmp(key, "net") && n->mode == NET_HOSTONLY) {
		if (!netopt_parse_cidr(val, 16, 30, &n->net_addr, &n->net_prefix))
			return cv_fmt(err, errlen,
				      "invalid --net '%s': bad net '%s' (a network address A.B.C.0/N, N from 16 to 30)",
				      v, val);
		return 0;
	}
	if (!strcmp(key, "tap") || !strcmp(key, "hostfwd") || !strcmp(key, "restrict") || !strcmp(key, "net"))
		return cv_fmt(err, errlen, "invalid --net '%s': option '%s' does not apply to mode %s", v, key,
			      mode_names[n->mode]);
	return cv_fmt(err, errlen, "invalid --net '%s': unknown option '%s'", v, opt);
}

int netopt_parse(const char *v, struct net_config *n, char *err, size_t errlen)
{
	const char *p = v;
	bool first = true;
	int rc;

	*n = (struct net_config){ 0 };
	if (!*v)
		return cv_fmt(err, errlen, "invalid --net '': missing mode (nat, tap=, bridge=, hostonly=, switch=)");
	while (*p) {
		size_t len = strcspn(p, ",");
		char item[160];

		if (len >= sizeof(item))
			return cv_fmt(err, errlen, "invalid --net '%.64s...': option too long", v);
		memcpy(item, p, len);
		item[len] = 0;
		if (!len)
			return cv_fmt(err, errlen, "invalid --net '%s': empty option", v);
		rc = first ? parse_mode(v, item, n, err, errlen) : parse_option(v, item, n, err, errlen);
		if (rc)
			return rc;
		first = false;
		p += len + (p[len] == ',');
		if (p[-1] == ',' && !*p)
			return cv_fmt(err, errlen, "invalid --net '%s': empty option", v);
	}
	return 0;
}

int netopt_override(struct net_override *list, unsigned *n, const char *id, const char *tap, char *err,
		    size_t errlen)
{
	struct net_override *o = &list[*n];

	if (*n == CV_MAX_NICS)
		return cv_fmt(err, errlen, "too many network overrides (at most %d)", CV_MAX_NICS);
	if (!*id || strlen(id) > CV_NIC_ID_MAX)
		return cv_fmt(err, errlen, "invalid network override: iface_id '%.64s' must have 1 to %d characters",
			      id, CV_NIC_ID_MAX);
	if (!*tap || strlen(tap) >= sizeof(o->tap) || strchr(tap, '/') || strchr(tap, ' '))
		return cv_fmt(err, errlen, "invalid network override: host_dev_name '%.32s' is not a tap name (1 to "
					   "15 characters)", tap);
	for (unsigned i = 0; i < *n; i++)
		if (!strcmp(list[i].id, id))
			return cv_fmt(err, errlen, "network override for '%s' given twice", id);
	snprintf(o->id, sizeof(o->id), "%s", id);
	snprintf(o->tap, sizeof(o->tap), "%s", tap);
	(*n)++;
	return 0;
}
