/* The MMDS's HTTP answers to the guest, as Firecracker gives them: V1
 * GETs with or without a token, V2 GETs only with a valid one, PUT
 * /latest/api/token for a session token, JSON or IMDS text by the Accept
 * header (or always IMDS with imds_compat), and Firecracker's status
 * codes and plain-text messages for everything else. */
#ifndef CELLVM_MMDS_HTTP_H
#define CELLVM_MMDS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "mmds/store.h"
#include "vmm/config.h"

struct mmds_service {
	struct mmds_store *store;
	enum mmds_version version;
	bool imds_compat;
};

/* Answers the request http_parse_request completed from buf (now_ms:
 * the monotonic clock, for token expiry). *out is a malloc'ed HTTP
 * response. 0, or CV_EFAIL when out of memory. */
int mmds_http_answer(const struct mmds_service *svc, const char *buf, const struct http_request *req,
		     uint64_t now_ms, char **out, size_t *len);
/* The answer to a request that did not parse (the parser's status and
 * reason). */
int mmds_http_error(int status, const char *msg, char **out, size_t *len);

#endif
