/* An HTTP/1.1 server on a Unix socket, served by the main thread's event
 * loop: a few concurrent connections, keep-alive and pipelined requests
 * answered in order, 100-continue, and bounded buffers (a client that does
 * not read its answers stops being read). The handler sees whole requests. */
#ifndef CELLVM_API_SERVER_H
#define CELLVM_API_SERVER_H

#include <stddef.h>

#include "api/http.h"
#include "vmm/event_loop.h"

#define API_MAX_CONNS 8

/* Fills *status and a malloc'ed *body (NULL for none). */
typedef void (*api_handler_fn)(void *ctx, const struct http_request *req, int *status, char **body, size_t *len);

struct api_server;

/* Listens on path. A leftover socket nobody listens on is replaced; one in
 * use, or another kind of file, is an error (CV_EINPUT). */
int api_server_open(struct api_server **out, const char *path, struct event_loop *loop, api_handler_fn fn,
		    void *ctx);
/* Firecracker's --http-api-max-payload-size: the largest body taken from
 * connections made from now on (HTTP_MAX_BODY until set). */
void api_server_set_max_body(struct api_server *s, size_t max);
/* Closes every connection and removes the socket file. */
void api_server_close(struct api_server *s);

/* Binds a listening Unix stream socket at path, replacing a stale one
 * (shared with the console socket). Returns the fd or a CV_E* code. */
int unix_listen(const char *path, const char *what);

#endif
