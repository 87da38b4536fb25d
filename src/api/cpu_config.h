/* Firecracker's custom CPU template (PUT /cpu-config, a config file's
 * "cpu-config", `cellvm run --cpu-template FILE`) read into a cpu_template. */
#ifndef CELLVM_API_CPU_CONFIG_H
#define CELLVM_API_CPU_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "arch/x86/cpu_template.h"

/* 0, or CV_EINPUT with a one-line reason (t unchanged). */
int api_cpu_config_parse(json_t *body, struct cpu_template *t, char *err, size_t errlen);
/* A custom template as Firecracker's JSON (GET /vm/config). */
json_t *api_cpu_config_json(const struct cpu_template *t);
/* The same from a file: a name (T2, C3, None) or a path to the JSON. */
int api_cpu_template_arg(const char *v, struct cpu_template *t, char *err, size_t errlen);

#endif
