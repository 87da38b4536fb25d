/* HTTP/1.1 framing for the API socket: parsing requests (and, for the
 * manager's client, responses) out of a byte stream, and formatting
 * responses. Only what a local control API needs: Content-Length bodies,
 * keep-alive, pipelining, Expect: 100-continue; no chunked encoding. The
 * parser never trusts its input: every length is bounded and every
 * malformed byte is an error, not a guess. */
#ifndef CELLVM_API_HTTP_H
#define CELLVM_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEADER 8192
/* Firecracker's default limit on request bodies (--http-api-max-payload-size). */
#define HTTP_MAX_BODY 51200

enum { HTTP_ERROR = -1, HTTP_INCOMPLETE = 0, HTTP_COMPLETE = 1 };

struct http_request {
	char method[8];
	char path[256];
	const char *body; /* points into the parsed buffer */
	size_t body_len;
	bool keep_alive;
	bool expect_continue;
	size_t header_len; /* bytes up to the blank line; 0 while headers are incomplete */
	size_t total_len;  /* header_len + body_len: where the next request starts */
	int status;        /* on HTTP_ERROR: the status to answer with */
	char error[160];   /* on HTTP_ERROR: why */
};

/* Parses the request at the start of buf[0, len). HTTP_INCOMPLETE means
 * more bytes are needed (header_len is set once the headers are complete,
 * e.g. to answer 100-continue); HTTP_COMPLETE fills req; HTTP_ERROR sets
 * status and error, after which the connection cannot be resynchronised. */
int http_parse_request(const char *buf, size_t len, struct http_request *req);
/* The same with another limit on the body than HTTP_MAX_BODY. */
int http_parse_request_max(const char *buf, size_t len, size_t max_body, struct http_request *req);

/* A header field of a request http_parse_request completed from buf:
 * true and its name (as sent) and trimmed value when present; the first
 * of that name (case-insensitive) wins. */
struct http_field {
	const char *name, *value;
	size_t name_len, value_len;
};
bool http_header(const char *buf, const struct http_request *req, const char *name, struct http_field *out);

struct http_response {
	int status;
	const char *body;
	size_t body_len;
	size_t total_len;
};

/* The same for a response (the manager reading the API's answers). */
int http_parse_response(const char *buf, size_t len, struct http_response *resp);

const char *http_reason(int status);

/* Writes a complete response into buf. Returns its length, or 0 if it
 * does not fit in cap. A 204 carries no body or Content-Length. */
size_t http_format_response(char *buf, size_t cap, int status, const char *body, size_t body_len,
			    bool keep_alive);

#endif
