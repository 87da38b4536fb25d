/* cellvm disk info IMG [--json] */
#include "disk/disk.h"

#include <stdio.h>

#include "block/nbd.h"
#include "block/qcow2.h"
#include "util/err.h"

/* 1536 -> "1.5 KiB": allocation is approximate by nature. */
static void human(uint64_t v, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", d, unit[u]);
}

/* A JSON string (paths may hold any byte but NUL). */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static const char *yes_no(bool b, const char *yes, const char *no)
{
	return b ? yes : no;
}

/* An export has no file to measure: what the server said instead. */
static void print_nbd_json(const struct nbd_export_info *n)
{
	printf(", \"nbd\": {\"read-only\": %s, \"block-size\": {\"minimum\": %llu, \"preferred\": %llu, "
	       "\"maximum\": %llu}, \"flush\": %s, \"trim\": %s, \"zero\": %s, \"block-status\": %s}}\n",
	       yes_no(n->read_only, "true", "false"), (unsigned long long)n->block_min,
	       (unsigned long long)n->block_preferred, (unsigned long long)n->block_max,
	       yes_no(n->can_flush, "true", "false"), yes_no(n->can_trim, "true", "false"),
	       yes_no(n->can_zero, "true", "false"), yes_no(n->block_status, "true", "false"));
}

static void print_nbd_text(const struct nbd_export_info *n)
{
	printf("read-only: %s\nblock size: minimum %llu, preferred %llu, maximum %llu (0: not given)\n"
	       "NBD commands: flush %s, trim %s, zero %s, block status %s\n",
	       yes_no(n->read_only, "yes", "no"), (unsigned long long)n->block_min,
	       (unsigned long long)n->block_preferred, (unsigned long long)n->block_max,
	       yes_no(n->can_flush, "yes", "no"), yes_no(n->can_trim, "yes", "no"), yes_no(n->can_zero, "yes", "no"),
	       yes_no(n->block_status, "yes", "no"));
}

static void print_json(struct image *top)
{
	printf("{\"filename\": ");
	json_str(top->path);
	printf(", \"format\": \"%s\", \"virtual-size\": %llu", top->ops->name, (unsigned long long)top->size);
	if (nbd_image_info(top)) {
		print_nbd_json(nbd_image_info(top));
		return;
	}
	printf(", \"actual-size\": %llu", (unsigned long long)disk_allocated(top));
	if (qcow2_of(top))
		printf(", \"cluster-size\": %llu", (unsigned long long)qcow2_of(top)->cluster_size);
	if (top->backing) {
		printf(", \"backing-filename\": ");
		json_str(qcow2_of(top)->h.backing_file);
		printf(", \"backing-format\": \"%s\"", top->backing->ops->name);
	}
	printf(", \"chain\": [");
	for (struct image *l = top; l; l = l->backing) {
		printf("%s{\"filename\": ", l == top ? "" : ", ");
		json_str(l->path);
		printf(", \"format\": \"%s\", \"virtual-size\": %llu, \"actual-size\": %llu}", l->ops->name,
		       (unsigned long long)l->size, (unsigned long long)disk_allocated(l));
	}
	printf("]}\n");
}

static void print_text(struct image *top)
{
	char a[32], v[32];

	human(top->size, v, sizeof(v));
	printf("image: %s\nformat: %s\nvirtual size: %s (%llu bytes)\n", top->path, top->ops->name, v,
	       (unsigned long long)top->size);
	if (nbd_image_info(top)) {
		print_nbd_text(nbd_image_info(top));
		return;
	}
	human(disk_allocated(top), a, sizeof(a));
	printf("allocated: %s\n", a);
	if (qcow2_of(top))
		printf("cluster size: %llu\nqcow2 version: %u\n", (unsigned long long)qcow2_of(top)->cluster_size,
		       qcow2_of(top)->h.version);
	if (!top->backing)
		return;
	printf("backing file: %s (%s)\nbacking chain:\n", qcow2_of(top)->h.backing_file, top->backing->ops->name);
	for (struct image *l = top; l; l = l->backing) {
		human(l->size, v, sizeof(v));
		human(disk_allocated(l), a, sizeof(a));
		printf("  %s  %s, %s virtual, %s allocated\n", l->path, l->ops->name, v, a);
	}
}

int disk_info(int argc, char **argv)
{
	const char *pos[1];
	bool json = false;
	struct disk_opt opts[] = { { "--json", NULL, &json }, { NULL, NULL, NULL } };
	struct image *img;
	int npos, rc;

	if ((rc = disk_args("info", argc, argv, opts, pos, 1, 1, &npos)) ||
	    (rc = image_open(pos[0], BLOCK_FORMAT_AUTO, 0, &img)))
		return disk_exit(rc);
	if (json)
		print_json(img);
	else
		print_text(img);
	image_close(img);
	return DISK_EXIT_OK;
}
