#include "vmm/state.h"

#include <stdio.h>
#include <string.h>

#include "util/err.h"

int state_register(struct state_registry *s, const char *id, uint32_t version, snap_save_fn save,
		   snap_load_fn load, void *dev, const void *cover0, const void *cover1)
{
	return state_register_versions(s, id, version, version, save, load, dev, cover0, cover1);
}

int state_register_versions(struct state_registry *s, const char *id, uint32_t min_version, uint32_t version,
			    snap_save_fn save, snap_load_fn load, void *dev, const void *cover0, const void *cover1)
{
	struct state_entry *e;

	for (unsigned i = 0; i < s->n; i++) {
		if (!strcmp(s->e[i].id, id)) {
			cv_err("state section '%s' registered twice", id);
			return CV_EFAIL;
		}
	}
	if (s->n == STATE_MAX_ENTRIES || strlen(id) >= SNAP_ID_MAX) {
		cv_err("cannot register state section '%s'", id);
		return CV_EFAIL;
	}
	e = &s->e[s->n++];
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->min_version = min_version;
	e->version = version;
	e->save = save;
	e->load = load;
	e->dev = dev;
	e->covers[0] = cover0;
	e->covers[1] = cover1;
	return 0;
}

static bool covered(const struct state_registry *s, const void *obj)
{
	for (unsigned i = 0; i < s->n; i++)
		for (unsigned k = 0; k < STATE_MAX_COVERS; k++)
			if (s->e[i].covers[k] == obj)
				return true;
	return false;
}

static int check_bus(const struct state_registry *s, const struct bus *b, const char *what)
{
	for (unsigned i = 0; i < b->n; i++) {
		if (!covered(s, b->r[i].opaque)) {
			cv_err("snapshot: the device at %s 0x%llx has no state section", what,
			       (unsigned long long)b->r[i].base);
			return CV_EFAIL;
		}
	}
	return 0;
}

int state_check_coverage(const struct state_registry *s, const struct bus *pio, const struct bus *mmio,
			 const struct pci_host *pci)
{
	if (check_bus(s, pio, "port") || check_bus(s, mmio, "address"))
		return CV_EFAIL;
	for (unsigned i = 0; pci && i < PCI_SLOTS; i++) {
		if (pci->slot[i] && !covered(s, pci->slot[i])) {
			cv_err("snapshot: the PCI device in slot %u has no state section", i);
			return CV_EFAIL;
		}
	}
	return 0;
}

int state_save_all(const struct state_registry *s, struct snap_file_writer *w)
{
	for (unsigned i = 0; i < s->n; i++) {
		struct snap_writer sec;
		int rc;

		snap_writer_init(&sec);
		rc = s->e[i].save(s->e[i].dev, &sec);
		if (!rc)
			snap_file_add(w, s->e[i].id, s->e[i].version, &sec);
		snap_writer_free(&sec);
		if (rc)
			return rc;
	}
	return 0;
}

int state_load_all(const struct state_registry *s, struct snap_file *f)
{
	for (unsigned i = 0; i < s->n; i++) {
		const struct state_entry *e = &s->e[i];
		struct snap_section *sec = snap_file_get(f, e->id);
		struct snap_reader r;
		int rc;

		if (!sec) {
			cv_err("invalid snapshot: it has no state for '%s' (saved from another VM configuration?)", e->id);
			return CV_EINPUT;
		}
		if (sec->version < e->min_version || sec->version > e->version) {
			cv_err("invalid snapshot: section '%s' is version %u; this cellvm reads version %u", e->id,
			       sec->version, e->version);
			return CV_EINPUT;
		}
		snap_reader_init(&r, sec->data, sec->len);
		r.version = sec->version;
		rc = e->load(e->dev, &r);
		if (!rc && snap_reader_ok(&r) && !snap_reader_left(&r))
			continue;
		/* A loader that refused for a reason of its own has said why. */
		if (r.bad || !rc)
			cv_err("invalid snapshot: section '%s': %s", e->id, r.bad ? r.bad : "stray bytes at its end");
		return rc ? rc : CV_EINPUT;
	}
	return 0;
}
