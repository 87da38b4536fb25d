/* The API's HTTP request parser against hostile input: huge headers,
 * missing CRLFs, bad Content-Lengths, bodies longer than declared,
 * pipelined requests, request smuggling; and the response parser the
 * manager uses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"

static int parse(const char *s, struct http_request *r)
{
	return http_parse_request(s, strlen(s), r);
}

static void expect_error(const char *s, int status)
{
	struct http_request r;

	assert_int_equal(parse(s, &r), HTTP_ERROR);
	assert_int_equal(r.status, status);
	assert_true(r.error[0]);
}

static void test_simple_get(void **state)
{
	struct http_request r;
	const char *s = "GET /machine-config HTTP/1.1\r\nHost: localhost\r\n\r\n";

	(void)state;
	assert_int_equal(parse(s, &r), HTTP_COMPLETE);
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.path, "/machine-config");
	assert_int_equal(r.body_len, 0);
	assert_true(r.keep_alive);
	assert_int_equal(r.total_len, strlen(s));
}

static void test_put_with_body_and_query(void **state)
{
	struct http_request r;
	const char *s = "PUT http://localhost/drives/root?x=1 HTTP/1.1\r\ncontent-length:  7 \r\n"
			"Connection: close\r\n\r\n{\"a\":1}";

	(void)state;
	assert_int_equal(parse(s, &r), HTTP_COMPLETE);
	assert_string_equal(r.path, "/drives/root");
	assert_int_equal(r.body_len, 7);
	assert_memory_equal(r.body, "{\"a\":1}", 7);
	assert_false(r.keep_alive);
}

static void test_incomplete_until_whole(void **state)
{
	const char *s = "PATCH /vm HTTP/1.1\r\nContent-Length: 19\r\nExpect: 100-continue\r\n\r\n{\"state\": \"Paused\"}";
	struct http_request r;
	size_t len = strlen(s);

	(void)state;
	/* Every prefix is incomplete, never an error; once the header is
	 * there the 100-continue expectation is visible. */
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(http_parse_request(s, i, &r), HTTP_INCOMPLETE);
		if (i >= len - 19) {
			assert_true(r.header_len > 0);
			assert_true(r.expect_continue);
		}
	}
	assert_int_equal(http_parse_request(s, len, &r), HTTP_COMPLETE);
}

static void test_pipelined_and_longer_body(void **state)
{
	/* The body is longer than declared: the rest is the next request. */
	const char *s = "PUT /actions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\n\r\n"
			"GET /version HTTP/1.0\r\n\r\n";
	struct http_request r;
	size_t off = 0;

	(void)state;
	assert_int_equal(http_parse_request(s, strlen(s), &r), HTTP_COMPLETE);
	assert_string_equal(r.path, "/actions");
	assert_int_equal(r.body_len, 2);
	off += r.total_len;
	assert_int_equal(http_parse_request(s + off, strlen(s) - off, &r), HTTP_COMPLETE);
	assert_string_equal(r.path, "/");
	off += r.total_len;
	assert_int_equal(http_parse_request(s + off, strlen(s) - off, &r), HTTP_COMPLETE);
	assert_string_equal(r.path, "/version");
	assert_false(r.keep_alive); /* HTTP/1.0 */
	assert_int_equal(off + r.total_len, strlen(s));
	/* Garbage after a request is a bad next request, not part of this one. */
	s = "GET / HTTP/1.1\r\n\r\nxyz\r\n\r\n";
	assert_int_equal(parse(s, &r), HTTP_COMPLETE);
	expect_error(s + r.total_len, 400);
}

static void test_huge_header(void **state)
{
	char *s = malloc(HTTP_MAX_HEADER * 2 + 64);
	struct http_request r;
	size_t n;

	(void)state;
	n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nX-Big: ");
	memset(s + n, 'a', HTTP_MAX_HEADER * 2);
	s[n + HTTP_MAX_HEADER * 2] = 0;
	assert_int_equal(parse(s, &r), HTTP_ERROR);
	assert_int_equal(r.status, 400);
	/* Just under the limit, still waiting for the end: incomplete. */
	assert_int_equal(http_parse_request(s, HTTP_MAX_HEADER - 1, &r), HTTP_INCOMPLETE);
	free(s);
}

static void test_missing_crlf(void **state)
{
	(void)state;
	expect_error("GET / HTTP/1.1\nHost: x\n\n", 400);
	expect_error("GET / HTTP/1.1\r\nHost: x\n\r\n", 400);
	expect_error("GET / HTTP/1.1\rHost: x\r\n\r\n", 400);
	expect_error("\r\nGET / HTTP/1.1\r\n\r\n", 400);
}

static void test_bad_content_length(void **state)
{
	(void)state;
	expect_error("PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
	expect_error("PUT / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400);
	expect_error("PUT / HTTP/1.1\r\nContent-Length: \r\n\r\n", 400);
	expect_error("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
	expect_error("PUT / HTTP/1.1\r\nContent-Length: 60000\r\n\r\n", 413);
	/* Two different lengths are a smuggling attempt; equal ones are fine. */
	expect_error("PUT / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400);
	expect_error("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

static void test_malformed_lines(void **state)
{
	(void)state;
	expect_error("GET\r\n\r\n", 400);
	expect_error("GET / HTTP/2.0\r\n\r\n", 400);
	expect_error("GET  / HTTP/1.1\r\n\r\n", 400);
	expect_error("get / HTTP/1.1\r\n\r\n", 400);
	expect_error("GETTINGLONG / HTTP/1.1\r\n\r\n", 400);
	expect_error("GET noslash HTTP/1.1\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", 400);
}

static void test_nul_and_binary(void **state)
{
	struct http_request r;
	char s[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
	unsigned seed = 1;
	char junk[512];

	(void)state;
	assert_int_equal(http_parse_request(s, sizeof(s) - 1, &r), HTTP_ERROR);
	/* Random bytes never crash the parser, and never parse as complete
	 * without a blank line. */
	for (int round = 0; round < 2000; round++) {
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (char)((seed = seed * 1103515245 + 12345) >> 16);
		(void)http_parse_request(junk, sizeof(junk), &r);
	}
}

static void test_response_format_and_parse(void **state)
{
	char buf[512];
	struct http_response resp;
	size_t n;

	(void)state;
	n = http_format_response(buf, sizeof(buf), 400, "{\"fault_message\":\"x\"}", 21, true);
	assert_true(n > 0);
	assert_int_equal(http_parse_response(buf, n, &resp), HTTP_COMPLETE);
	assert_int_equal(resp.status, 400);
	assert_int_equal(resp.body_len, 21);
	assert_int_equal(http_parse_response(buf, n - 1, &resp), HTTP_INCOMPLETE);
	n = http_format_response(buf, sizeof(buf), 204, NULL, 0, true);
	assert_null(strstr(buf, "Content-Length"));
	assert_int_equal(http_parse_response(buf, n, &resp), HTTP_COMPLETE);
	assert_int_equal(resp.status, 204);
	assert_int_equal(http_format_response(buf, 16, 200, "{}", 2, true), 0); /* does not fit */
	assert_int_equal(http_parse_response("HTTP/1.1 200 OK\r\n\r\n", 19, &resp), HTTP_ERROR);
	assert_int_equal(http_parse_response("HTTX/1.1 200 OK\r\n\r\n", 19, &resp), HTTP_ERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_put_with_body_and_query),
		cmocka_unit_test(test_incomplete_until_whole),
		cmocka_unit_test(test_pipelined_and_longer_body),
		cmocka_unit_test(test_huge_header),
		cmocka_unit_test(test_missing_crlf),
		cmocka_unit_test(test_bad_content_length),
		cmocka_unit_test(test_malformed_lines),
		cmocka_unit_test(test_nul_and_binary),
		cmocka_unit_test(test_response_format_and_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
