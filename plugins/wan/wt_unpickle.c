/* wt_unpickle.c: the restricted unpickler (in progress). */
#include "config.h"

#include "wt_internal.h"
