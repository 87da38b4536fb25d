/* Firecracker's MMDS resources: PUT /mmds/config (before boot), PUT,
 * PATCH and GET /mmds (any time), with its messages. The data store is
 * made on first use, as Firecracker's is; after boot, a VM that had none
 * has none. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "api/firecracker.h"
#include "api/json.h"
#include "mmds/stack.h"
#include "util/err.h"

#define NOT_INITIALIZED "MMDS error: The MMDS data store is not initialized."

struct mmds_store *fc_mmds_store(struct fc_api *a, char *err, size_t errlen)
{
	if (!a->mmds_on && !mmds_store_init(&a->mmds, a->id))
		a->mmds_on = true;
	if (!a->mmds_on)
		cv_fmt(err, errlen, "MMMDS config error: Failed to initialize MMDS data store: Token Authority error: "
				    "Failed to generate a key");
	return a->mmds_on ? &a->mmds : NULL;
}

static int find_nic_id(const struct api_config *c, const char *id)
{
	for (unsigned i = 0; i < c->nnics; i++)
		if (!strcmp(c->nics[i].id, id))
			return (int)i;
	return -1;
}

int api_put_mmds_config(struct api_config *c, json_t *body, char *err, size_t errlen)
{
	json_t *ver, *nics, *addr, *compat, *id;
	struct mmds_config m = { .set = true, .addr = MMDS_DEFAULT_ADDR };
	struct in_addr in;
	size_t i;
	int rc = json_fields(body, "mmds-config",
			     (const struct jfield[]){ { "version", JF_STRING, false, &ver },
						      { "network_interfaces", JF_ARRAY, true, &nics },
						      { "ipv4_address", JF_STRING, false, &addr },
						      { "imds_compat", JF_BOOL, false, &compat } },
			     4, err, errlen);

	if (rc)
		return rc;
	if (ver && strcmp(json_string_value(ver), "V1") && strcmp(json_string_value(ver), "V2"))
		return cv_fmt(err, errlen, "invalid version '%.32s': V1 or V2", json_string_value(ver));
	m.version = ver && !strcmp(json_string_value(ver), "V2") ? MMDS_V2 : MMDS_V1;
	m.imds_compat = compat && json_is_true(compat);
	if (addr && inet_pton(AF_INET, json_string_value(addr), &in) != 1)
		return cv_fmt(err, errlen, "invalid ipv4_address '%.64s': not an IPv4 address", json_string_value(addr));
	if (addr && !mmds_addr_ok(m.addr = ntohl(in.s_addr)))
		return cv_fmt(err, errlen, "MMMDS config error: The MMDS IPv4 address is not link local.");
	if (!json_array_size(nics))
		return cv_fmt(err, errlen, "MMMDS config error: The list of network interface IDs that allow "
				    "forwarding MMDS requests is empty.");
	json_array_foreach(nics, i, id)
	{
		int at = json_is_string(id) ? find_nic_id(c, json_string_value(id)) : -1;

		if (at < 0)
			return cv_fmt(err, errlen, "MMMDS config error: The list of network interface IDs provided "
					    "contains at least one ID that does not correspond to any existing network "
					    "interface.");
		m.nics |= 1u << at;
	}
	c->mmds = m;
	return 0;
}

json_t *api_mmds_json(const struct api_config *c)
{
	json_t *ids = json_array();
	struct in_addr in = { htonl(c->mmds.addr) };
	char addr[INET_ADDRSTRLEN];

	if (!c->mmds.set) {
		json_decref(ids);
		return json_null();
	}
	for (unsigned i = 0; i < c->nnics; i++)
		if (c->mmds.nics & (1u << i))
			json_array_append_new(ids, json_string(c->nics[i].id));
	inet_ntop(AF_INET, &in, addr, sizeof(addr));
	return json_pack("{s:s, s:o, s:s, s:b}", "version", c->mmds.version == MMDS_V2 ? "V2" : "V1",
			 "network_interfaces", ids, "ipv4_address", addr, "imds_compat", c->mmds.imds_compat);
}

int fc_mmds_modify(struct fc_api *a, bool patch, const char *sub, json_t *body, char *err, size_t errlen)
{
	struct mmds_store *s;
	enum mmds_result r;
	int rc;

	if (!patch && *sub && strcmp(sub, "config"))
		return cv_fmt(err, errlen, "Unrecognized PUT request path `%.64s`.", sub);
	if (!patch && *sub) {
		if (a->state != FC_NOT_STARTED)
			return cv_fmt(err, errlen, FC_NOT_AFTER);
		if ((rc = api_put_mmds_config(&a->cfg, body, err, errlen)))
			return rc;
		return fc_mmds_store(a, err, errlen) ? 0 : CV_EFAIL;
	}
	if (a->state != FC_NOT_STARTED && !a->mmds_on)
		return cv_fmt(err, errlen, NOT_INITIALIZED);
	if (!(s = fc_mmds_store(a, err, errlen)))
		return CV_EFAIL;
	r = patch ? mmds_store_patch(s, body, a->cfg.mmds_size_limit) : mmds_store_put(s, body, a->cfg.mmds_size_limit);
	if (r == MMDS_TOO_BIG) {
		cv_fmt(err, errlen, "MMDS limit exceeded error: The MMDS patch request doesn't fit.");
		return FC_ETOOLARGE;
	}
	if (r == MMDS_NOT_INITIALIZED)
		return cv_fmt(err, errlen, NOT_INITIALIZED);
	return r == MMDS_OK ? 0 : cv_fmt(err, errlen, "out of memory");
}

json_t *fc_mmds_get(struct fc_api *a, char *err, size_t errlen)
{
	struct mmds_store *s;

	if (a->state != FC_NOT_STARTED && !a->mmds_on) {
		cv_fmt(err, errlen, NOT_INITIALIZED);
		return NULL;
	}
	if (!(s = fc_mmds_store(a, err, errlen)))
		return NULL;
	return mmds_store_get(s);
}
