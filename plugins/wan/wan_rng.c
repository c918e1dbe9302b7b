/* wan_rng.c: the pipeline's Gaussian noise source (see wan_rng.h). */
#include "wan_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void wan_rng_seed(struct wan_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
	r->have_spare = false;
	r->ahead_n = 0;
}

void wan_rng_release(struct wan_rng *r)
{
	free(r->ahead);
	r->ahead = NULL;
	r->ahead_cap = r->ahead_n = 0;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct wan_rng *r)
{
	uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

double wan_rng_normal(struct wan_rng *r)
{
	if (r->have_spare) {
		r->have_spare = false;
		return r->spare;
	}
	/* u1 in (0,1], u2 in [0,1) from 53-bit mantissas */
	double u1 = ((rng_next(r) >> 11) + 1) * 0x1.0p-53;
	double u2 = (rng_next(r) >> 11) * 0x1.0p-53;
	double m = sqrt(-2.0 * log(u1));
	r->spare = m * sin(2.0 * M_PI * u2);
	r->have_spare = true;
	return m * cos(2.0 * M_PI * u2);
}

void wan_rng_fill(struct wan_rng *r, float *dst, size_t n)
{
	size_t i = 0;

	if (r->ahead_n > 0) {
		i = n < r->ahead_n ? n : r->ahead_n;
		memcpy(dst, r->ahead, i * sizeof(float));
		if (i < r->ahead_n) /* a shorter draw: the rest stays ahead, in order */
			memmove(r->ahead, r->ahead + i, (r->ahead_n - i) * sizeof(float));
		r->ahead_n -= i;
	}
	for (; i < n; i++)
		dst[i] = (float)wan_rng_normal(r);
}

int wan_rng_prefetch(struct wan_rng *r, size_t n)
{
	if (r->ahead_n > 0 || n == 0)
		return 0;
	if (n > r->ahead_cap) {
		float *a = realloc(r->ahead, n * sizeof(float));
		if (!a)
			return -1;
		r->ahead = a;
		r->ahead_cap = n;
	}
	for (size_t i = 0; i < n; i++)
		r->ahead[i] = (float)wan_rng_normal(r);
	r->ahead_n = n;
	return 0;
}
