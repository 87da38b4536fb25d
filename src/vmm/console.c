#include "vmm/console.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"

static struct console *active;

static void restore_at_exit(void)
{
	console_restore_active();
}

void console_restore_active(void)
{
	if (active)
		console_restore(active);
}

int console_open(struct console *c, int in_fd)
{
	struct termios raw;

	memset(c, 0, sizeof(*c));
	c->in_fd = in_fd;
	c->tty = isatty(in_fd);
	if (!c->tty)
		return 0;
	if (tcgetattr(in_fd, &c->saved) < 0) {
		cv_err("cannot read terminal mode: %s", strerror(errno));
		return CV_EFAIL;
	}
	raw = c->saved;
	/* Every key, Ctrl-C included, goes to the guest; the guest's own
	 * line discipline echoes and translates newlines. */
	cfmakeraw(&raw);
	if (tcsetattr(in_fd, TCSANOW, &raw) < 0) {
		cv_err("cannot set terminal to raw mode: %s", strerror(errno));
		return CV_EFAIL;
	}
	c->raw = true;
	if (!active) {
		active = c;
		atexit(restore_at_exit);
	}
	return 0;
}

void console_restore(struct console *c)
{
	if (c->raw)
		tcsetattr(c->in_fd, TCSANOW, &c->saved);
	c->raw = false;
	if (active == c)
		active = NULL;
}

size_t console_filter(struct console *c, const uint8_t *in, size_t n, uint8_t *out,
		      enum console_action *act)
{
	size_t o = 0;

	*act = CONSOLE_NONE;
	if (!c->tty) {
		memcpy(out, in, n);
		return n;
	}
	for (size_t i = 0; i < n; i++) {
		if (!c->escaped) {
			if (in[i] == CONSOLE_ESCAPE)
				c->escaped = true;
			else
				out[o++] = in[i];
			continue;
		}
		c->escaped = false;
		switch (in[i]) {
		case 'x':
		case 'X':
			*act = CONSOLE_QUIT;
			return o;
		case CONSOLE_ESCAPE:
			out[o++] = CONSOLE_ESCAPE;
			break;
		case 'h':
		case 'H':
		case '?':
			fprintf(stderr, "\r\ncellvm: Ctrl-A x  quit\r\ncellvm: Ctrl-A Ctrl-A  send Ctrl-A\r\n"
					"cellvm: Ctrl-A h  this help\r\n");
			break;
		default:
			break; /* unknown escapes are dropped, as in other consoles */
		}
	}
	return o;
}
