/* A small ACPI Machine Language encoder: enough to describe devices (names,
 * integers, strings, packages, resource templates) in the DSDT, and
 * methods that notify a device (GPE handlers). */
#ifndef CELLVM_ARCH_X86_AML_H
#define CELLVM_ARCH_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX 4096

struct aml {
	uint8_t buf[AML_MAX];
	size_t len;
	bool overflow;
};

void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_integer(struct aml *a, uint64_t v);
/* A NameSeg or a path such as "\\_SB_" or "\\_SB_.VGEN"; segments are 4
 * characters, at most two. */
void aml_name_string(struct aml *a, const char *name);
/* The "Name (NAME, " part; the object (e.g. aml_package) follows. */
void aml_name(struct aml *a, const char *name);
/* Name (NAME, Integer) */
void aml_name_int(struct aml *a, const char *name, uint64_t v);
/* Name (NAME, EISAID ("PNP0A08")) */
void aml_name_eisaid(struct aml *a, const char *name, const char *id);
/* Name (NAME, "text") */
void aml_name_str(struct aml *a, const char *name, const char *text);
/* Notify (PATH, value) */
void aml_notify(struct aml *a, const char *path, uint8_t value);

/* Opens a Scope, Device, Package or Buffer; close it with aml_end() passing
 * the returned mark. */
size_t aml_scope(struct aml *a, const char *name);
size_t aml_device(struct aml *a, const char *name);
size_t aml_package(struct aml *a, uint8_t count);
/* Method (NAME, nargs, NotSerialized) { ... } */
size_t aml_method(struct aml *a, const char *name, uint8_t nargs);
/* Name (NAME, ResourceTemplate () {...}): write descriptors, then
 * aml_end_resources(). */
size_t aml_name_resources(struct aml *a, const char *name);
void aml_end_resources(struct aml *a, size_t mark);
void aml_end(struct aml *a, size_t mark);

/* Resource descriptors. */
void aml_res_bus_numbers(struct aml *a, uint16_t min, uint16_t max);
void aml_res_io_range(struct aml *a, uint16_t min, uint16_t max);
void aml_res_io_fixed(struct aml *a, uint16_t base, uint8_t len);
/* An ISA interrupt, edge-triggered and active high (IRQNoFlags). */
void aml_res_irq(struct aml *a, uint8_t irq);
void aml_res_mem32(struct aml *a, uint32_t min, uint32_t max);
void aml_res_mem64(struct aml *a, uint64_t min, uint64_t max);

uint32_t aml_eisaid(const char *id);

#endif
