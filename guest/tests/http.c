/*
 * A raw HTTP/1.1 client for the cellvm test guest (busybox wget only GETs
 * and POSTs; the MMDS's V2 token is a PUT).
 *
 *   http-req [-X METHOD] [-H 'Name: value']... [-n COUNT] ADDR PORT PATH
 *
 * Sends the request on one TCP connection and prints "HTTP-STATUS CODE",
 * then the body. With -n COUNT it sends COUNT requests one after another on
 * that connection (keep-alive), checks each answer's status, and prints
 * "HTTP-LATENCY n=COUNT avg_us=A min_us=B max_us=C" instead of the body.
 * Exit status: 0 for a 2xx answer, 1 otherwise, 2 for bad usage or I/O.
 *
 * Build: gcc -O2 -static -o http-req guest/tests/http.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char resp[1 << 20];

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* Reads one response; returns its status and points *body at the body. */
static int read_response(int fd, const char **body, size_t *blen)
{
	size_t got = 0, need = 0;
	char *hend = NULL;

	for (;;) {
		ssize_t n;

		if (hend && got >= need)
			break;
		if (got == sizeof(resp) - 1)
			return -1;
		n = read(fd, resp + got, sizeof(resp) - 1 - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
		resp[got] = 0;
		if (!hend && (hend = strstr(resp, "\r\n\r\n"))) {
			const char *cl = strcasestr(resp, "\r\nContent-Length:");

			need = (size_t)(hend + 4 - resp) + (cl && cl < hend ? strtoul(cl + 17, NULL, 10) : 0);
		}
	}
	*body = hend + 4;
	*blen = need - (size_t)(hend + 4 - resp);
	return atoi(resp + 9);
}

int main(int argc, char **argv)
{
	const char *method = "GET";
	char req[8192], headers[4096] = "";
	struct sockaddr_in sa = { .sin_family = AF_INET };
	double lo = 1e18, hi = 0, sum = 0;
	int count = 0, opt, fd, status = 0;
	const char *body = NULL;
	size_t blen = 0, hl = 0;
	int len;

	while ((opt = getopt(argc, argv, "X:H:n:")) != -1) {
		if (opt == 'X')
			method = optarg;
		else if (opt == 'H')
			hl += (size_t)snprintf(headers + hl, sizeof(headers) - hl, "%s\r\n", optarg);
		else if (opt == 'n')
			count = atoi(optarg);
		else
			return 2;
		if (hl >= sizeof(headers))
			return 2;
	}
	if (argc - optind != 3 || inet_pton(AF_INET, argv[optind], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: http-req [-X METHOD] [-H HEADER]... [-n COUNT] ADDR PORT PATH\n");
		return 2;
	}
	sa.sin_port = htons((unsigned short)atoi(argv[optind + 1]));
	len = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", method, argv[optind + 2],
		       argv[optind], headers);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("http-req: connect");
		return 2;
	}
	for (int i = 0; i < (count ? count : 1); i++) {
		double t0 = now_us(), dt;

		if (write(fd, req, (size_t)len) != len || (status = read_response(fd, &body, &blen)) < 0) {
			fprintf(stderr, "http-req: the connection broke\n");
			return 2;
		}
		dt = now_us() - t0;
		sum += dt;
		lo = dt < lo ? dt : lo;
		hi = dt > hi ? dt : hi;
		if (status / 100 != 2)
			break;
	}
	printf("HTTP-STATUS %d\n", status);
	if (count)
		printf("HTTP-LATENCY n=%d avg_us=%.0f min_us=%.0f max_us=%.0f\n", count, sum / count, lo, hi);
	else
		printf("%.*s\n", (int)blen, body);
	close(fd);
	return status / 100 == 2 ? 0 : 1;
}
