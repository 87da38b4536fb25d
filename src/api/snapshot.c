/* Firecracker's snapshot resources: the request bodies and the rules of
 * when each may be used; the work is the VMM's (fc_ops). */
#include <string.h>

#include "api/firecracker.h"
#include "api/json.h"
#include "block/layer.h"
#include "net/netopt.h"
#include "util/err.h"

static int create(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	json_t *type, *state, *mem, *version, *layer;
	int rc = json_fields(body, "snapshot create",
			     (const struct jfield[]){ { "snapshot_type", JF_STRING, false, &type },
						      { "snapshot_path", JF_STRING, true, &state },
						      { "mem_file_path", JF_STRING, true, &mem },
						      { "version", JF_STRING, false, &version },
						      { "disk_layer", JF_STRING, false, &layer } },
			     5, err, errlen);

	if (rc)
		return rc;
	/* cellvm's own field: IMG.NAME must stay one file name. */
	if (layer && !layer_name_ok(json_string_value(layer)))
		return cv_fmt(err, errlen, "invalid disk_layer '%.64s': 1 to 64 letters, digits, '.', '_' or '-', "
					   "not starting with '.'", json_string_value(layer));
	if (type && strcmp(json_string_value(type), "Full") && strcmp(json_string_value(type), "Diff"))
		return cv_fmt(err, errlen, "invalid snapshot_type '%.32s': Full or Diff", json_string_value(type));
	if (a->state != FC_PAUSED)
		return cv_fmt(err, errlen, "Create snapshot error: the microVM must be paused (it is %s)",
			      a->state == FC_NOT_STARTED ? "not started" : "running");
	if (!*json_string_value(state) || !*json_string_value(mem))
		return cv_fmt(err, errlen, "snapshot_path and mem_file_path must not be empty");
	return a->ops->snapshot_create(a->ctx, json_string_value(state), json_string_value(mem),
				       type && !strcmp(json_string_value(type), "Diff"),
				       layer ? json_string_value(layer) : NULL, err, errlen);
}

static int overrides(json_t *list, struct fc_snapshot_load *l, char *err, size_t errlen)
{
	json_t *o, *id, *tap;
	size_t i;
	int rc;

	json_array_foreach(list, i, o)
	{
		if ((rc = json_fields(o, "network override",
				      (const struct jfield[]){ { "iface_id", JF_STRING, true, &id },
							       { "host_dev_name", JF_STRING, true, &tap } },
				      2, err, errlen)) ||
		    (rc = netopt_override(l->overrides, &l->noverrides, json_string_value(id), json_string_value(tap),
					  err, errlen)))
			return rc;
	}
	return 0;
}

static int load(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	json_t *state, *mem_file, *backend, *diff, *track, *resume, *nets, *btype = NULL, *bpath = NULL;
	struct fc_snapshot_load l = { 0 };
	int rc = json_fields(body, "snapshot load",
			     (const struct jfield[]){ { "snapshot_path", JF_STRING, true, &state },
						      { "mem_file_path", JF_STRING, false, &mem_file },
						      { "mem_backend", JF_OBJECT, false, &backend },
						      { "enable_diff_snapshots", JF_BOOL, false, &diff },
						      { "track_dirty_pages", JF_BOOL, false, &track },
						      { "resume_vm", JF_BOOL, false, &resume },
						      { "network_overrides", JF_ARRAY, false, &nets } },
			     7, err, errlen);

	if (rc || (rc = overrides(nets, &l, err, errlen)))
		return rc;
	if (!mem_file == !backend)
		return cv_fmt(err, errlen, "give exactly one of mem_backend and mem_file_path");
	if (backend && (rc = json_fields(backend, "mem_backend",
					 (const struct jfield[]){ { "backend_type", JF_STRING, true, &btype },
								  { "backend_path", JF_STRING, true, &bpath } },
					 2, err, errlen)))
		return rc;
	if (btype && strcmp(json_string_value(btype), "File"))
		return cv_fmt(err, errlen, "invalid backend_type '%.32s': this cellvm loads memory from a File",
			      json_string_value(btype));
	if (a->state != FC_NOT_STARTED || a->cfg.boot_set || a->cfg.ndrives || a->cfg.nnics)
		return cv_fmt(err, errlen, "Loading a microVM snapshot not allowed after configuring boot-specific "
					   "resources.");
	l.state_path = json_string_value(state);
	l.mem_path = json_string_value(bpath ? bpath : mem_file);
	l.resume = resume && json_is_true(resume);
	/* enable_diff_snapshots is Firecracker's older name of track_dirty_pages. */
	l.track = (diff && json_is_true(diff)) || (track && json_is_true(track));
	if ((rc = a->ops->snapshot_load(a->ctx, &l, err, errlen)))
		return rc;
	a->state = l.resume ? FC_RUNNING : FC_PAUSED;
	return 0;
}

int fc_snapshot_put(struct fc_api *a, const char *op, json_t *body, char *err, size_t errlen)
{
	if (!strcmp(op, "create"))
		return create(a, body, err, errlen);
	if (!strcmp(op, "load"))
		return load(a, body, err, errlen);
	return cv_fmt(err, errlen, "Invalid request method and/or path: PUT /snapshot/%.32s.", op);
}
