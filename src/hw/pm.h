/* Platform power control: the ACPI PM1 event/control block (S5 = power
 * off), the reset control register at 0xcf9, and port 0xf4, which the PVM
 * guest kernel writes to power off. */
#ifndef CELLVM_HW_PM_H
#define CELLVM_HW_PM_H

#include <stdbool.h>
#include <stdint.h>

#include "snapshot/fields.h"

#define PM_PORT_PM1_EVT 0x600
#define PM_PM1_EVT_LEN 4
#define PM_PORT_PM1_CNT 0x604
#define PM_PM1_CNT_LEN 2
#define PM_PORT_GPE0 0x620
#define PM_GPE0_LEN 4 /* 16 status bits, then 16 enable bits */
#define PM_PORT_RESET 0xcf9
#define PM_RESET_VALUE 0x06
#define PM_PORT_POWEROFF 0xf4
#define PM_SCI_IRQ 9
#define PM_S5_TYPE 5

enum power_event { POWER_OFF, POWER_RESET };

struct pm {
	uint16_t pm1_sts, pm1_en, pm1_cnt;
	uint16_t gpe0_sts, gpe0_en;
	uint8_t reset_cnt;
	void (*event)(void *ctx, enum power_event ev);
	void *ctx;
	/* The SCI line (IRQ PM_SCI_IRQ): high while an enabled event is
	 * pending. NULL: no SCI wired (unit tests). */
	void (*set_irq)(void *ctx, unsigned irq, int level);
	void *irq_ctx;
};

void pm_init(struct pm *pm, void (*event)(void *ctx, enum power_event ev), void *ctx);

/* Port I/O handlers; `port` is the absolute port number. */
void pm_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write);

/* Wires the SCI. */
void pm_set_sci(struct pm *pm, void (*set_irq)(void *ctx, unsigned irq, int level), void *ctx);
/* Raises general-purpose event `gpe` (0..15): the guest's _Exx method for
 * it runs once it has enabled the event. */
void pm_gpe_raise(struct pm *pm, unsigned gpe);

/* PM1 registers, for snapshots. */
int pm_save(void *dev, struct snap_writer *w);
int pm_load(void *dev, struct snap_reader *r);

#endif
