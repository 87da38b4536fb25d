#include "util/module.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"

#define MAX_MODULES 8

struct loaded {
	char name[16];
	const void *table;
};

static struct loaded loaded[MAX_MODULES];
static unsigned n_loaded;
static bool sealed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The directory modules are read from: $CELLVM_MODULE_DIR, else the
 * executable's own. */
static int module_dir(char *buf, size_t len)
{
	const char *env = getenv("CELLVM_MODULE_DIR");
	ssize_t n;
	char *slash;

	if (env && *env)
		return snprintf(buf, len, "%s", env) < (int)len ? 0 : -1;
	if ((n = readlink("/proc/self/exe", buf, len - 1)) <= 0 || (size_t)n >= len - 1)
		return -1;
	buf[n] = '\0';
	if (!(slash = strrchr(buf, '/')))
		return -1;
	*slash = '\0';
	return 0;
}

static const void *find(const char *name)
{
	for (unsigned i = 0; i < n_loaded; i++)
		if (!strcmp(loaded[i].name, name))
			return loaded[i].table;
	return NULL;
}

static const void *load(const char *name, const char *symbol)
{
	char dir[PATH_MAX - 32], path[PATH_MAX];
	const void *table;
	void *h;

	if ((table = dlsym(RTLD_DEFAULT, symbol)))
		return table;
	if (sealed) {
		cv_err("module %s: not loaded before the syscall filter went on, and cannot be now", name);
		return NULL;
	}
	if (module_dir(dir, sizeof(dir))) {
		cv_err("module %s: cannot tell where cellvm's modules are (set CELLVM_MODULE_DIR)", name);
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/cellvm-%s.so", dir, name);
	if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
		cv_err("module %s: %s", name, dlerror());
		return NULL;
	}
	if (!(table = dlsym(h, symbol))) {
		cv_err("module %s: %s has no %s", name, path, symbol);
		dlclose(h);
	}
	return table;
}

const void *module_get(const char *name)
{
	char symbol[64];
	const void *table;

	if (strlen(name) >= sizeof(loaded[0].name)) {
		cv_err("module '%s': no such module", name);
		return NULL;
	}
	snprintf(symbol, sizeof(symbol), "cellvm_module_%s", name);
	pthread_mutex_lock(&lock);
	if (!(table = find(name)) && (table = load(name, symbol))) {
		if (n_loaded < MAX_MODULES) {
			snprintf(loaded[n_loaded].name, sizeof(loaded[n_loaded].name), "%s", name);
			loaded[n_loaded++].table = table;
		}
	}
	pthread_mutex_unlock(&lock);
	return table;
}

bool module_loaded(const char *name)
{
	char symbol[64];
	bool yes;

	snprintf(symbol, sizeof(symbol), "cellvm_module_%s", name);
	pthread_mutex_lock(&lock);
	yes = find(name) || dlsym(RTLD_DEFAULT, symbol);
	pthread_mutex_unlock(&lock);
	return yes;
}

void module_seal(void)
{
	pthread_mutex_lock(&lock);
	sealed = true;
	pthread_mutex_unlock(&lock);
}
