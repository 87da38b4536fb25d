/* The MMDS's data store (PUT, RFC 7396 merge patches, the size limit),
 * its lookups (JSON pointers, IMDS text), V2 tokens and the HTTP answers
 * the guest gets, against Firecracker's behaviour and messages; and the
 * API's /mmds resources. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/firecracker.h"
#include "util/err.h"
#include "mmds/http.h"
#include "mmds/store.h"
#include "vmm/mmds_opt.h"

static json_t *js(const char *s)
{
	json_t *v = json_loads(s, JSON_DECODE_ANY, NULL);

	assert_non_null(v);
	return v;
}

static void put(struct mmds_store *s, const char *doc, size_t limit, enum mmds_result want)
{
	json_t *v = js(doc);

	assert_int_equal(mmds_store_put(s, v, limit), want);
	json_decref(v);
}

static void patch(struct mmds_store *s, const char *doc, size_t limit, enum mmds_result want)
{
	json_t *v = js(doc);

	assert_int_equal(mmds_store_patch(s, v, limit), want);
	json_decref(v);
}

static void expect_doc(struct mmds_store *s, const char *want)
{
	json_t *v = mmds_store_get(s);
	char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);

	assert_string_equal(text, want);
	free(text);
	json_decref(v);
}

static void expect_lookup(struct mmds_store *s, const char *path, bool json, enum mmds_result want,
			  const char *body)
{
	char *out;
	size_t len;

	assert_int_equal(mmds_store_lookup(s, path, json, &out, &len), want);
	if (want == MMDS_OK) {
		assert_int_equal(len, strlen(body));
		assert_memory_equal(out, body, len);
	}
	free(out);
}

static void test_put_patch_limit(void **state)
{
	struct mmds_store s;

	(void)state;
	assert_int_equal(mmds_store_init(&s, "vm"), 0);
	expect_doc(&s, "{}");
	patch(&s, "{\"a\":1}", 100, MMDS_NOT_INITIALIZED);
	put(&s, "{\"b\":{\"c\":\"d\",\"e\":[1,2]},\"a\":\"x\"}", 100, MMDS_OK);
	/* RFC 7396: null removes, objects merge, everything else replaces. */
	patch(&s, "{\"b\":{\"c\":null,\"f\":{\"g\":true}},\"a\":[3],\"h\":null}", 100, MMDS_OK);
	expect_doc(&s, "{\"a\":[3],\"b\":{\"e\":[1,2],\"f\":{\"g\":true}}}");
	patch(&s, "{\"b\":\"flat\"}", 100, MMDS_OK);
	expect_doc(&s, "{\"a\":[3],\"b\":\"flat\"}");
	/* The limit is on compact JSON; a refused change changes nothing. */
	put(&s, "{\"k\":\"123456789\"}", 16, MMDS_TOO_BIG);
	put(&s, "{\"k\":\"12345678\"}", 16, MMDS_OK);
	patch(&s, "{\"k2\":1}", 16, MMDS_TOO_BIG);
	expect_doc(&s, "{\"k\":\"12345678\"}");
	mmds_store_destroy(&s);
}

static void test_lookup_and_imds(void **state)
{
	struct mmds_store s;

	(void)state;
	assert_int_equal(mmds_store_init(&s, "vm"), 0);
	/* Before any PUT the root is null: JSON "null", no IMDS text, nothing below. */
	expect_lookup(&s, "/", true, MMDS_OK, "null");
	expect_lookup(&s, "/", false, MMDS_UNSUPPORTED, NULL);
	expect_lookup(&s, "/latest", false, MMDS_NOT_FOUND, NULL);
	put(&s,
	    "{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-1\",\"reservation-id\":\"r-2\",\"net\":{}}},"
	    "\"age\":43,\"a/b\":\"slash\",\"t~\":\"tilde\",\"list\":[\"x\",\"y\"]}",
	    10000, MMDS_OK);
	/* Keys sorted, objects with a trailing '/', one a line, no final newline. */
	expect_lookup(&s, "/", false, MMDS_OK, "a/b\nage\nlatest/\nlist\nt~");
	expect_lookup(&s, "/latest/meta-data", false, MMDS_OK, "ami-id\nnet/\nreservation-id");
	expect_lookup(&s, "/latest/meta-data/", false, MMDS_OK, "ami-id\nnet/\nreservation-id");
	expect_lookup(&s, "/latest/meta-data/ami-id", false, MMDS_OK, "ami-1");
	expect_lookup(&s, "/latest/meta-data/ami-id", true, MMDS_OK, "\"ami-1\"");
	expect_lookup(&s, "/latest/meta-data", true, MMDS_OK,
		      "{\"ami-id\":\"ami-1\",\"net\":{},\"reservation-id\":\"r-2\"}");
	expect_lookup(&s, "/age", false, MMDS_UNSUPPORTED, NULL);
	expect_lookup(&s, "/age", true, MMDS_OK, "43");
	/* RFC 6901 escapes and array indices. */
	expect_lookup(&s, "/a~1b", false, MMDS_OK, "slash");
	expect_lookup(&s, "/t~0", false, MMDS_OK, "tilde");
	expect_lookup(&s, "/list/1", false, MMDS_OK, "y");
	expect_lookup(&s, "/list/01", false, MMDS_NOT_FOUND, NULL);
	expect_lookup(&s, "/list/2", false, MMDS_NOT_FOUND, NULL);
	expect_lookup(&s, "/latest/nothing", true, MMDS_NOT_FOUND, NULL);
	expect_lookup(&s, "/latest/meta-data/ami-id/deeper", true, MMDS_NOT_FOUND, NULL);
	mmds_store_destroy(&s);
}

static void test_tokens(void **state)
{
	struct mmds_store s, other;
	char tok[MMDS_TOKEN_MAX + 1], bad[MMDS_TOKEN_MAX + 1];

	(void)state;
	assert_int_equal(mmds_store_init(&s, "vm"), 0);
	assert_int_equal(mmds_store_init(&other, "vm"), 0);
	assert_int_equal(mmds_store_token_new(&s, 2, 1000, tok), 0);
	assert_true(strlen(tok) == 48);
	assert_true(mmds_store_token_valid(&s, tok, strlen(tok), 1000));
	assert_true(mmds_store_token_valid(&s, tok, strlen(tok), 2999));
	/* Expired at now + ttl. */
	assert_false(mmds_store_token_valid(&s, tok, strlen(tok), 3000));
	/* Another process's key, a changed byte, a cut or overlong token. */
	assert_false(mmds_store_token_valid(&other, tok, strlen(tok), 1000));
	memcpy(bad, tok, sizeof(bad));
	bad[20] = bad[20] == 'A' ? 'B' : 'A';
	assert_false(mmds_store_token_valid(&s, bad, strlen(bad), 1000));
	assert_false(mmds_store_token_valid(&s, tok, 47, 1000));
	assert_false(mmds_store_token_valid(&s, "!!!!", 4, 1000));
	mmds_store_destroy(&other);
	mmds_store_destroy(&s);
}

/* The guest's request through the HTTP answerer: status, and the body. */
static int ask(const struct mmds_service *svc, const char *raw, uint64_t now, char *body, size_t cap)
{
	struct http_request req;
	char *out, *b;
	size_t len;
	int status;

	assert_int_equal(http_parse_request(raw, strlen(raw), &req), HTTP_COMPLETE);
	assert_int_equal(mmds_http_answer(svc, raw, &req, now, &out, &len), 0);
	status = atoi(out + 9);
	b = strstr(out, "\r\n\r\n");
	assert_non_null(b);
	snprintf(body, cap, "%.*s", (int)(len - (size_t)(b + 4 - out)), b + 4);
	free(out);
	return status;
}

static void test_http_v1_v2(void **state)
{
	struct mmds_store s;
	struct mmds_service v1 = { &s, MMDS_V1, false }, v2 = { &s, MMDS_V2, false }, compat = { &s, MMDS_V1, true };
	char body[512], req[512], tok[128];

	(void)state;
	assert_int_equal(mmds_store_init(&s, "vm"), 0);
	put(&s, "{\"latest\":{\"meta-data\":{\"id\":\"i-1\"}}}", 1000, MMDS_OK);
	assert_int_equal(ask(&v1, "GET /latest HTTP/1.1\r\n\r\n", 0, body, sizeof(body)), 200);
	assert_string_equal(body, "meta-data/");
	assert_int_equal(ask(&v1, "GET //latest///meta-data/id HTTP/1.1\r\nAccept: application/json\r\n\r\n", 0,
			     body, sizeof(body)),
			 200);
	assert_string_equal(body, "\"i-1\"");
	assert_int_equal(ask(&compat, "GET /latest/meta-data/id HTTP/1.1\r\nAccept: application/json\r\n\r\n", 0,
			     body, sizeof(body)),
			 200);
	assert_string_equal(body, "i-1");
	assert_int_equal(ask(&v1, "GET /nope HTTP/1.1\r\n\r\n", 0, body, sizeof(body)), 404);
	assert_string_equal(body, "Resource not found: /nope.");
	assert_int_equal(ask(&v1, "POST / HTTP/1.1\r\n\r\n", 0, body, sizeof(body)), 405);
	assert_string_equal(body, "Not allowed HTTP method.");
	/* V2: no token, a bad one, then a good one until it expires. */
	assert_int_equal(ask(&v2, "GET /latest HTTP/1.1\r\n\r\n", 0, body, sizeof(body)), 401);
	assert_string_equal(body, "No MMDS token provided. Use `X-metadata-token` or `X-aws-ec2-metadata-token` "
				  "header to specify the session token.");
	assert_int_equal(ask(&v2, "GET /latest HTTP/1.1\r\nX-metadata-token: nope\r\n\r\n", 0, body, sizeof(body)),
			 401);
	assert_string_equal(body, "MMDS token not valid.");
	assert_int_equal(ask(&v2, "PUT /latest/api/token HTTP/1.1\r\n\r\n", 0, body, sizeof(body)), 400);
	assert_string_equal(body, "Token time to live value not found. Use `X-metadata-token-ttl-seconds` or "
				  "`X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's lifetime.");
	assert_int_equal(ask(&v2, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 0\r\n\r\n", 0,
			     body, sizeof(body)),
			 400);
	assert_string_equal(body, "Invalid time to live value provided for token: 0. Please provide a value "
				  "between 1 and 21600.");
	assert_int_equal(ask(&v2, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: x\r\n\r\n", 0,
			     body, sizeof(body)),
			 400);
	assert_string_equal(body, "Invalid header. Reason: Invalid value. Key:X-metadata-token-ttl-seconds; Value:x");
	assert_int_equal(ask(&v2, "PUT /latest/api/token HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n"
				  "X-metadata-token-ttl-seconds: 5\r\n\r\n",
			     0, body, sizeof(body)),
			 400);
	assert_int_equal(ask(&v2, "PUT /latest/api/other HTTP/1.1\r\nX-metadata-token-ttl-seconds: 5\r\n\r\n", 0,
			     body, sizeof(body)),
			 404);
	assert_int_equal(ask(&v2, "PUT /latest/api/token HTTP/1.1\r\nx-aws-ec2-metadata-token-ttl-seconds: 5\r\n\r\n",
			     1000, tok, sizeof(tok)),
			 200);
	snprintf(req, sizeof(req), "GET /latest/meta-data/id HTTP/1.1\r\nX-aws-ec2-metadata-token: %s\r\n\r\n", tok);
	assert_int_equal(ask(&v2, req, 5999, body, sizeof(body)), 200);
	assert_string_equal(body, "i-1");
	assert_int_equal(ask(&v2, req, 6000, body, sizeof(body)), 401);
	/* V1 takes a token, or none, or a wrong one. */
	assert_int_equal(ask(&v1, req, 6000, body, sizeof(body)), 200);
	mmds_store_destroy(&s);
}

static int fc_start(void *ctx, struct vm_config *vm, char *err, size_t errlen)
{
	(void)ctx;
	(void)vm;
	(void)err;
	(void)errlen;
	return 0;
}

static const struct fc_ops ops = { .start = fc_start };

static int call(struct fc_api *a, const char *method, const char *path, const char *body, char *out, size_t cap)
{
	struct fc_reply r;
	int status;

	fc_api_handle(a, method, path, body, body ? strlen(body) : 0, &r);
	snprintf(out, cap, "%.*s", (int)r.len, r.body ? r.body : "");
	free(r.body);
	status = r.status;
	return status;
}

static void test_api_resources(void **state)
{
	struct fc_api a;
	char out[1024];

	(void)state;
	fc_api_init(&a, &ops, NULL, "vm");
	a.cfg.mmds_size_limit = 64;
	assert_int_equal(call(&a, "GET", "/mmds", NULL, out, sizeof(out)), 200);
	assert_string_equal(out, "{}");
	assert_int_equal(call(&a, "PATCH", "/mmds", "{\"a\":1}", out, sizeof(out)), 400);
	assert_string_equal(out, "{\"fault_message\":\"MMDS error: The MMDS data store is not initialized.\"}");
	assert_int_equal(call(&a, "PUT", "/mmds", "{\"a\":{\"b\":\"c\"}}", out, sizeof(out)), 204);
	assert_int_equal(call(&a, "PATCH", "/mmds", "{\"a\":{\"d\":\"e\"}}", out, sizeof(out)), 204);
	assert_int_equal(call(&a, "GET", "/mmds", NULL, out, sizeof(out)), 200);
	assert_string_equal(out, "{\"a\":{\"b\":\"c\",\"d\":\"e\"}}");
	assert_int_equal(call(&a, "PUT", "/mmds", "{\"big\":\"0123456789012345678901234567890123456789012345678901234567890\"}",
			      out, sizeof(out)),
			 413);
	assert_string_equal(out, "{\"fault_message\":\"MMDS limit exceeded error: The MMDS patch request doesn't fit.\"}");
	assert_int_equal(call(&a, "PUT", "/mmds/other", "{}", out, sizeof(out)), 400);
	assert_string_equal(out, "{\"fault_message\":\"Unrecognized PUT request path `other`.\"}");
	/* /mmds/config against the NICs there are. */
	assert_int_equal(call(&a, "PUT", "/mmds/config", "{\"network_interfaces\":[]}", out, sizeof(out)), 400);
	assert_string_equal(out, "{\"fault_message\":\"MMMDS config error: The list of network interface IDs that "
				 "allow forwarding MMDS requests is empty.\"}");
	assert_int_equal(call(&a, "PUT", "/mmds/config", "{\"network_interfaces\":[\"eth0\"]}", out, sizeof(out)), 400);
	assert_string_equal(out, "{\"fault_message\":\"MMMDS config error: The list of network interface IDs provided "
				 "contains at least one ID that does not correspond to any existing network "
				 "interface.\"}");
	assert_int_equal(call(&a, "PUT", "/network-interfaces/eth0", "{\"iface_id\":\"eth0\",\"host_dev_name\":\"t0\"}",
			      out, sizeof(out)),
			 204);
	assert_int_equal(call(&a, "PUT", "/mmds/config",
			      "{\"network_interfaces\":[\"eth0\"],\"ipv4_address\":\"169.254.0.1\"}", out, sizeof(out)),
			 400);
	assert_string_equal(out, "{\"fault_message\":\"MMMDS config error: The MMDS IPv4 address is not link local.\"}");
	assert_int_equal(call(&a, "PUT", "/mmds/config", "{\"network_interfaces\":[\"eth0\"],\"version\":\"V3\"}", out,
			      sizeof(out)),
			 400);
	assert_int_equal(call(&a, "PUT", "/mmds/config",
			      "{\"network_interfaces\":[\"eth0\"],\"version\":\"V2\",\"ipv4_address\":\"169.254.170.2\","
			      "\"imds_compat\":true}",
			      out, sizeof(out)),
			 204);
	assert_int_equal(call(&a, "GET", "/vm/config", NULL, out, sizeof(out)), 200);
	assert_non_null(strstr(out, "\"mmds-config\":{\"version\":\"V2\",\"network_interfaces\":[\"eth0\"],"
				    "\"ipv4_address\":\"169.254.170.2\",\"imds_compat\":true}"));
	fc_api_destroy(&a);
}

static void test_api_post_boot(void **state)
{
	struct fc_api a;
	char out[512];

	(void)state;
	fc_api_init(&a, &ops, NULL, "vm");
	a.state = FC_RUNNING; /* booted without any MMDS */
	assert_int_equal(call(&a, "PUT", "/mmds", "{}", out, sizeof(out)), 400);
	assert_string_equal(out, "{\"fault_message\":\"MMDS error: The MMDS data store is not initialized.\"}");
	assert_int_equal(call(&a, "GET", "/mmds", NULL, out, sizeof(out)), 400);
	assert_int_equal(call(&a, "PUT", "/mmds/config", "{\"network_interfaces\":[\"x\"]}", out, sizeof(out)), 400);
	assert_string_equal(out, "{\"fault_message\":\"" FC_NOT_AFTER "\"}");
	fc_api_destroy(&a);
	/* One that had a store before boot keeps it. */
	fc_api_init(&a, &ops, NULL, "vm");
	assert_int_equal(call(&a, "PUT", "/mmds", "{\"k\":\"v\"}", out, sizeof(out)), 204);
	a.state = FC_RUNNING;
	assert_int_equal(call(&a, "PATCH", "/mmds", "{\"k\":\"w\"}", out, sizeof(out)), 204);
	assert_int_equal(call(&a, "GET", "/mmds", NULL, out, sizeof(out)), 200);
	assert_string_equal(out, "{\"k\":\"w\"}");
	fc_api_destroy(&a);
}

static void test_cli_option(void **state)
{
	struct mmds_config m = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(mmds_parse("nics=net0+net2,version=V2,address=169.254.170.2,imds_compat=on", &m, err,
				    sizeof(err)),
			 0);
	assert_true(m.set && m.version == MMDS_V2 && m.imds_compat && m.addr == 0xa9feaa02 && m.nics == 5);
	assert_int_equal(mmds_check(&m, 3, err, sizeof(err)), 0);
	assert_int_equal(mmds_check(&m, 2, err, sizeof(err)), CV_EINPUT);
	assert_int_equal(mmds_parse("version=V1", &m, err, sizeof(err)), CV_EINPUT); /* one per VM */
	m = (struct mmds_config){ 0 };
	assert_int_equal(mmds_parse("", &m, err, sizeof(err)), 0);
	assert_true(m.nics == 1 && m.version == MMDS_V1 && m.addr == MMDS_DEFAULT_ADDR);
	static const char *const bad[] = { "nics=eth0", "nics=net9", "nics=net0+", "version=V3", "address=169.254.0.1",
					   "address=10.0.0.1", "address=nope", "imds_compat=yes", "other=1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = (struct mmds_config){ 0 };
		assert_int_equal(mmds_parse(bad[i], &m, err, sizeof(err)), CV_EINPUT);
		assert_non_null(strstr(err, bad[i]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_patch_limit), cmocka_unit_test(test_lookup_and_imds),
		cmocka_unit_test(test_tokens),		cmocka_unit_test(test_http_v1_v2),
		cmocka_unit_test(test_api_resources),	cmocka_unit_test(test_api_post_boot),
		cmocka_unit_test(test_cli_option),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
