/* Optional parts of cellvm that need large libraries (libslirp and GLib,
 * libnbd, GnuTLS, libarchive) are modules: shared objects named
 * cellvm-NAME.so beside the executable, each exporting one table of entry
 * points, `cellvm_module_NAME`. A process maps a module's libraries only
 * once it uses the module, so a VM without NAT, NBD disks or TLS, and every
 * VM process (which never imports or exports bundles), runs without them.
 *
 * Under the syscall filter nothing can be loaded (no executable mappings),
 * so whatever a VM may need later is loaded before the filter goes on. */
#ifndef CELLVM_UTIL_MODULE_H
#define CELLVM_UTIL_MODULE_H

#include <stdbool.h>

/* The table of module NAME, loaded on first use. Builds that link a module
 * in (unit tests, fuzzers) find its table in the executable itself. NULL,
 * after one line saying why, when it cannot be loaded. */
const void *module_get(const char *name);

/* Whether module NAME is already loaded (or linked in); loads nothing. */
bool module_loaded(const char *name);

/* From now on module_get() loads nothing new (it reports that the module
 * was not loaded in time): the syscall filter is about to go on, and a
 * load under it would end the process. */
void module_seal(void);

#endif
