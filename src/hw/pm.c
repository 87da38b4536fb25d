#include "hw/pm.h"

#include <string.h>

#define PM1_CNT_SCI_EN 0x0001
#define PM1_CNT_SLP_EN 0x2000
#define RESET_CNT_RST_CPU 0x04

void pm_init(struct pm *pm, void (*event)(void *ctx, enum power_event ev), void *ctx)
{
	memset(pm, 0, sizeof(*pm));
	/* No SMI handshake: the platform is in ACPI mode from the start. */
	pm->pm1_cnt = PM1_CNT_SCI_EN;
	pm->event = event;
	pm->ctx = ctx;
}

static uint32_t load(const uint8_t *d, unsigned size)
{
	uint32_t v = 0;

	memcpy(&v, d, size > 4 ? 4 : size);
	return v;
}

static void store(uint8_t *d, unsigned size, uint32_t v)
{
	memset(d, 0, size);
	memcpy(d, &v, size > 4 ? 4 : size);
}

/* A 16-bit register accessed bytewise or as a word at byte offset `off`. */
static void reg16(uint16_t *reg, unsigned off, uint8_t *data, unsigned size, bool write, bool w1c)
{
	uint32_t shift = off * 8, mask = (size >= 2 ? 0xffffu : 0xffu) << shift;

	if (!write) {
		store(data, size, (*reg & mask) >> shift);
		return;
	}
	if (w1c)
		*reg &= (uint16_t)~((load(data, size) << shift) & mask);
	else
		*reg = (uint16_t)((*reg & ~mask) | ((load(data, size) << shift) & mask));
}

static void update_sci(struct pm *pm)
{
	if (pm->set_irq)
		pm->set_irq(pm->irq_ctx, PM_SCI_IRQ, (pm->pm1_sts & pm->pm1_en) || (pm->gpe0_sts & pm->gpe0_en));
}

void pm_set_sci(struct pm *pm, void (*set_irq)(void *ctx, unsigned irq, int level), void *ctx)
{
	pm->set_irq = set_irq;
	pm->irq_ctx = ctx;
}

void pm_gpe_raise(struct pm *pm, unsigned gpe)
{
	pm->gpe0_sts |= (uint16_t)(1u << (gpe & 15));
	update_sci(pm);
}

void pm_io(void *opaque, uint64_t port, uint8_t *data, unsigned size, bool write)
{
	struct pm *pm = opaque;

	if (port >= PM_PORT_GPE0 && port < PM_PORT_GPE0 + 2) {
		reg16(&pm->gpe0_sts, port - PM_PORT_GPE0, data, size, write, true);
		update_sci(pm);
	} else if (port >= PM_PORT_GPE0 + 2 && port < PM_PORT_GPE0 + 4) {
		reg16(&pm->gpe0_en, port - PM_PORT_GPE0 - 2, data, size, write, false);
		update_sci(pm);
	} else if (port >= PM_PORT_PM1_EVT && port < PM_PORT_PM1_EVT + 2) {
		reg16(&pm->pm1_sts, port - PM_PORT_PM1_EVT, data, size, write, true);
	} else if (port >= PM_PORT_PM1_EVT + 2 && port < PM_PORT_PM1_EVT + 4) {
		reg16(&pm->pm1_en, port - PM_PORT_PM1_EVT - 2, data, size, write, false);
	} else if (port >= PM_PORT_PM1_CNT && port < PM_PORT_PM1_CNT + PM_PM1_CNT_LEN) {
		reg16(&pm->pm1_cnt, port - PM_PORT_PM1_CNT, data, size, write, false);
		if (write && (pm->pm1_cnt & PM1_CNT_SLP_EN)) {
			unsigned type = (pm->pm1_cnt >> 10) & 7;

			pm->pm1_cnt = (uint16_t)(pm->pm1_cnt & ~PM1_CNT_SLP_EN) | PM1_CNT_SCI_EN;
			/* Only S5 is advertised in the DSDT; other states are refused
			 * by leaving the guest running. */
			if (type == PM_S5_TYPE)
				pm->event(pm->ctx, POWER_OFF);
		}
		pm->pm1_cnt |= PM1_CNT_SCI_EN;
	} else if (port == PM_PORT_RESET) {
		if (!write) {
			store(data, size, pm->reset_cnt);
			return;
		}
		pm->reset_cnt = data[0] & ~RESET_CNT_RST_CPU;
		if (data[0] & RESET_CNT_RST_CPU)
			pm->event(pm->ctx, POWER_RESET);
	} else if (port == PM_PORT_POWEROFF) {
		if (write)
			pm->event(pm->ctx, POWER_OFF);
		else
			store(data, size, 0xffffffffu);
	}
}

static const struct snap_field pm_fields[] = {
	SNAP_FIELD(struct pm, pm1_sts),
	SNAP_FIELD(struct pm, pm1_en),
	SNAP_FIELD(struct pm, pm1_cnt),
	SNAP_FIELD(struct pm, gpe0_sts),
	SNAP_FIELD(struct pm, gpe0_en),
	SNAP_FIELD(struct pm, reset_cnt),
};

int pm_save(void *dev, struct snap_writer *w)
{
	snap_put_fields(w, dev, pm_fields, SNAP_NFIELDS(pm_fields));
	return 0;
}

int pm_load(void *dev, struct snap_reader *r)
{
	int rc = snap_load_fields(r, dev, sizeof(struct pm), pm_fields, SNAP_NFIELDS(pm_fields), NULL);

	if (!rc)
		update_sci(dev);
	return rc;
}
