#include "api/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/err.h"

struct headers {
	long long content_length; /* -1: absent */
	bool close, keep_alive, expect_continue, transfer_encoding;
};

static int fail(struct http_request *req, int status, const char *fmt, const char *arg)
{
	req->status = status;
	snprintf(req->error, sizeof(req->error), fmt, arg);
	return HTTP_ERROR;
}

/* The length of the header section (through the blank line): 0 while
 * incomplete, -1 (with err set) when it is malformed or too long. Every
 * line must end in CRLF; bare CR, bare LF and NUL bytes are refused. */
static long header_end(const char *buf, size_t len, const char **err)
{
	size_t lim = len < HTTP_MAX_HEADER ? len : HTTP_MAX_HEADER;

	for (size_t i = 0; i < lim; i++) {
		if (buf[i] == '\0') {
			*err = "NUL byte in the request header";
			return -1;
		}
		if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n') {
			*err = "bare CR in the header (lines must end in CRLF)";
			return -1;
		}
		if (buf[i] != '\n')
			continue;
		if (i == 0 || buf[i - 1] != '\r') {
			*err = "header line not terminated by CRLF";
			return -1;
		}
		if (i >= 3 && buf[i - 2] == '\n')
			return (long)i + 1;
		if (i == 1) {
			*err = "empty request line";
			return -1;
		}
	}
	if (len >= HTTP_MAX_HEADER) {
		*err = "header section longer than 8192 bytes";
		return -1;
	}
	return 0;
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool token_in_list(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token);

	while (len) {
		size_t n = 0;

		while (len && (*v == ' ' || *v == '\t' || *v == ',')) {
			v++;
			len--;
		}
		while (n < len && v[n] != ',' && v[n] != ' ' && v[n] != '\t')
			n++;
		if (n == tl && !strncasecmp(v, token, tl))
			return true;
		v += n;
		len -= n;
	}
	return false;
}

static int content_length(const char *v, size_t len, long long *out)
{
	long long n = 0;

	if (!len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9' || n > 1000000000LL)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	if (*out >= 0 && *out != n)
		return -1; /* two different lengths: a smuggling attempt */
	*out = n;
	return 0;
}

/* Header fields from p to end (each line ends in CRLF). */
static int parse_fields(const char *p, const char *end, struct headers *h, const char **err)
{
	*h = (struct headers){ .content_length = -1 };
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p)), *colon = p, *v;
		size_t vlen;

		if (!eol)
			eol = end;
		while (colon < eol && is_tchar(*colon))
			colon++;
		if (colon == p || colon == eol || *colon != ':') {
			*err = (*p == ' ' || *p == '\t') ? "folded header lines are not supported"
							 : "malformed header field";
			return -1;
		}
		v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		vlen = (size_t)(eol - v);
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		for (size_t i = 0; i < vlen; i++) {
			if ((unsigned char)v[i] < 0x20 && v[i] != '\t') {
				*err = "control character in a header value";
				return -1;
			}
		}
#define NAME_IS(s) ((size_t)(colon - p) == sizeof(s) - 1 && !strncasecmp(p, s, sizeof(s) - 1))
		if (NAME_IS("Content-Length") && content_length(v, vlen, &h->content_length)) {
			*err = "invalid Content-Length";
			return -1;
		} else if (NAME_IS("Transfer-Encoding")) {
			h->transfer_encoding = true;
		} else if (NAME_IS("Connection")) {
			h->close |= token_in_list(v, vlen, "close");
			h->keep_alive |= token_in_list(v, vlen, "keep-alive");
		} else if (NAME_IS("Expect")) {
			h->expect_continue |= vlen == 12 && !strncasecmp(v, "100-continue", 12);
		}
#undef NAME_IS
		p = eol + 2;
	}
	return 0;
}

/* "HTTP/1.0" or "HTTP/1.1": returns the minor version or -1. */
static int http_version(const char *v, size_t len)
{
	if (len != 8 || strncmp(v, "HTTP/1.", 7) || (v[7] != '0' && v[7] != '1'))
		return -1;
	return v[7] - '0';
}

static int parse_request_line(const char *p, const char *eol, struct http_request *req)
{
	const char *sp1 = memchr(p, ' ', (size_t)(eol - p)), *sp2, *target, *q;
	size_t mlen, tlen;
	int minor;

	if (!sp1)
		return fail(req, 400, "%s", "malformed request line");
	mlen = (size_t)(sp1 - p);
	if (!mlen || mlen >= sizeof(req->method))
		return fail(req, 400, "%s", "malformed request method");
	for (size_t i = 0; i < mlen; i++)
		if (p[i] < 'A' || p[i] > 'Z')
			return fail(req, 400, "%s", "malformed request method");
	memcpy(req->method, p, mlen);
	req->method[mlen] = 0;
	target = sp1 + 1;
	sp2 = memchr(target, ' ', (size_t)(eol - target));
	if (!sp2 || (minor = http_version(sp2 + 1, (size_t)(eol - sp2 - 1))) < 0)
		return fail(req, 400, "%s", "malformed request line (expected METHOD /path HTTP/1.1)");
	/* absolute-form (http://host/path) names the same resource */
	if ((size_t)(sp2 - target) > 7 && !strncasecmp(target, "http://", 7)) {
		target += 7;
		while (target < sp2 && *target != '/')
			target++;
	}
	q = memchr(target, '?', (size_t)(sp2 - target));
	tlen = (size_t)((q ? q : sp2) - target);
	if (!tlen || *target != '/')
		return fail(req, 400, "%s", "request target must be a path starting with '/'");
	if (tlen >= sizeof(req->path))
		return fail(req, 400, "%s", "request path longer than 255 bytes");
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f)
			return fail(req, 400, "%s", "invalid character in the request path");
	memcpy(req->path, target, tlen);
	req->path[tlen] = 0;
	req->keep_alive = minor == 1;
	return 0;
}

int http_parse_request(const char *buf, size_t len, struct http_request *req)
{
	return http_parse_request_max(buf, len, HTTP_MAX_BODY, req);
}

int http_parse_request_max(const char *buf, size_t len, size_t max_body, struct http_request *req)
{
	const char *err = NULL, *eol;
	struct headers h;
	long hend;

	memset(req, 0, sizeof(*req));
	hend = header_end(buf, len, &err);
	if (hend < 0)
		return fail(req, 400, "%s", err);
	if (hend == 0)
		return HTTP_INCOMPLETE;
	eol = memchr(buf, '\r', (size_t)hend);
	if (parse_request_line(buf, eol, req))
		return HTTP_ERROR;
	if (parse_fields(eol + 2, buf + hend - 2, &h, &err))
		return fail(req, 400, "%s", err);
	if (h.transfer_encoding)
		return fail(req, 400, "%s", "Transfer-Encoding is not supported: send a Content-Length");
	if (h.content_length > (long long)max_body) {
		fail(req, 413, "%s", "");
		snprintf(req->error, sizeof(req->error), "request body larger than %zu bytes", max_body);
		return HTTP_ERROR;
	}
	if (h.close)
		req->keep_alive = false;
	else if (h.keep_alive)
		req->keep_alive = true;
	req->expect_continue = h.expect_continue;
	req->header_len = (size_t)hend;
	req->body_len = h.content_length > 0 ? (size_t)h.content_length : 0;
	req->total_len = req->header_len + req->body_len;
	if (len < req->total_len)
		return HTTP_INCOMPLETE;
	req->body = buf + hend;
	return HTTP_COMPLETE;
}

bool http_header(const char *buf, const struct http_request *req, const char *name, struct http_field *out)
{
	const char *p = memchr(buf, '\n', req->header_len), *end = buf + req->header_len - 2;
	size_t nl = strlen(name);

	/* The parser checked the lines: each is NAME ':' OWS VALUE OWS CRLF. */
	for (p = p ? p + 1 : end; p < end;) {
		const char *eol = memchr(p, '\r', (size_t)(end - p)), *colon, *v;

		if (!eol)
			eol = end;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon && (size_t)(colon - p) == nl && !strncasecmp(p, name, nl)) {
			for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
				;
			out->name = p;
			out->name_len = nl;
			out->value = v;
			out->value_len = (size_t)(eol - v);
			while (out->value_len && (v[out->value_len - 1] == ' ' || v[out->value_len - 1] == '\t'))
				out->value_len--;
			return true;
		}
		p = eol + 2;
	}
	return false;
}

int http_parse_response(const char *buf, size_t len, struct http_response *resp)
{
	const char *err = NULL, *eol;
	struct headers h;
	long hend = header_end(buf, len, &err);
	int status = 0;

	memset(resp, 0, sizeof(*resp));
	if (hend <= 0)
		return hend < 0 ? HTTP_ERROR : HTTP_INCOMPLETE;
	eol = memchr(buf, '\r', (size_t)hend);
	if (eol - buf < 12 || http_version(buf, 8) < 0 || buf[8] != ' ')
		return HTTP_ERROR;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return HTTP_ERROR;
		status = status * 10 + (buf[i] - '0');
	}
	if (parse_fields(eol + 2, buf + hend - 2, &h, &err) || h.transfer_encoding ||
	    h.content_length > (long long)HTTP_MAX_BODY * 64)
		return HTTP_ERROR;
	if (h.content_length < 0 && status != 204 && status != 304 && status / 100 != 1)
		return HTTP_ERROR; /* no way to find the end of the body */
	resp->status = status;
	resp->body_len = h.content_length > 0 ? (size_t)h.content_length : 0;
	resp->total_len = (size_t)hend + resp->body_len;
	if (len < resp->total_len)
		return HTTP_INCOMPLETE;
	resp->body = buf + hend;
	return HTTP_COMPLETE;
}

const char *http_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	default:
		return "Unknown";
	}
}

size_t http_format_response(char *buf, size_t cap, int status, const char *body, size_t body_len,
			    bool keep_alive)
{
	int n;

	if (status == 204 || status / 100 == 1) {
		n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\nServer: cellvm API\r\nConnection: %s\r\n\r\n", status,
			     http_reason(status), keep_alive ? "keep-alive" : "close");
		body_len = 0;
	} else {
		n = snprintf(buf, cap,
			     "HTTP/1.1 %d %s\r\nServer: cellvm API\r\nConnection: %s\r\n"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			     status, http_reason(status), keep_alive ? "keep-alive" : "close", body_len);
	}
	if (n < 0 || (size_t)n + body_len > cap)
		return 0;
	if (body_len)
		memcpy(buf + n, body, body_len);
	return (size_t)n + body_len;
}
