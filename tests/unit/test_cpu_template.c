/* CPU templates: static ones, Firecracker's custom cpu-config JSON, and
 * how they rewrite a CPUID table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "api/cpu_config.h"
#include "api/json.h"
#include "arch/x86/cpu_template.h"
#include "util/err.h"

static struct cpuid_table table(void)
{
	struct cpuid_table t = { 0 };

	t.nent = 4;
	t.e[0] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0x12, .ecx = ~0u, .edx = ~0u };
	t.e[1] = (struct kvm_cpuid_entry2){ .function = 7, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					    .ebx = ~0u, .ecx = ~0u, .edx = ~0u };
	t.e[2] = (struct kvm_cpuid_entry2){ .function = 7, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					    .eax = ~0u };
	t.e[3] = (struct kvm_cpuid_entry2){ .function = 0x80000001, .ecx = ~0u, .edx = ~0u };
	return t;
}

static void test_static_templates(void **state)
{
	static struct cpu_template t;
	struct cpuid_table c;
	char err[128];

	(void)state;
	assert_int_equal(cpu_template_static("C3", &t, err, sizeof(err)), 0);
	assert_string_equal(t.name, "C3");
	c = table();
	cpu_template_apply(&t, &c);
	assert_int_equal(c.e[0].ecx & (1u << 12), 0); /* fma */
	assert_int_equal(c.e[0].ecx & (1u << 5), 0);  /* vmx */
	assert_true(c.e[0].ecx & (1u << 0));	      /* sse3 stays */
	assert_int_equal(c.e[1].ebx & (1u << 5), 0);  /* avx2 */
	assert_int_equal(c.e[1].ebx & (1u << 16), 0); /* avx512f */
	assert_true(c.e[1].edx & (1u << 26));	      /* spec_ctrl stays */
	assert_int_equal(c.e[2].eax, ~0u);	      /* leaf 7.1 untouched */
	assert_int_equal(c.e[3].ecx, 1u);	      /* only lahf_lm */
	assert_int_equal(c.e[3].edx, ~0u);	      /* syscall, nx, lm... untouched */
	assert_int_equal(c.e[0].eax, 0x12);

	assert_int_equal(cpu_template_static("T2", &t, err, sizeof(err)), 0);
	c = table();
	cpu_template_apply(&t, &c);
	assert_true(c.e[1].ebx & (1u << 5));	      /* T2 keeps avx2 */
	assert_int_equal(c.e[1].ebx & (1u << 16), 0); /* not avx512f */

	assert_int_equal(cpu_template_static("None", &t, err, sizeof(err)), 0);
	assert_int_equal(t.n, 0);
	assert_int_equal(cpu_template_static("M5", &t, err, sizeof(err)), CV_EINPUT);
	assert_non_null(strstr(err, "'M5'"));
}

static int parse(const char *text, struct cpu_template *t, char *err, size_t errlen)
{
	json_t *doc;
	int rc = json_parse(text, strlen(text), &doc, err, errlen);

	if (rc)
		return rc;
	rc = api_cpu_config_parse(doc, t, err, errlen);
	json_decref(doc);
	return rc;
}

static void test_custom_template(void **state)
{
	static struct cpu_template t;
	struct cpuid_table c = table();
	char err[256];
	json_t *back;

	(void)state;
	/* Bit 31 forced to 1 stays 1, bit 30 forced to 0, bit 0 forced to 0. */
	assert_int_equal(parse("{\"cpuid_modifiers\": [{\"leaf\": \"0x80000001\", \"subleaf\": \"0x0\", \"flags\": 0,"
			       " \"modifiers\": [{\"register\": \"ecx\", \"bitmap\": "
			       "\"0b10xxxxxxxxxxxxxxxxxxxxxxxxxxxxx0\"}]},"
			       " {\"leaf\": \"7\", \"subleaf\": \"1\", \"flags\": 1, \"modifiers\": [{\"register\": "
			       "\"eax\", \"bitmap\": \"0b00000000000000000000000000000000\"}]}]}",
			       &t, err, sizeof(err)),
			 0);
	assert_string_equal(t.name, "custom");
	assert_int_equal(t.n, 2);
	cpu_template_apply(&t, &c);
	assert_int_equal(c.e[3].ecx, 0xbffffffeu);
	assert_int_equal(c.e[2].eax, 0);      /* subleaf 1 */
	assert_int_equal(c.e[1].eax, 0);      /* subleaf 0 had 0 already */
	assert_int_equal(c.e[1].ebx, ~0u);    /* untouched */
	back = api_cpu_config_json(&t);
	assert_non_null(back);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(json_array_get(json_object_get(back, "cpuid_modifiers"), 0),
								   "modifiers"),
						   0),
				    "bitmap")),
			    "0b10xxxxxxxxxxxxxxxxxxxxxxxxxxxxx0");
	json_decref(back);
}

static void test_bad_custom_templates(void **state)
{
	static const char *const bad[][2] = {
		{ "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0\", \"flags\": 0, \"modifiers\": "
		  "[{\"register\": \"esp\", \"bitmap\": \"0b00000000000000000000000000000000\"}]}]}",
		  "invalid register 'esp'" },
		{ "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0\", \"flags\": 0, \"modifiers\": "
		  "[{\"register\": \"eax\", \"bitmap\": \"0b0101\"}]}]}",
		  "invalid bitmap '0b0101'" },
		{ "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0\", \"flags\": 0, \"modifiers\": "
		  "[{\"register\": \"eax\", \"bitmap\": \"0b0000000000000000000000000000000y\"}]}]}",
		  "invalid bitmap" },
		{ "{\"cpuid_modifiers\": [{\"leaf\": \"one\", \"subleaf\": \"0\", \"flags\": 0, \"modifiers\": []}]}",
		  "invalid leaf 'one'" },
		{ "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"flags\": 0, \"modifiers\": []}]}", "subleaf" },
		{ "{\"msr_modifiers\": [{\"addr\": \"0x10a\", \"bitmap\": \"0b0\"}]}", "msr_modifiers are not supported" },
		{ "{\"kvm_capabilities\": [\"!56\"]}", "kvm_capabilities are not supported" },
		{ "{\"cpuid\": []}", "cpuid" },
	};
	static struct cpu_template t;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";

		memset(&t, 0, sizeof(t));
		assert_int_equal(parse(bad[i][0], &t, err, sizeof(err)), CV_EINPUT);
		if (!strstr(err, bad[i][1]))
			fail_msg("'%s' does not say '%s'", err, bad[i][1]);
		assert_int_equal(t.n, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_static_templates),
		cmocka_unit_test(test_custom_template),
		cmocka_unit_test(test_bad_custom_templates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
