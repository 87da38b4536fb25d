/* Strict reading of JSON objects against a table of the fields they may
 * have. Every API request body and config-file section goes through it, so
 * malformed JSON, unknown fields, wrong types and missing fields get the
 * same one-line messages everywhere. */
#ifndef CELLVM_API_JSON_H
#define CELLVM_API_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jf_type { JF_STRING, JF_BOOL, JF_UINT, JF_OBJECT, JF_ARRAY };

struct jfield {
	const char *name;
	enum jf_type type;
	bool required;
	json_t **out; /* set to the value, or NULL when absent (or null) */
};

/* Parses a whole document (duplicate keys and trailing bytes are errors).
 * Returns 0 or CV_EINPUT with the parser's message in err. */
int json_parse(const char *buf, size_t len, json_t **out, char *err, size_t errlen);

/* Checks that obj is an object whose members are all in fields[], of the
 * declared types, with every required one present; `what` names the object
 * in messages. A null member counts as absent. Returns 0 or CV_EINPUT. */
int json_fields(json_t *obj, const char *what, const struct jfield *fields, size_t n, char *err,
		size_t errlen);

/* The value of a JF_UINT member checked against [min, max]. */
int json_uint_range(json_t *v, const char *name, uint64_t min, uint64_t max, uint64_t *out, char *err,
		    size_t errlen);

/* Copies a JF_STRING member into a fixed buffer; too long (or empty when
 * !allow_empty) is an error naming the field. */
int json_str_copy(json_t *v, const char *name, char *buf, size_t cap, bool allow_empty, char *err,
		  size_t errlen);

/* A malloc'ed copy of a JF_STRING member, or NULL when v is NULL. Returns
 * CV_EFAIL only when out of memory. */
int json_str_dup(json_t *v, char **out);

#endif
