/* NBD URIs, and the way from them into the module that serves them. */
#include "block/nbd.h"

#include <string.h>

#include "util/err.h"
#include "util/module.h"

static const char *const schemes[] = { "nbd", "nbds", "nbd+unix", "nbds+unix", "nbd+vsock", "nbds+vsock" };

bool nbd_image_is_uri(const char *path)
{
	const char *colon = strchr(path, ':');

	for (size_t i = 0; colon && i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strlen(schemes[i]) == (size_t)(colon - path) && !strncmp(path, schemes[i], (size_t)(colon - path)))
			return true;
	return false;
}

int nbd_image_open(const char *uri, enum block_format format, bool readonly, struct image **out)
{
	const struct nbd_module *m = module_get("nbd");

	return m ? m->open(uri, format, readonly, out) : CV_EFAIL;
}

/* Without the module loaded, no image can be an NBD one. */
const struct nbd_export_info *nbd_image_info(const struct image *img)
{
	const struct nbd_module *m = module_loaded("nbd") ? module_get("nbd") : NULL;

	return m && img ? m->info(img) : NULL;
}
