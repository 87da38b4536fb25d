#include "vmm/mmds_opt.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmds/stack.h"
#include "util/err.h"

/* "net0+net2" into NIC bits. */
static bool parse_nics(const char *s, uint32_t *out)
{
	*out = 0;
	while (*s) {
		char *end;
		unsigned long i;

		if (strncmp(s, "net", 3) || s[3] < '0' || s[3] > '9')
			return false;
		i = strtoul(s + 3, &end, 10);
		if (i >= CV_MAX_NICS || (*end && *end != '+'))
			return false;
		*out |= 1u << i;
		s = end;
		if (*s == '+' && !*++s)
			return false; /* "net0+" */
	}
	return *out != 0;
}

int mmds_parse(const char *v, struct mmds_config *m, char *err, size_t errlen)
{
	char buf[256], *save = NULL;

	if (m->set)
		return cv_fmt(err, errlen, "invalid --mmds '%s': a VM has one MMDS", v);
	if (strlen(v) >= sizeof(buf))
		return cv_fmt(err, errlen, "invalid --mmds '%.64s...': too long", v);
	*m = (struct mmds_config){ .set = true, .addr = MMDS_DEFAULT_ADDR, .nics = 1 };
	snprintf(buf, sizeof(buf), "%s", v);
	for (char *opt = strtok_r(buf, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		struct in_addr in;

		if (!strncmp(opt, "nics=", 5) && parse_nics(opt + 5, &m->nics))
			continue;
		if (!strcmp(opt, "version=V1") || !strcmp(opt, "version=V2")) {
			m->version = opt[9] == '2' ? MMDS_V2 : MMDS_V1;
			continue;
		}
		if (!strcmp(opt, "imds_compat=on") || !strcmp(opt, "imds_compat=off")) {
			m->imds_compat = !strcmp(opt + 12, "on");
			continue;
		}
		if (!strncmp(opt, "address=", 8) && inet_pton(AF_INET, opt + 8, &in) == 1 &&
		    mmds_addr_ok(ntohl(in.s_addr))) {
			m->addr = ntohl(in.s_addr);
			continue;
		}
		return cv_fmt(err, errlen,
			      "invalid --mmds '%s': bad '%s' (nics=net0+net1, version=V1|V2, address= a link-local "
			      "169.254.1.0 to 169.254.254.255, imds_compat=on|off)",
			      v, opt);
	}
	return 0;
}

int mmds_check(const struct mmds_config *m, unsigned nnics, char *err, size_t errlen)
{
	if (m->set && (m->nics >> nnics))
		return cv_fmt(err, errlen, "invalid --mmds: it names a NIC netN that no --net made (%u NICs)", nnics);
	return 0;
}
