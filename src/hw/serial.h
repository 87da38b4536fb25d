/* 16550A UART (ttyS0 at 0x3f8, IRQ 4). Transmit is immediate; received
 * bytes wait in a FIFO. Thread-safe: vCPU threads and the console feed it. */
#ifndef CELLVM_HW_SERIAL_H
#define CELLVM_HW_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot/fields.h"

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_RX_FIFO 1024

struct serial {
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, lsr_err, scr, dll, dlm, fcr;
	bool thr_int; /* transmitter-empty interrupt pending */
	uint8_t rx[SERIAL_RX_FIFO];
	size_t rx_head, rx_len;
	bool wrote;   /* guest has transmitted at least one byte */
	/* Guest output is written to out_fd. */
	int out_fd;
	unsigned irq;
	void (*set_irq)(void *ctx, unsigned irq, int level);
	void *ctx;
};

int serial_init(struct serial *s, int out_fd, unsigned irq,
		void (*set_irq)(void *ctx, unsigned irq, int level), void *ctx);
void serial_destroy(struct serial *s);

/* Port I/O handler for the 8 registers; `port` is absolute. */
void serial_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write);

/* Queues bytes for the guest; returns how many fit in the FIFO. */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);

/* Free space in the receive FIFO. */
size_t serial_rx_space(struct serial *s);

bool serial_has_output(struct serial *s);

/* Guest-visible state (registers, receive FIFO) for snapshots. */
int serial_save(void *dev, struct snap_writer *w);
int serial_load(void *dev, struct snap_reader *r);

#endif
