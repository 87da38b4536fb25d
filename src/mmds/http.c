#include "mmds/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

#define TOKEN_PATH "/latest/api/token"
#define CT_TEXT "text/plain"
#define CT_JSON "application/json"

/* extra: header lines (each ending in CRLF) or "". */
static int respond(int status, const char *type, const char *extra, const char *body, size_t blen, char **out,
		   size_t *len)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nServer: cellvm MMDS\r\nConnection: keep-alive\r\n%sContent-Type: "
			 "%s\r\nContent-Length: %zu\r\n\r\n",
			 status, http_reason(status), extra, type, blen);

	if (n < 0 || (size_t)n >= sizeof(head) || !(*out = malloc((size_t)n + blen)))
		return CV_EFAIL;
	memcpy(*out, head, (size_t)n);
	memcpy(*out + n, body, blen);
	*len = (size_t)n + blen;
	return 0;
}

static int respond_text(int status, const char *extra, char **out, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int respond_text(int status, const char *extra, char **out, size_t *len, const char *fmt, ...)
{
	char body[768];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (n < 0)
		return CV_EFAIL;
	return respond(status, CT_TEXT, extra, body, (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1, out,
		       len);
}

int mmds_http_error(int status, const char *msg, char **out, size_t *len)
{
	return respond_text(status, "", out, len, "%s", msg);
}

/* The path with runs of '/' made one, as Firecracker reads it. */
static void sanitize(const char *in, char *out)
{
	char *o = out;

	for (; *in; in++)
		if (*in != '/' || o == out || o[-1] != '/')
			*o++ = *in;
	*o = 0;
}

static bool header(const char *buf, const struct http_request *req, const char *a, const char *b,
		   struct http_field *f)
{
	return http_header(buf, req, a, f) || http_header(buf, req, b, f);
}

static int answer_get(const struct mmds_service *svc, const char *buf, const struct http_request *req,
		      const char *path, char **out, size_t *len)
{
	struct http_field accept;
	bool json = http_header(buf, req, "Accept", &accept) && accept.value_len == strlen(CT_JSON) &&
		    !strncmp(accept.value, CT_JSON, accept.value_len);
	char *body;
	size_t blen;
	int rc;

	switch (mmds_store_lookup(svc->store, path, json && !svc->imds_compat, &body, &blen)) {
	case MMDS_OK:
		/* The type follows Accept even when imds_compat made it text, as there. */
		rc = respond(200, json ? CT_JSON : CT_TEXT, "", body, blen, out, len);
		free(body);
		return rc;
	case MMDS_NOT_FOUND:
		return respond_text(404, "", out, len, "Resource not found: %s.", req->path);
	case MMDS_UNSUPPORTED:
		return respond_text(501, "", out, len, "Cannot retrieve value. The value has an unsupported type.");
	default:
		return CV_EFAIL;
	}
}

static int answer_put(const struct mmds_service *svc, const char *buf, const struct http_request *req,
		      const char *path, uint64_t now_ms, char **out, size_t *len)
{
	char token[MMDS_TOKEN_MAX + 1], extra[160];
	struct http_field f;
	uint64_t ttl = 0;

	if (http_header(buf, req, "X-Forwarded-For", &f))
		return respond_text(400, "", out, len, "Invalid header. Reason: Unsupported header name. Key: %.*s",
				    (int)f.name_len, f.name);
	if (strcmp(path, TOKEN_PATH))
		return respond_text(404, "", out, len, "Resource not found: %s.", req->path);
	if (!header(buf, req, "X-metadata-token-ttl-seconds", "X-aws-ec2-metadata-token-ttl-seconds", &f))
		return respond_text(400, "", out, len,
				    "Token time to live value not found. Use `X-metadata-token-ttl-seconds` or "
				    "`X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's lifetime.");
	for (size_t i = 0; i < f.value_len && ttl <= UINT32_MAX; i++)
		ttl = (f.value[i] >= '0' && f.value[i] <= '9') ? ttl * 10 + (uint64_t)(f.value[i] - '0') : UINT64_MAX;
	if (!f.value_len || ttl > UINT32_MAX)
		return respond_text(400, "", out, len, "Invalid header. Reason: Invalid value. Key:%.*s; Value:%.*s",
				    (int)f.name_len, f.name, (int)(f.value_len > 64 ? 64 : f.value_len), f.value);
	if (ttl < MMDS_TOKEN_TTL_MIN || ttl > MMDS_TOKEN_TTL_MAX)
		return respond_text(400, "", out, len,
				    "Invalid time to live value provided for token: %llu. Please provide a value "
				    "between %d and %d.",
				    (unsigned long long)ttl, MMDS_TOKEN_TTL_MIN, MMDS_TOKEN_TTL_MAX);
	if (mmds_store_token_new(svc->store, (uint32_t)ttl, now_ms, token))
		return respond_text(400, "", out, len, "Failed to encrypt token.");
	snprintf(extra, sizeof(extra), "%.*s: %llu\r\n", (int)(f.name_len > 64 ? 64 : f.name_len), f.name,
		 (unsigned long long)ttl);
	return respond(200, CT_TEXT, extra, token, strlen(token), out, len);
}

int mmds_http_answer(const struct mmds_service *svc, const char *buf, const struct http_request *req,
		     uint64_t now_ms, char **out, size_t *len)
{
	char path[sizeof(req->path)];
	struct http_field tok;

	sanitize(req->path, path);
	if (!strcmp(req->method, "PUT"))
		return answer_put(svc, buf, req, path, now_ms, out, len);
	if (strcmp(req->method, "GET"))
		return respond_text(405, "Allow: GET, PUT\r\n", out, len, "Not allowed HTTP method.");
	if (svc->version == MMDS_V2) {
		if (!header(buf, req, "X-metadata-token", "X-aws-ec2-metadata-token", &tok))
			return respond_text(401, "", out, len,
					    "No MMDS token provided. Use `X-metadata-token` or "
					    "`X-aws-ec2-metadata-token` header to specify the session token.");
		if (!mmds_store_token_valid(svc->store, tok.value, tok.value_len, now_ms))
			return respond_text(401, "", out, len, "MMDS token not valid.");
	}
	return answer_get(svc, buf, req, path, out, len);
}
