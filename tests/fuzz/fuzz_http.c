/* libFuzzer target: the API socket's HTTP/1.1 framing (src/api/http.c).
 * The input's first byte picks what reads it: requests as the API server
 * parses them off a client's connection (pipelined, so each complete one
 * is followed by the next), or responses as the manager's client parses
 * the API's answers. Every prefix is parsed too, as bytes arrive in
 * pieces on a socket. */
#include "api/http.h"
#include "fuzz.h"

static void requests(const char *buf, size_t len)
{
	struct http_request req;

	while (len) {
		/* A prefix must give INCOMPLETE or the same verdict, never read past its end. */
		char *part = malloc(len / 2 + 1);

		memcpy(part, buf, len / 2);
		http_parse_request(part, len / 2, &req);
		free(part);
		if (http_parse_request(buf, len, &req) != HTTP_COMPLETE)
			return;
		if (req.total_len == 0 || req.total_len > len)
			abort(); /* the parser claimed bytes it was not given */
		buf += req.total_len;
		len -= req.total_len;
	}
}

static void responses(const char *buf, size_t len)
{
	struct http_response resp;

	while (len && http_parse_response(buf, len, &resp) == HTTP_COMPLETE) {
		if (resp.total_len == 0 || resp.total_len > len)
			abort();
		buf += resp.total_len;
		len -= resp.total_len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A heap copy of exactly the input: ASan sees a read past its end. */
	char *buf;

	if (!size)
		return 0;
	buf = malloc(size - 1 + 1);
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1)
		responses(buf, size - 1);
	else
		requests(buf, size - 1);
	free(buf);
	return 0;
}
