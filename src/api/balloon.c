/* Firecracker's balloon resources: PUT /balloon before boot; PATCH
 * /balloon, PATCH /balloon/statistics and GET /balloon/statistics after;
 * GET /balloon at any time. Messages are Firecracker's. */
#include <string.h>

#include "api/firecracker.h"
#include "api/json.h"
#include "util/err.h"
#include "virtio/balloon.h"

#define NO_DEVICE "No balloon device found."
#define TOO_LARGE "Amount of pages requested is too large."
#define NO_STATS "Statistics for the balloon device are not enabled"

/* Firecracker's names of the statistics tags (virtio 1.2, 5.5.6.3). */
static const char *const stat_names[BALLOON_NSTATS] = {
	"swap_in",	   "swap_out",	       "major_faults", "minor_faults", "free_memory",	"total_memory",
	"available_memory", "disk_caches",     "hugetlb_allocations", "hugetlb_failures", "oom_kill",
	"alloc_stall",	   "async_scan",      "direct_scan",	"async_reclaim", "direct_reclaim",
};

static int interval(json_t *v, unsigned *out, char *err, size_t errlen)
{
	uint64_t s = 0;
	int rc = v ? json_uint_range(v, "stats_polling_interval_s", 0, CV_MAX_BALLOON_STATS_S, &s, err, errlen) : 0;

	*out = (unsigned)s;
	return rc;
}

int api_put_balloon(struct api_config *c, json_t *body, char *err, size_t errlen)
{
	json_t *amount, *oom, *stats, *fpr;
	struct balloon_config b = { .on = true };
	uint64_t mib;
	int rc = json_fields(body, "balloon",
			     (const struct jfield[]){ { "amount_mib", JF_UINT, true, &amount },
						      { "deflate_on_oom", JF_BOOL, true, &oom },
						      { "stats_polling_interval_s", JF_UINT, false, &stats },
						      { "free_page_reporting", JF_BOOL, false, &fpr } },
			     4, err, errlen);

	if (rc || (rc = json_uint_range(amount, "amount_mib", 0, UINT32_MAX, &mib, err, errlen)) ||
	    (rc = interval(stats, &b.stats_s, err, errlen)))
		return rc;
	if (mib > c->mem_mib)
		return cv_fmt(err, errlen, TOO_LARGE);
	b.amount_mib = (uint32_t)mib;
	b.deflate_on_oom = json_is_true(oom);
	b.reporting = fpr && json_is_true(fpr);
	c->balloon = b;
	return 0;
}

json_t *api_balloon_json(const struct balloon_config *b)
{
	return json_pack("{s:I, s:b, s:I, s:b}", "amount_mib", (json_int_t)b->amount_mib, "deflate_on_oom",
			 b->deflate_on_oom, "stats_polling_interval_s", (json_int_t)b->stats_s, "free_page_reporting",
			 b->reporting);
}

static int patch_balloon(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	json_t *amount;
	uint64_t mib;
	int rc = json_fields(body, "balloon", (const struct jfield[]){ { "amount_mib", JF_UINT, true, &amount } }, 1,
			     err, errlen);

	if (rc || (rc = json_uint_range(amount, "amount_mib", 0, UINT32_MAX, &mib, err, errlen)))
		return rc;
	if (mib > a->cfg.mem_mib)
		return cv_fmt(err, errlen, TOO_LARGE);
	if ((rc = a->ops->balloon_update(a->ctx, (uint32_t)mib, err, errlen)))
		return rc;
	a->cfg.balloon.amount_mib = (uint32_t)mib;
	return 0;
}

static int patch_stats(struct fc_api *a, json_t *body, char *err, size_t errlen)
{
	json_t *stats;
	unsigned s;
	int rc = json_fields(body, "balloon statistics",
			     (const struct jfield[]){ { "stats_polling_interval_s", JF_UINT, true, &stats } }, 1, err,
			     errlen);

	if (rc || (rc = interval(stats, &s, err, errlen)))
		return rc;
	/* The statistics queue exists or not from boot on. */
	if (!s != !a->cfg.balloon.stats_s)
		return cv_fmt(err, errlen, "Cannot enable/disable the statistics after boot.");
	if ((rc = a->ops->balloon_interval(a->ctx, s, err, errlen)))
		return rc;
	a->cfg.balloon.stats_s = s;
	return 0;
}

int fc_balloon_modify(struct fc_api *a, bool patch, const char *sub, json_t *body, char *err, size_t errlen)
{
	bool stats = !strcmp(sub, "statistics");

	if ((*sub && !stats) || (stats && !patch))
		return cv_fmt(err, errlen, "Invalid request method and/or path: %s /balloon/%s.", patch ? "PATCH" : "PUT",
			      sub);
	if (!patch)
		return a->state != FC_NOT_STARTED ? cv_fmt(err, errlen, FC_NOT_AFTER)
						  : api_put_balloon(&a->cfg, body, err, errlen);
	if (a->state == FC_NOT_STARTED)
		return cv_fmt(err, errlen, FC_NOT_BEFORE);
	if (!a->cfg.balloon.on)
		return cv_fmt(err, errlen, NO_DEVICE);
	return stats ? patch_stats(a, body, err, errlen) : patch_balloon(a, body, err, errlen);
}

static json_t *stats_json(const struct balloon_info *i)
{
	json_t *j = json_pack("{s:I, s:I, s:I, s:I}", "target_pages", (json_int_t)i->target_pages, "actual_pages",
			      (json_int_t)i->actual_pages, "target_mib", (json_int_t)(i->target_pages >> 8),
			      "actual_mib", (json_int_t)(i->actual_pages >> 8));

	for (unsigned t = 0; j && t < BALLOON_NSTATS; t++)
		if (i->stats_mask & (1u << t))
			json_object_set_new(j, stat_names[t], json_integer((json_int_t)i->stats[t]));
	return j;
}

json_t *fc_balloon_get(struct fc_api *a, const char *sub, char *err, size_t errlen)
{
	struct balloon_info info;

	if (*sub && strcmp(sub, "statistics")) {
		cv_fmt(err, errlen, "Invalid request method and/or path: GET /balloon/%s.", sub);
		return NULL;
	}
	if (!a->cfg.balloon.on) {
		cv_fmt(err, errlen, NO_DEVICE);
		return NULL;
	}
	if (!*sub)
		return api_balloon_json(&a->cfg.balloon);
	if (a->state == FC_NOT_STARTED) {
		cv_fmt(err, errlen, FC_NOT_BEFORE);
		return NULL;
	}
	if (!a->cfg.balloon.stats_s) {
		cv_fmt(err, errlen, NO_STATS);
		return NULL;
	}
	if (a->ops->balloon_info(a->ctx, &info, err, errlen))
		return NULL;
	return stats_json(&info);
}
