/* `cellvm disk COMMAND`: dispatch, argument helpers and atomic file
 * publication shared by the subcommands. */
#include "disk/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/nbd.h"
#include "util/err.h"
#include "util/size.h"

static const char usage[] =
	"usage: cellvm disk COMMAND ...\n"
	"  create IMG [SIZE] [--format raw|qcow2] [--backing FILE] [--prealloc]\n"
	"                    new image (qcow2 by default; SIZE defaults to the backing file's);\n"
	"                    a relative FILE is relative to IMG's directory\n"
	"  info IMG [--json]  format, virtual size, allocated bytes, backing chain\n"
	"  check IMG          consistency check: exit 0 clean or leaks only, 1 corrupt\n"
	"  convert SRC DST [--format raw|qcow2]  copy SRC (its whole chain, flattened) into a new DST\n"
	"  resize IMG SIZE|+SIZE  grow the virtual size (shrinking is refused)\n"
	"  snapshot create IMG NAME   freeze IMG's content as IMG.NAME; IMG becomes a new delta on it\n"
	"  snapshot list IMG          IMG's snapshots, newest first\n"
	"  snapshot revert IMG [NAME] drop the delta (and newer snapshots): back to NAME (default: the newest)\n"
	"  snapshot commit IMG        merge the delta into the newest snapshot, which becomes IMG\n"
	"  bench IMG [--write] [--count N] [--depth N]  4K random I/O through the VM's block layer, on the host\n"
	"info, check, convert and bench also take an NBD URI (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH).\n"
	"Images must not be in use by a running VM. Exit status: 0 done, 1 failed, 2 bad input.\n";

int disk_exit(int rc)
{
	return rc == 0 ? DISK_EXIT_OK : rc == CV_EINPUT ? DISK_EXIT_USAGE : DISK_EXIT_FAIL;
}

int disk_args(const char *cmd, int argc, char **argv, const struct disk_opt *opts, const char **pos, int min_pos,
	      int max_pos, int *npos)
{
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *eq;
		const struct disk_opt *o;
		size_t len;

		if (strncmp(a, "--", 2) || !a[2]) {
			if (*npos == max_pos) {
				cv_err("disk %s: unexpected argument '%s'", cmd, a);
				return CV_EINPUT;
			}
			pos[(*npos)++] = a;
			continue;
		}
		eq = strchr(a, '=');
		len = eq ? (size_t)(eq - a) : strlen(a);
		for (o = opts; o && o->name; o++)
			if (strlen(o->name) == len && !strncmp(o->name, a, len))
				break;
		if (!o || !o->name) {
			cv_err("disk %s: unknown option '%s'", cmd, a);
			return CV_EINPUT;
		}
		if (o->flag) {
			if (eq) {
				cv_err("disk %s: option %s takes no value", cmd, o->name);
				return CV_EINPUT;
			}
			*o->flag = true;
		} else if (eq) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			cv_err("disk %s: option %s needs a value", cmd, o->name);
			return CV_EINPUT;
		}
	}
	if (*npos < min_pos) {
		cv_err("disk %s: missing arguments (cellvm disk --help)", cmd);
		return CV_EINPUT;
	}
	return 0;
}

int disk_parse_size(const char *s, uint64_t *out)
{
	if (!size_parse(s, out)) {
		cv_err("invalid size '%s': expected a number with an optional K, M, G or T suffix", s);
		return CV_EINPUT;
	}
	if (*out == 0 || *out % 512) {
		cv_err("invalid size '%s': must be a positive multiple of 512 bytes", s);
		return CV_EINPUT;
	}
	return 0;
}

int disk_parse_format(const char *s, enum block_format *f)
{
	if (!strcmp(s, "raw"))
		*f = BLOCK_FORMAT_RAW;
	else if (!strcmp(s, "qcow2"))
		*f = BLOCK_FORMAT_QCOW2;
	else {
		cv_err("invalid format '%s' (raw or qcow2)", s);
		return CV_EINPUT;
	}
	return 0;
}

int disk_need_file(const char *cmd, const char *path)
{
	if (!nbd_image_is_uri(path))
		return 0;
	cv_err("disk %s: '%s' is an NBD export; this needs an image file", cmd, path);
	return CV_EINPUT;
}

uint64_t disk_allocated(const struct image *img)
{
	struct stat st;

	return fstat(img->fd, &st) ? 0 : (uint64_t)st.st_blocks * 512;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "create", disk_create },   { "info", disk_info },     { "check", disk_check },
	{ "convert", disk_convert }, { "resize", disk_resize }, { "snapshot", disk_snapshot },
	{ "bench", disk_bench },
};

int disk_main(int argc, char **argv)
{
	if (argc < 1) {
		fputs(usage, stderr);
		return DISK_EXIT_USAGE;
	}
	if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
		fputs(usage, stdout);
		return DISK_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[0], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	cv_err("unknown disk command '%s' (try cellvm disk --help)", argv[0]);
	return DISK_EXIT_USAGE;
}
