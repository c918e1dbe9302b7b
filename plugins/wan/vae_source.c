/* vae_source.c: tensor sources for the VAE / TAEHV loaders: a wt_file, or random weights. */
#include "vae_source.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "wt_file.h"

static int wt_src_read(void *ctx, const char *name, int ndim, const int64_t *shape, float *dst,
		       char *err, size_t errlen)
{
	return wt_read_f32(ctx, name, ndim, shape, dst, err, errlen) < 0 ? -1 : 0;
}

static int wt_src_shape(void *ctx, const char *name, int64_t *shape)
{
	const struct wt_tensor *t = wt_find(ctx, name);
	if (!t)
		return -1;
	memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
	return t->ndim;
}

struct vae_source vae_source_wt(struct wt_file *f)
{
	struct vae_source s = { .ctx = f, .read = wt_src_read, .shape = wt_src_shape,
				.path = wt_path(f) };
	return s;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static int rnd_read(void *ctx, const char *name, int ndim, const int64_t *shape, float *dst,
		    char *err, size_t errlen)
{
	uint64_t key = *(const uint64_t *)ctx;
	for (const char *p = name; *p; p++)
		key = (key ^ (unsigned char)*p) * 0x100000001b3ull;
	int64_t n = 1, fan = 1;
	for (int i = 0; i < ndim; i++)
		n *= shape[i];
	for (int i = 1; i < ndim; i++)
		fan *= shape[i];
	size_t len = strlen(name);
	int gamma = len >= 5 && !strcmp(name + len - 5, "gamma");
	int bias = ndim == 1;
	float amp = bias ? 0.02f : gamma ? 0.1f : (float)sqrt(3.0 / (double)fan);
	for (int64_t i = 0; i < n; i++) {
		double u = (double)(mix(key + (uint64_t)i) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
		dst[i] = (gamma ? 1.0f : 0.0f) + amp * (float)u;
	}
	return 0;
}

static int rnd_shape(void *ctx, const char *name, int64_t *shape)
{
	return -1;
}

struct vae_source vae_source_random(uint64_t *seed)
{
	struct vae_source s = { .ctx = seed, .read = rnd_read, .shape = rnd_shape,
				.path = "(random weights)" };
	return s;
}
