#include "api/json.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static const char *type_name(enum jf_type t)
{
	switch (t) {
	case JF_STRING:
		return "a string";
	case JF_BOOL:
		return "a boolean";
	case JF_UINT:
		return "a non-negative integer";
	case JF_OBJECT:
		return "an object";
	case JF_ARRAY:
		return "an array";
	}
	return "?";
}

static bool type_ok(json_t *v, enum jf_type t)
{
	switch (t) {
	case JF_STRING:
		return json_is_string(v);
	case JF_BOOL:
		return json_is_boolean(v);
	case JF_UINT:
		return json_is_integer(v) && json_integer_value(v) >= 0;
	case JF_OBJECT:
		return json_is_object(v);
	case JF_ARRAY:
		return json_is_array(v);
	}
	return false;
}

int json_parse(const char *buf, size_t len, json_t **out, char *err, size_t errlen)
{
	json_error_t e;

	*out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
	if (!*out)
		return cv_fmt(err, errlen, "invalid JSON: %s at line %d column %d", e.text, e.line, e.column);
	return 0;
}

int json_fields(json_t *obj, const char *what, const struct jfield *fields, size_t n, char *err,
		size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return cv_fmt(err, errlen, "%s must be a JSON object", what);
	for (size_t i = 0; i < n; i++)
		*fields[i].out = NULL;
	json_object_foreach(obj, key, v)
	{
		size_t i;

		for (i = 0; i < n && strcmp(fields[i].name, key); i++)
			;
		if (i == n)
			return cv_fmt(err, errlen, "unknown field '%.64s' in %s", key, what);
		if (json_is_null(v))
			continue;
		if (!type_ok(v, fields[i].type))
			return cv_fmt(err, errlen, "field '%s' of %s must be %s", key, what,
				      type_name(fields[i].type));
		*fields[i].out = v;
	}
	for (size_t i = 0; i < n; i++)
		if (fields[i].required && !*fields[i].out)
			return cv_fmt(err, errlen, "missing field '%s' in %s", fields[i].name, what);
	return 0;
}

int json_uint_range(json_t *v, const char *name, uint64_t min, uint64_t max, uint64_t *out, char *err,
		    size_t errlen)
{
	json_int_t x = json_integer_value(v);

	if (x < 0 || (uint64_t)x < min || (uint64_t)x > max)
		return cv_fmt(err, errlen, "invalid %s %lld: must be between %llu and %llu", name, (long long)x,
			      (unsigned long long)min, (unsigned long long)max);
	*out = (uint64_t)x;
	return 0;
}

int json_str_copy(json_t *v, const char *name, char *buf, size_t cap, bool allow_empty, char *err,
		  size_t errlen)
{
	size_t len = json_string_length(v);
	const char *s = json_string_value(v);

	if (memchr(s, 0, len))
		return cv_fmt(err, errlen, "invalid %s: contains a NUL character", name);
	if (!len && !allow_empty)
		return cv_fmt(err, errlen, "invalid %s '': must not be empty", name);
	if (len >= cap)
		return cv_fmt(err, errlen, "invalid %s '%.64s': longer than %zu characters", name, s, cap - 1);
	memcpy(buf, s, len + 1);
	return 0;
}

int json_str_dup(json_t *v, char **out)
{
	*out = NULL;
	if (!v)
		return 0;
	*out = strdup(json_string_value(v));
	return *out ? 0 : CV_EFAIL;
}
