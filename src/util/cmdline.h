/* Kernel command lines: everything after a standalone "--" belongs to init,
 * so parameters for the kernel are inserted before it. */
#ifndef CELLVM_UTIL_CMDLINE_H
#define CELLVM_UTIL_CMDLINE_H

#include <stddef.h>

/* Adds " param" to the kernel's part of cmdline (capacity cap). Returns 0,
 * or -1 if it would not fit (cmdline unchanged). */
int cmdline_add(char *cmdline, size_t cap, const char *param);

#endif
