/* arena.c: see arena.h. */
#include "plugins/wan/cuda/arena.h"

#include <string.h>
#include "plugins/wan/cuda/cuda_check.h"

static size_t align_up(size_t n)
{
	return (n + WAN_ARENA_ALIGN - 1) / WAN_ARENA_ALIGN * WAN_ARENA_ALIGN;
}

void wan_arena_measure(struct wan_arena *a)
{
	memset(a, 0, sizeof(*a));
	a->measuring = 1;
}

int wan_arena_init(struct wan_arena *a, size_t bytes, char *err, size_t errlen)
{
	void *p = NULL;

	memset(a, 0, sizeof(*a));
	bytes = align_up(bytes ? bytes : 1);
	CU_RET(cudaMalloc(&p, bytes));
	a->base = p;
	a->cap = bytes;
	return 0;
}

void *wan_arena_alloc(struct wan_arena *a, size_t bytes, int *failed, char *err, size_t errlen)
{
	size_t n = align_up(bytes ? bytes : 1);
	void *p;

	if (a->measuring) {
		a->used += n;
		return NULL;
	}
	if (n > a->cap - a->used) {
		if (err && errlen)
			snprintf(err, errlen, "device arena exhausted: %zu bytes asked, %zu of %zu left",
				 bytes, a->cap - a->used, a->cap);
		if (failed)
			*failed = 1;
		return NULL;
	}
	p = a->base + a->used;
	a->used += n;
	return p;
}

void wan_arena_reset(struct wan_arena *a)
{
	a->used = 0;
}

void wan_arena_release(struct wan_arena *a)
{
	if (a->base)
		cudaFree(a->base);
	memset(a, 0, sizeof(*a));
}
