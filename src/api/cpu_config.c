#include "api/cpu_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "util/err.h"

#define KVM_CPUID_FLAG_SIGNIFCANT_INDEX_BIT 1

/* "0x1f", "31": Firecracker writes leaves as strings. */
static int parse_num(json_t *v, const char *name, uint32_t *out, char *err, size_t errlen)
{
	const char *s = json_string_value(v);
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(s, &end, 0);
	if (!*s || *end || errno || s[0] == '-' || n > UINT32_MAX)
		return cv_fmt(err, errlen, "invalid %s '%.32s': a 32-bit number like \"0x7\"", name, s);
	*out = (uint32_t)n;
	return 0;
}

static int parse_leaf(json_t *leaf, struct cpu_template *t, char *err, size_t errlen)
{
	json_t *l, *sub, *flags, *mods;
	const struct jfield f[] = { { "leaf", JF_STRING, true, &l },
				    { "subleaf", JF_STRING, true, &sub },
				    { "flags", JF_UINT, true, &flags },
				    { "modifiers", JF_ARRAY, true, &mods } };
	uint32_t leafno, subno;
	uint64_t fl;
	size_t i;
	json_t *m;
	int rc;

	if ((rc = json_fields(leaf, "a cpuid modifier", f, 4, err, errlen)) ||
	    (rc = parse_num(l, "leaf", &leafno, err, errlen)) || (rc = parse_num(sub, "subleaf", &subno, err, errlen)) ||
	    (rc = json_uint_range(flags, "flags", 0, 7, &fl, err, errlen)))
		return rc;
	json_array_foreach(mods, i, m) {
		json_t *reg, *bitmap;
		const struct jfield mf[] = { { "register", JF_STRING, true, &reg }, { "bitmap", JF_STRING, true, &bitmap } };

		if ((rc = json_fields(m, "a cpuid register modifier", mf, 2, err, errlen)) ||
		    (rc = cpu_template_add(t, leafno, subno, fl & KVM_CPUID_FLAG_SIGNIFCANT_INDEX_BIT,
					   json_string_value(reg), json_string_value(bitmap), err, errlen)))
			return rc;
	}
	return 0;
}

int api_cpu_config_parse(json_t *body, struct cpu_template *out, char *err, size_t errlen)
{
	static struct cpu_template t; /* big: not on the stack */
	json_t *caps, *cpuid, *msrs, *features, *regs;
	const struct jfield f[] = { { "kvm_capabilities", JF_ARRAY, false, &caps },
				    { "cpuid_modifiers", JF_ARRAY, false, &cpuid },
				    { "msr_modifiers", JF_ARRAY, false, &msrs },
				    { "vcpu_features", JF_ARRAY, false, &features },
				    { "reg_modifiers", JF_ARRAY, false, &regs } };
	size_t i;
	json_t *leaf;
	int rc;

	if ((rc = json_fields(body, "the cpu-config", f, 5, err, errlen)))
		return rc;
	/* Refused, not ignored: a template that asks for them expects them. */
	if (msrs && json_array_size(msrs))
		return cv_fmt(err, errlen, "msr_modifiers are not supported by this build of cellvm (cpuid_modifiers are)");
	if (caps && json_array_size(caps))
		return cv_fmt(err, errlen, "kvm_capabilities are not supported by this build of cellvm");
	if ((features && json_array_size(features)) || (regs && json_array_size(regs)))
		return cv_fmt(err, errlen, "vcpu_features and reg_modifiers are for aarch64 hosts");
	memset(&t, 0, sizeof(t));
	json_array_foreach(cpuid, i, leaf)
		if ((rc = parse_leaf(leaf, &t, err, errlen)))
			return rc;
	strcpy(t.name, t.n ? "custom" : "");
	*out = t;
	return 0;
}

int api_cpu_template_arg(const char *v, struct cpu_template *t, char *err, size_t errlen)
{
	char why[256];
	FILE *f;
	char *buf;
	long len;
	json_t *doc;
	int rc;

	if (!strchr(v, '/') && !strchr(v, '.'))
		return cpu_template_static(v, t, err, errlen);
	if (!(f = fopen(v, "rb")))
		return cv_fmt(err, errlen, "invalid --cpu-template '%s': %s", v, strerror(errno));
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || len > (1 << 20) || fseek(f, 0, SEEK_SET) ||
	    !(buf = malloc((size_t)len + 1)) ) {
		fclose(f);
		return cv_fmt(err, errlen, "invalid --cpu-template '%s': cannot read it (at most 1 MiB)", v);
	}
	rc = fread(buf, 1, (size_t)len, f) == (size_t)len ? 0 : CV_EINPUT;
	fclose(f);
	if (!rc && !(rc = json_parse(buf, (size_t)len, &doc, why, sizeof(why)))) {
		rc = api_cpu_config_parse(doc, t, why, sizeof(why));
		json_decref(doc);
	} else if (rc) {
		snprintf(why, sizeof(why), "cannot read it");
	}
	free(buf);
	return rc ? cv_fmt(err, errlen, "invalid --cpu-template '%s': %s", v, why) : 0;
}

json_t *api_cpu_config_json(const struct cpu_template *t)
{
	static const char *const regs[] = { "eax", "ebx", "ecx", "edx" };
	json_t *mods = json_array();

	for (unsigned i = 0; mods && i < t->n; i++) {
		const struct cpuid_modifier *m = &t->m[i];
		char leaf[16], sub[16], bitmap[35] = "0b";

		for (int b = 0; b < 32; b++) {
			uint32_t bit = 1u << (31 - b);

			bitmap[2 + b] = !(m->mask & bit) ? 'x' : (m->value & bit) ? '1' : '0';
		}
		bitmap[34] = 0;
		snprintf(leaf, sizeof(leaf), "0x%x", m->leaf);
		snprintf(sub, sizeof(sub), "0x%x", m->subleaf);
		json_array_append_new(mods, json_pack("{s:s, s:s, s:i, s:[{s:s, s:s}]}", "leaf", leaf, "subleaf", sub,
						      "flags", m->by_subleaf ? 1 : 0, "modifiers", "register",
						      regs[m->reg], "bitmap", bitmap));
	}
	return json_pack("{s:o}", "cpuid_modifiers", mods ? mods : json_array());
}
