/* Human-readable sizes such as 512M or 2G. */
#ifndef CELLVM_UTIL_SIZE_H
#define CELLVM_UTIL_SIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses "N[K|M|G|T][B|iB]" (binary units, case-insensitive); a bare
 * number is bytes. Returns false on anything else or on overflow. */
bool size_parse(const char *s, uint64_t *out);

/* Writes the shortest exact form ("512M", "1G", "1536K", "100") into buf. */
void size_format(uint64_t v, char *buf, size_t len);

#endif
