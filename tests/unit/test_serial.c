/* 16550A UART: registers as the guest's driver sees them, output into a
 * pipe, the interrupt line into a recorder. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw/serial.h"

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define LCR_DLAB 0x80
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10

struct uart {
	struct serial s;
	int rd, wr;     /* pipe: the UART writes wr, the test reads rd */
	int irq_level;  /* last level given to set_irq, -1 if never called */
	unsigned irq;   /* irq number given with it */
};

static void record_irq(void *ctx, unsigned irq, int level)
{
	struct uart *u = ctx;

	u->irq = irq;
	u->irq_level = level;
}

static int setup(void **state)
{
	struct uart *u = calloc(1, sizeof(*u));
	int p[2];

	if (!u || pipe2(p, O_NONBLOCK))
		return -1;
	u->rd = p[0];
	u->wr = p[1];
	u->irq_level = -1;
	if (serial_init(&u->s, u->wr, SERIAL_COM1_IRQ, record_irq, u))
		return -1;
	*state = u;
	return 0;
}

static int teardown(void **state)
{
	struct uart *u = *state;

	serial_destroy(&u->s);
	close(u->rd);
	close(u->wr);
	free(u);
	return 0;
}

static void out(struct uart *u, unsigned reg, uint8_t v)
{
	serial_io(&u->s, SERIAL_COM1_PORT + reg, &v, 1, true);
}

static uint8_t in(struct uart *u, unsigned reg)
{
	uint8_t v = 0x5a;

	serial_io(&u->s, SERIAL_COM1_PORT + reg, &v, 1, false);
	return v;
}

/* Everything written to the pipe so far (up to cap bytes); returns the count. */
static size_t drain(struct uart *u, uint8_t *buf, size_t cap)
{
	ssize_t n = read(u->rd, buf, cap);

	return n < 0 ? 0 : (size_t)n;
}

static void receive(struct uart *u, const char *s)
{
	assert_int_equal(serial_receive(&u->s, (const uint8_t *)s, strlen(s)), strlen(s));
}

static void test_reset_state(void **state)
{
	struct uart *u = *state;

	assert_int_equal(in(u, LSR), LSR_THRE | LSR_TEMT);
	assert_int_equal(in(u, IIR) & 0x0f, IIR_NO_INT);
	assert_int_equal(in(u, IER), 0);
	assert_int_equal(in(u, RBR), 0); /* empty FIFO */
	assert_int_equal(u->irq_level, 0);
	assert_false(serial_has_output(&u->s));
	assert_int_equal(serial_rx_space(&u->s), SERIAL_RX_FIFO);
}

static void test_transmit(void **state)
{
	struct uart *u = *state;
	uint8_t buf[8];

	out(u, THR, 'h');
	out(u, THR, 'i');
	assert_int_equal(drain(u, buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "hi", 2);
	assert_true(serial_has_output(&u->s));
	/* Transmission is instant: the holding register is empty again. */
	assert_int_equal(in(u, LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
}

static void test_divisor_latch(void **state)
{
	struct uart *u = *state;
	uint8_t buf[4];

	out(u, LCR, LCR_DLAB | 0x03);
	out(u, DLL, 0x0c); /* 9600 baud */
	out(u, DLM, IER_THRI); /* would raise an interrupt if it reached IER */
	assert_int_equal(in(u, DLL), 0x0c);
	assert_int_equal(in(u, DLM), IER_THRI);
	assert_int_equal(in(u, LCR), LCR_DLAB | 0x03);
	out(u, LCR, 0x03);
	/* The latch writes neither transmitted nor enabled anything. */
	assert_int_equal(drain(u, buf, sizeof(buf)), 0);
	assert_false(serial_has_output(&u->s));
	assert_int_equal(in(u, IER), 0);
	assert_int_equal(u->irq_level, 0);
	/* And the latch keeps its value behind the normal registers. */
	out(u, LCR, LCR_DLAB | 0x03);
	assert_int_equal(in(u, DLL), 0x0c);
}

static void test_thr_empty_interrupt(void **state)
{
	struct uart *u = *state;

	out(u, IER, IER_THRI);
	assert_int_equal(u->irq, SERIAL_COM1_IRQ);
	assert_int_equal(u->irq_level, 1);
	/* Reading IIR reports and acknowledges it. */
	assert_int_equal(in(u, IIR) & 0x0f, IIR_THRI);
	assert_int_equal(u->irq_level, 0);
	assert_int_equal(in(u, IIR) & 0x0f, IIR_NO_INT);
	/* Each transmitted byte empties the holding register again. */
	out(u, THR, 'x');
	assert_int_equal(u->irq_level, 1);
	assert_int_equal(in(u, IIR) & 0x0f, IIR_THRI);
	assert_int_equal(u->irq_level, 0);
	/* Disabling the interrupt lowers the line. */
	out(u, THR, 'y');
	assert_int_equal(u->irq_level, 1);
	out(u, IER, 0);
	assert_int_equal(u->irq_level, 0);
}

static void test_receive(void **state)
{
	struct uart *u = *state;

	out(u, IER, IER_RDI);
	assert_int_equal(u->irq_level, 0);
	receive(u, "ok\r");
	assert_int_equal(u->irq_level, 1);
	assert_int_equal(in(u, LSR) & LSR_DR, LSR_DR);
	assert_int_equal(in(u, IIR) & 0x0f, IIR_RDI);
	assert_int_equal(serial_rx_space(&u->s), SERIAL_RX_FIFO - 3);
	assert_int_equal(in(u, RBR), 'o');
	assert_int_equal(in(u, RBR), 'k');
	assert_int_equal(u->irq_level, 1);
	assert_int_equal(in(u, RBR), '\r');
	assert_int_equal(u->irq_level, 0);
	assert_int_equal(in(u, LSR) & LSR_DR, 0);
	assert_int_equal(in(u, IIR) & 0x0f, IIR_NO_INT);
}

static void test_receive_without_interrupt(void **state)
{
	struct uart *u = *state;

	receive(u, "a");
	assert_int_equal(u->irq_level, 0); /* IER_RDI off: polled mode */
	assert_int_equal(in(u, LSR) & LSR_DR, LSR_DR);
	assert_int_equal(in(u, RBR), 'a');
}

static void test_rx_before_thr_interrupt(void **state)
{
	struct uart *u = *state;

	out(u, IER, IER_RDI | IER_THRI);
	receive(u, "z");
	/* Received data has priority and is not cleared by reading IIR. */
	assert_int_equal(in(u, IIR) & 0x0f, IIR_RDI);
	assert_int_equal(in(u, IIR) & 0x0f, IIR_RDI);
	assert_int_equal(in(u, RBR), 'z');
	assert_int_equal(in(u, IIR) & 0x0f, IIR_THRI);
}

static void test_fifo_full(void **state)
{
	struct uart *u = *state;
	uint8_t *buf = malloc(SERIAL_RX_FIFO + 10);

	assert_non_null(buf);
	for (size_t i = 0; i < SERIAL_RX_FIFO + 10; i++)
		buf[i] = (uint8_t)i;
	/* Start mid-ring so that filling it wraps around the end. */
	receive(u, "abc");
	assert_int_equal(in(u, RBR), 'a');
	assert_int_equal(in(u, RBR), 'b');
	assert_int_equal(in(u, RBR), 'c');
	assert_int_equal(serial_receive(&u->s, buf, 100), 100);
	assert_int_equal(serial_receive(&u->s, buf + 100, SERIAL_RX_FIFO), SERIAL_RX_FIFO - 100);
	assert_int_equal(serial_rx_space(&u->s), 0);
	assert_int_equal(serial_receive(&u->s, buf, 1), 0);
	/* Nothing was overwritten: the FIFO gives back exactly what fit. */
	for (size_t i = 0; i < SERIAL_RX_FIFO; i++)
		if (in(u, RBR) != (uint8_t)i)
			fail_msg("byte %zu of a full FIFO is wrong", i);
	assert_int_equal(in(u, LSR) & LSR_DR, 0);
	free(buf);
}

static void test_loopback(void **state)
{
	struct uart *u = *state;
	uint8_t buf[4];

	out(u, MCR, MCR_LOOP | 0x0f);
	out(u, THR, 0x55);
	assert_int_equal(drain(u, buf, sizeof(buf)), 0);
	assert_false(serial_has_output(&u->s));
	assert_int_equal(in(u, LSR) & LSR_DR, LSR_DR);
	assert_int_equal(in(u, RBR), 0x55);
	/* MSR: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD. */
	assert_int_equal(in(u, MSR), 0xf0);
	out(u, MCR, MCR_LOOP | 0x01); /* DTR */
	assert_int_equal(in(u, MSR), 0x20);
	out(u, MCR, MCR_LOOP | 0x02); /* RTS */
	assert_int_equal(in(u, MSR), 0x10);
	out(u, MCR, MCR_LOOP | 0x04); /* OUT1 */
	assert_int_equal(in(u, MSR), 0x40);
	out(u, MCR, MCR_LOOP | 0x08); /* OUT2 */
	assert_int_equal(in(u, MSR), 0x80);
	/* Out of loopback: carrier, DSR and CTS are up; bytes reach the pipe. */
	out(u, MCR, 0x0b);
	assert_int_equal(in(u, MSR), 0xb0);
	out(u, THR, 0x66);
	assert_int_equal(drain(u, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 0x66);
}

static void test_fcr_clears_rx(void **state)
{
	struct uart *u = *state;

	out(u, IER, IER_RDI);
	receive(u, "stale");
	assert_int_equal(u->irq_level, 1);
	out(u, FCR, 0x01); /* enable FIFOs only: data stays */
	assert_int_equal(in(u, LSR) & LSR_DR, LSR_DR);
	assert_int_equal(in(u, IIR) & 0xc0, 0xc0);
	out(u, FCR, 0x03); /* and clear the receive FIFO */
	assert_int_equal(in(u, LSR) & LSR_DR, 0);
	assert_int_equal(u->irq_level, 0);
	assert_int_equal(serial_rx_space(&u->s), SERIAL_RX_FIFO);
	receive(u, "new");
	assert_int_equal(in(u, RBR), 'n');
}

static void test_scratch_and_wide_reads(void **state)
{
	struct uart *u = *state;
	uint8_t wide[4] = { 0xff, 0xff, 0xff, 0xff };

	out(u, SCR, 0xa5);
	assert_int_equal(in(u, SCR), 0xa5);
	serial_io(&u->s, SERIAL_COM1_PORT + LSR, wide, sizeof(wide), false);
	assert_int_equal(wide[0], LSR_THRE | LSR_TEMT);
	assert_int_equal(wide[1] | wide[2] | wide[3], 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_reset_state),
		T(test_transmit),
		T(test_divisor_latch),
		T(test_thr_empty_interrupt),
		T(test_receive),
		T(test_receive_without_interrupt),
		T(test_rx_before_thr_interrupt),
		T(test_fifo_full),
		T(test_loopback),
		T(test_fcr_clears_rx),
		T(test_scratch_and_wide_reads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
