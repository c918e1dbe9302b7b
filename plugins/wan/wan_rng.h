/* wan_rng.h: the pipeline's Gaussian noise source (xoshiro256** seeded through splitmix64;
 * standard normals by Box-Muller in double, both values used), with one draw that can be
 * generated ahead.
 *
 * Box-Muller costs ~15 ns a value (a log, a sqrt, a sin and a cos per pair): a 480x832 latent
 * frame (99,840 values) takes ~1.5 ms, the S draws of a stream call S times that. dit_stream
 * makes most of them while the device runs (the split forward); wan_rng_prefetch, called from
 * dit_stream's idle hook, generates the next draw there too, so that even the one draw a
 * call must make before its forward (the chunk's mixing noise) is a copy. Values and their
 * order are those of generating every draw when asked. */
#ifndef HERU_WAN_RNG_H
#define HERU_WAN_RNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct wan_rng {
	uint64_t s[4];
	bool have_spare;
	double spare;
	float *ahead;    /* new: the next AHEAD_N values (0: none), generated early */
	size_t ahead_n, ahead_cap;
};

/* Seeds R (forgetting any value generated ahead; keeps the buffer). */
void wan_rng_seed(struct wan_rng *r, uint64_t seed);
/* Frees what R holds (not R itself). */
void wan_rng_release(struct wan_rng *r);
/* The next standard normal. Not to be mixed with wan_rng_fill while a draw is ahead. */
double wan_rng_normal(struct wan_rng *r);
/* DST gets the next N standard normals as floats: the values generated ahead when there are
 * N of them, else generated now (after those ahead, if fewer). */
void wan_rng_fill(struct wan_rng *r, float *dst, size_t n);
/* Generates the next N values ahead unless some already are. 0, or -1 out of memory (then
 * nothing changed). */
int wan_rng_prefetch(struct wan_rng *r, size_t n);

#ifdef __cplusplus
}
#endif
#endif
