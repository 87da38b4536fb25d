#include "vmm/balloon_opt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/size.h"

bool balloon_parse_mib(const char *v, uint32_t *mib)
{
	uint64_t n;
	char *end;

	if (!*v)
		return false;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (*v >= '0' && *v <= '9' && !*end && !errno) {
		n <<= 20; /* a bare number is MiB */
	} else if (!size_parse(v, &n) || (n & ((1ULL << 20) - 1))) {
		return false;
	}
	if (n >> 20 > CV_MAX_MEMORY >> 20)
		return false;
	*mib = (uint32_t)(n >> 20);
	return true;
}

static int on_off(const char *opt, const char *val, bool *out, char *err, size_t errlen)
{
	if (strcmp(val, "on") && strcmp(val, "off"))
		return cv_fmt(err, errlen, "invalid --balloon %s '%s': use on or off", opt, val);
	*out = !strcmp(val, "on");
	return 0;
}

int balloon_parse(const char *v, struct balloon_config *c, char *err, size_t errlen)
{
	char buf[256], *save = NULL;
	int rc = 0;

	if (strlen(v) >= sizeof(buf))
		return cv_fmt(err, errlen, "invalid --balloon '%.40s...': too long", v);
	*c = (struct balloon_config){ .on = true };
	snprintf(buf, sizeof(buf), "%s", v);
	for (char *opt = strtok_r(buf, ",", &save); opt && !rc; opt = strtok_r(NULL, ",", &save)) {
		char *val = strchr(opt, '=');
		char *end;
		unsigned long s;

		if (!val)
			return cv_fmt(err, errlen, "invalid --balloon option '%s': use NAME=VALUE", opt);
		*val++ = 0;
		if (!strcmp(opt, "amount")) {
			if (!balloon_parse_mib(val, &c->amount_mib))
				rc = cv_fmt(err, errlen, "invalid --balloon amount '%s': MiB (e.g. 256) or a size (256M)", val);
		} else if (!strcmp(opt, "deflate_on_oom")) {
			rc = on_off(opt, val, &c->deflate_on_oom, err, errlen);
		} else if (!strcmp(opt, "free_page_reporting")) {
			rc = on_off(opt, val, &c->reporting, err, errlen);
		} else if (!strcmp(opt, "stats")) {
			errno = 0;
			s = strtoul(val, &end, 10);
			if (!*val || *end || errno || *val == '-' || s > CV_MAX_BALLOON_STATS_S)
				rc = cv_fmt(err, errlen, "invalid --balloon stats '%s': seconds, 0 to %u", val,
					    CV_MAX_BALLOON_STATS_S);
			c->stats_s = (unsigned)s;
		} else {
			rc = cv_fmt(err, errlen,
				    "invalid --balloon option '%s': use amount, deflate_on_oom, stats or free_page_reporting",
				    opt);
		}
	}
	return rc;
}

int balloon_check(const struct balloon_config *c, uint64_t memory, char *err, size_t errlen)
{
	if (c->on && (uint64_t)c->amount_mib << 20 > memory)
		return cv_fmt(err, errlen, "invalid --balloon amount '%u': larger than the guest's %llu MiB",
			      c->amount_mib, (unsigned long long)(memory >> 20));
	return 0;
}
