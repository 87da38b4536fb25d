/* The host side of the guest console: cellvm's stdin/stdout. On a terminal
 * it switches to raw mode (restored on exit) and interprets Ctrl-A escapes. */
#ifndef CELLVM_VMM_CONSOLE_H
#define CELLVM_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */

enum console_action { CONSOLE_NONE, CONSOLE_QUIT };

struct console {
	int in_fd;
	bool tty;      /* input is a terminal: raw mode and escapes */
	bool raw;      /* termios changed and must be restored */
	bool escaped;  /* the previous byte was the escape character */
	struct termios saved;
};

/* Takes in_fd; on a terminal, saves its mode and makes it raw. */
int console_open(struct console *c, int in_fd);
void console_restore(struct console *c);
/* Puts the terminal back from wherever the process is about to end (a
 * signal handler too: only tcsetattr). */
void console_restore_active(void);

/* Copies input bytes meant for the guest from in to out (out has room for
 * n bytes), acting on escapes. Returns the number of bytes for the guest. */
size_t console_filter(struct console *c, const uint8_t *in, size_t n, uint8_t *out,
		      enum console_action *act);

#endif
