#include "hw/serial.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB 0x80
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10

int serial_init(struct serial *s, int out_fd, unsigned irq,
		void (*set_irq)(void *ctx, unsigned irq, int level), void *ctx)
{
	memset(s, 0, sizeof(*s));
	s->out_fd = out_fd;
	s->irq = irq;
	s->set_irq = set_irq;
	s->ctx = ctx;
	s->mcr = 0x08; /* OUT2 */
	return pthread_mutex_init(&s->lock, NULL) ? -1 : 0;
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

static uint8_t iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDI) && s->rx_len)
		return fifo | IIR_RDI;
	if ((s->ier & IER_THRI) && s->thr_int)
		return fifo | IIR_THRI;
	return fifo | IIR_NONE;
}

static void update_irq(struct serial *s)
{
	s->set_irq(s->ctx, s->irq, !(iir(s) & IIR_NONE));
}

static void rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_len < SERIAL_RX_FIFO) {
		s->rx[(s->rx_head + s->rx_len) % SERIAL_RX_FIFO] = c;
		s->rx_len++;
	}
}

static void transmit(struct serial *s, uint8_t c)
{
	if (s->mcr & MCR_LOOP) {
		rx_push(s, c);
		return;
	}
	s->wrote = true;
	/* A closed or full console must not stall the guest: drop on error. */
	while (write(s->out_fd, &c, 1) < 0 && errno == EINTR)
		;
}

static uint8_t modem_status(const struct serial *s)
{
	uint8_t m = 0;

	if (!(s->mcr & MCR_LOOP))
		return 0xb0; /* DCD, DSR, CTS */
	/* Loopback wires RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD. */
	if (s->mcr & 0x02)
		m |= 0x10;
	if (s->mcr & 0x01)
		m |= 0x20;
	if (s->mcr & 0x04)
		m |= 0x40;
	if (s->mcr & 0x08)
		m |= 0x80;
	return m;
}

static void reg_write(struct serial *s, unsigned off, uint8_t v)
{
	if ((s->lcr & LCR_DLAB) && off <= IER) {
		if (off == RBR_THR)
			s->dll = v;
		else
			s->dlm = v;
		return;
	}
	switch (off) {
	case RBR_THR:
		transmit(s, v);
		s->thr_int = true;
		break;
	case IER:
		if (!(s->ier & IER_THRI) && (v & IER_THRI))
			s->thr_int = true;
		s->ier = v & 0x0f;
		break;
	case IIR_FCR:
		s->fcr = v & 0xc9;
		if (v & FCR_CLEAR_RX)
			s->rx_len = 0;
		break;
	case LCR:
		s->lcr = v;
		break;
	case MCR:
		s->mcr = v & 0x1f;
		break;
	case SCR:
		s->scr = v;
		break;
	default:
		break;
	}
}

static uint8_t reg_read(struct serial *s, unsigned off)
{
	uint8_t v;

	if ((s->lcr & LCR_DLAB) && off <= IER)
		return off == RBR_THR ? s->dll : s->dlm;
	switch (off) {
	case RBR_THR:
		if (!s->rx_len)
			return 0;
		v = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
		s->rx_len--;
		return v;
	case IER:
		return s->ier;
	case IIR_FCR:
		v = iir(s);
		/* Reading IIR acknowledges a transmitter-empty interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			s->thr_int = false;
		return v;
	case LCR:
		return s->lcr;
	case MCR:
		return s->mcr;
	case LSR:
		return LSR_THRE | LSR_TEMT | (s->rx_len ? LSR_DR : 0);
	case MSR:
		return modem_status(s);
	default:
		return s->scr;
	}
}

void serial_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write)
{
	struct serial *s = opaque;
	unsigned off = (unsigned)(port - SERIAL_COM1_PORT) & 7;

	pthread_mutex_lock(&s->lock);
	if (write) {
		reg_write(s, off, data[0]);
	} else {
		memset(data, 0, size);
		data[0] = reg_read(s, off);
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	while (n < len && s->rx_len < SERIAL_RX_FIFO)
		rx_push(s, buf[n++]);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_rx_space(struct serial *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = SERIAL_RX_FIFO - s->rx_len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

bool serial_has_output(struct serial *s)
{
	bool w;

	pthread_mutex_lock(&s->lock);
	w = s->wrote;
	pthread_mutex_unlock(&s->lock);
	return w;
}

static const struct snap_field serial_fields[] = {
	SNAP_FIELD(struct serial, ier),	    SNAP_FIELD(struct serial, lcr),	SNAP_FIELD(struct serial, mcr),
	SNAP_FIELD(struct serial, lsr_err), SNAP_FIELD(struct serial, scr),	SNAP_FIELD(struct serial, dll),
	SNAP_FIELD(struct serial, dlm),	    SNAP_FIELD(struct serial, fcr),	SNAP_FLAG(struct serial, thr_int),
	SNAP_ARRAY(struct serial, rx),	    SNAP_FIELD(struct serial, rx_head), SNAP_FIELD(struct serial, rx_len),
	SNAP_FLAG(struct serial, wrote),
};

static bool serial_valid(const void *copy)
{
	const struct serial *s = copy;

	return s->rx_head < SERIAL_RX_FIFO && s->rx_len <= SERIAL_RX_FIFO;
}

int serial_save(void *dev, struct snap_writer *w)
{
	struct serial *s = dev;

	pthread_mutex_lock(&s->lock);
	snap_put_fields(w, s, serial_fields, SNAP_NFIELDS(serial_fields));
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int serial_load(void *dev, struct snap_reader *r)
{
	struct serial *s = dev;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = snap_load_fields(r, s, sizeof(*s), serial_fields, SNAP_NFIELDS(serial_fields), serial_valid);
	if (!rc)
		update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return rc;
}
