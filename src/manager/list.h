/* `cellvm list`: every bundle with its state, as a table or JSON. */
#ifndef CELLVM_MANAGER_LIST_H
#define CELLVM_MANAGER_LIST_H

#include <stdbool.h>

int manager_list(bool json);

#endif
