/* A service on the NIC itself (the MMDS): frames the guest sends are
 * offered to it before they reach the back-end, and the NIC asks it for
 * frames to give the guest before it reads the back-end. So it works the
 * same on every back-end. Every call is made with the NIC's lock held. */
#ifndef CELLVM_NET_INTERCEPT_H
#define CELLVM_NET_INTERCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct net_intercept;

struct net_intercept_ops {
	/* One frame from the guest (virtio-net header + frame, as a back-end
	 * gets it): true if the service took it (it goes nowhere else). */
	bool (*take)(struct net_intercept *ic, const struct iovec *iov, unsigned n);
	/* Writes a frame for the guest (header + frame) into buf: its
	 * length, or 0 when there is none. */
	size_t (*give)(struct net_intercept *ic, uint8_t *buf, size_t cap);
	void (*destroy)(struct net_intercept *ic);
};

struct net_intercept {
	const struct net_intercept_ops *ops;
	/* Set by the NIC: the service calls wake(nic), from the event loop
	 * and without the lock, when it has frames outside of take(). */
	void (*wake)(void *nic);
	void *nic;
};

#endif
