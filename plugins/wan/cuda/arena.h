/* arena.h: a bump allocator over one device allocation.
 *
 * The engine keeps two arenas: one for parameters (filled once at load) and one for
 * activations and caches (planned once per resolution and slot count). Planning is two-pass:
 * run the layout function against an arena in "measure" mode (wan_arena_measure), which only
 * counts bytes, then wan_arena_init with the measured size and run the same layout again to
 * get real pointers. Nothing is freed piecewise; wan_arena_release frees everything. */
#ifndef WAN_CUDA_ARENA_H
#define WAN_CUDA_ARENA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WAN_ARENA_ALIGN 256

struct wan_arena {
	char *base;      /* new (cudaMalloc); NULL in measure mode */
	size_t cap;      /* bytes in base */
	size_t used;     /* bytes handed out so far (aligned) */
	int measuring;   /* 1: only count */
};

/* Measure mode: allocations return NULL and only advance `used`. */
void wan_arena_measure(struct wan_arena *a);
/* Allocates `bytes` of device memory (rounded up to WAN_ARENA_ALIGN). 0 or -1. */
int wan_arena_init(struct wan_arena *a, size_t bytes, char *err, size_t errlen);
/* Hands out `bytes` aligned to WAN_ARENA_ALIGN; borrowed pointer into the arena, or NULL in
 * measure mode. Fails (NULL, error set) when the arena is exhausted; then *failed is set. */
void *wan_arena_alloc(struct wan_arena *a, size_t bytes, int *failed, char *err, size_t errlen);
/* Rewinds to empty (keeps the allocation). */
void wan_arena_reset(struct wan_arena *a);
void wan_arena_release(struct wan_arena *a);

#ifdef __cplusplus
}
#endif
#endif
