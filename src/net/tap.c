#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/err.h"

static bool exists(const char *name)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	return access(path, F_OK) == 0;
}

static int bring_up(const char *name)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (s < 0)
		return -1;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		rc = -1;
	ifr.ifr_flags |= IFF_UP;
	if (!rc && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		rc = -1;
	close(s);
	return rc;
}

int tap_open(const char *name, bool *created)
{
	struct ifreq ifr = { 0 };
	int hdr = TAP_VNET_HDR_LEN, fd;

	if (!*name || strlen(name) >= IFNAMSIZ) {
		cv_err("invalid tap name '%s' (1 to %d characters)", name, IFNAMSIZ - 1);
		return CV_EINPUT;
	}
	*created = !exists(name);
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		cv_err("cannot open /dev/net/tun for tap '%s': %s", name, strerror(errno));
		return CV_EINPUT;
	}
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;

		cv_err("cannot %s tap '%s': %s%s", *created ? "create" : "attach to", name, strerror(e),
		       e == EPERM ? " (needs CAP_NET_ADMIN, or a tap owned by this user)" : "");
		close(fd);
		return CV_EINPUT;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || tap_set_offload(fd, 0)) {
		cv_err("tap '%s' does not take virtio-net headers: %s", name, strerror(errno));
		close(fd);
		return CV_EFAIL;
	}
	if (*created && bring_up(name) < 0)
		cv_warn("could not bring tap '%s' up: %s", name, strerror(errno));
	return fd;
}

int tap_set_offload(int fd, unsigned flags)
{
	return ioctl(fd, TUNSETOFFLOAD, flags) < 0 ? CV_EFAIL : 0;
}
