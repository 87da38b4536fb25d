#include "util/cmdline.h"

#include <string.h>

/* Offset of the first standalone "--" token, or the length if none. */
static size_t init_args_start(const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i + 1 < n + 1; i++) {
		if ((i == 0 || s[i - 1] == ' ') && s[i] == '-' && s[i + 1] == '-' &&
		    (s[i + 2] == ' ' || s[i + 2] == '\0'))
			return i;
	}
	return n;
}

int cmdline_add(char *cmdline, size_t cap, const char *param)
{
	size_t len = strlen(cmdline), plen = strlen(param), at = init_args_start(cmdline);
	/* " param" before "--", or at the end. */
	size_t add = plen + 1;

	if (len + add + 1 > cap)
		return -1;
	if (at < len) {
		/* "...kernel -- init" -> "...kernel param -- init" */
		memmove(cmdline + at + add, cmdline + at, len - at + 1);
		memcpy(cmdline + at, param, plen);
		cmdline[at + plen] = ' ';
	} else {
		cmdline[len] = ' ';
		memcpy(cmdline + len + 1, param, plen + 1);
	}
	return 0;
}
