#include "disk/progress.h"

#include <stdio.h>
#include <unistd.h>

#define WIDTH 40

void progress_start(struct progress *p, const char *label, uint64_t total)
{
	*p = (struct progress){ .on = isatty(STDOUT_FILENO), .total = total, .shown = -1, .label = label };
	progress_update(p, 0);
}

void progress_update(struct progress *p, uint64_t done)
{
	int pct = p->total ? (int)(done * 100 / p->total) : 100, fill = pct * WIDTH / 100;

	if (!p->on || pct == p->shown)
		return;
	p->shown = pct;
	printf("\r%s [%.*s%*s] %3d%%", p->label, fill, "########################################", WIDTH - fill, "",
	       pct);
	fflush(stdout);
}

void progress_end(struct progress *p)
{
	if (!p->on)
		return;
	progress_update(p, p->total);
	putchar('\n');
	fflush(stdout);
}
