/* Error reporting: one line on stderr, prefixed with the program name. */
#ifndef CELLVM_UTIL_ERR_H
#define CELLVM_UTIL_ERR_H

#include <stddef.h>

/* Return codes used across cellvm: 0 ok, CV_EFAIL a runtime failure,
 * CV_EINPUT bad user input (the CLI maps it to exit status 2). */
enum { CV_EFAIL = -1, CV_EINPUT = -2 };

void cv_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cv_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The text of the last cv_err() of this thread ("" if none): lets the API
 * report why an action failed in its reply, not only on stderr. */
const char *cv_last_error(void);

/* Formats into a caller's buffer; used by parsers that unit tests check. */
int cv_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
