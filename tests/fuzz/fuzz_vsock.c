/* libFuzzer target: what a hostile guest sends a vsock device. The input
 * is a run of packets (44-byte header, then payload bytes) from guest CID
 * 3, judged by vsock_hdr_check and fed to the Unix-socket host side, whose
 * listeners at path_1..path_4 accept and answer with a few bytes; every
 * packet the host side has for the guest is then taken. Connections are
 * reset between inputs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "virtio/vsock_pkt.h"
#include "virtio/vsock_uds.h"

#define CID 3
#define NLISTEN 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vsock_uds *m;
static int listeners[NLISTEN];
static char dir[] = "/tmp/cv-fuzz-vsock-XXXXXX", path[96];

/* Leaves no socket files behind. */
static void cleanup(void)
{
	char lpath[128];

	vsock_uds_close(m);
	for (int i = 0; i < NLISTEN; i++) {
		snprintf(lpath, sizeof(lpath), "%s_%d", path, i + 1);
		unlink(lpath);
	}
	rmdir(dir);
}

static void init(void)
{
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/v", dir);
	if (vsock_uds_open(path, CID, &m))
		abort();
	for (int i = 0; i < NLISTEN; i++) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };

		snprintf(a.sun_path, sizeof(a.sun_path), "%s_%d", path, i + 1);
		listeners[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (bind(listeners[i], (struct sockaddr *)&a, sizeof(a)) || listen(listeners[i], 64))
			abort();
	}
	atexit(cleanup);
}

/* The host's end of the guest's connections: a few bytes each, then closed. */
static void serve_host(void)
{
	for (int i = 0; i < NLISTEN; i++)
		for (int fd; (fd = accept(listeners[i], NULL, NULL)) >= 0;) {
			send(fd, "host bytes", 10, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
		}
}

static void drain(void)
{
	static uint8_t buf[4096];
	struct iovec v = { buf, sizeof(buf) };
	struct vsock_hdr h;

	vsock_uds_poll(m);
	for (int i = 0; i < 10000 && vsock_uds_has_rx(m) && vsock_uds_to_guest(m, &h, &v, 1, sizeof(buf)); i++)
		if (h.len > sizeof(buf) || h.src_cid != VSOCK_HOST_CID || h.dst_cid != CID)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!m)
		init();
	while (size >= VSOCK_HDR_SIZE) {
		struct vsock_hdr h;
		struct iovec v;

		vsock_hdr_decode(data, &h);
		data += VSOCK_HDR_SIZE;
		size -= VSOCK_HDR_SIZE;
		/* The fuzzer picks ports; keep most packets addressed right. */
		h.src_cid = h.src_cid % 8 ? h.src_cid : CID;
		h.dst_cid = h.dst_cid % 8 ? h.dst_cid : VSOCK_HOST_CID;
		switch (vsock_hdr_check(&h, CID, size)) {
		case VSOCK_HDR_OK:
			v = (struct iovec){ (void *)data, h.len };
			vsock_uds_from_guest(m, &h, &v, 1);
			data += h.len;
			size -= h.len;
			break;
		case VSOCK_HDR_RESET:
			vsock_uds_refuse(m, &h);
			break;
		case VSOCK_HDR_DROP:
			break;
		}
		serve_host();
		drain();
	}
	vsock_uds_reset(m);
	return 0;
}
