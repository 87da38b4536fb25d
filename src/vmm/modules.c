#include "vmm/modules.h"

#include "block/nbd.h"
#include "util/err.h"
#include "util/module.h"

int vm_modules_load(const struct vm_config *cfg, bool jailed)
{
	bool late = jailed && (cfg->api_sock || cfg->config_file || cfg->restore_dir || cfg->incoming);
	bool nat = late, nbd = late;

	for (unsigned i = 0; i < cfg->nnics; i++)
		nat |= cfg->nics[i].mode == NET_NAT;
	for (unsigned i = 0; i < cfg->ndisks; i++)
		nbd |= nbd_image_is_uri(cfg->disks[i].path);
	if ((nat && !module_get("nat")) || (nbd && !module_get("nbd")))
		return CV_EFAIL;
	if ((cfg->api_sock || (cfg->incoming && cfg->migrate_tls)) && !module_get("tls"))
		return CV_EFAIL;
	/* MMDS V2 tokens: the API can make an MMDS at any time before boot. */
	if ((cfg->api_sock || cfg->mmds.set || late) && !module_get("seal"))
		return CV_EFAIL;
	return 0;
}
