/* dit_test_util.c: helpers shared by the DiT tests; see dit_test_util.h. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_test_util.h"
#include "wan_dit_weights.h"
#include "wt_file.h"

const char *test_path(struct test_path_ring *ring, const char *dir, const char *name)
{
	ring->k = (ring->k + 1) % 4;
	snprintf(ring->buf[ring->k], sizeof ring->buf[ring->k], "%s/%s", dir, name);
	return ring->buf[ring->k];
}

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = 0xCBF29CE484222325ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001B3ull;
	}
	return h;
}

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

void dit_weight_values(const char *name, float *dst, int64_t n)
{
	uint64_t h = fnv1a64(name);
	for (int64_t i = 0; i < n; i++) {
		uint64_t z = h + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		z ^= z >> 31;
		int64_t top = (int64_t)(z >> 40);
		volatile float r = (float)(2 * top - (1 << 24)) / (float)(1 << 24);
		volatile float p;
		if (ends_with(name, "norm_q.weight") || ends_with(name, "norm_k.weight") ||
		    ends_with(name, "norm3.weight")) {
			p = 0.1f * r;
			dst[i] = 1.0f + p;
		} else if (ends_with(name, "modulation")) {
			dst[i] = 0.1f * r;
		} else if (ends_with(name, "bias")) {
			dst[i] = 0.02f * r;
		} else {
			dst[i] = 0.08f * r;
		}
	}
}

int dit_write_weights(const struct wan_dit_config *cfg, const char *path, const char *prefix,
		      char *err, size_t errlen)
{
	size_t count;
	int rc = -1;
	struct wan_dit_weight *t = wan_dit_weights_new(cfg, &count); /* owned */
	struct wt_writer *w = wt_writer_new();                        /* owned */
	if (!t || !w) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < count; i++) {
		int64_t n = wan_dit_weight_numel(&t[i]);
		float *v = malloc(sizeof(float) * n);
		char name[128];
		if (!v) {
			snprintf(err, errlen, "out of memory");
			goto done;
		}
		dit_weight_values(t[i].name, v, n);
		snprintf(name, sizeof(name), "%s%s", prefix, t[i].name);
		int r = wt_writer_add(w, name, WT_F32, t[i].ndim, t[i].shape, v, err, errlen);
		free(v);
		if (r)
			goto done;
	}
	rc = wt_writer_save(w, path, err, errlen);
done:
	if (w)
		wt_writer_free(w);
	free(t);
	return rc;
}

double rel_l2(const float *a, const float *b, int64_t n)
{
	double d = 0, r = 0;

	for (int64_t i = 0; i < n; i++) {
		d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		r += (double)b[i] * b[i];
	}
	return sqrt(d / (r > 0 ? r : 1));
}

int run_cli(int (*cmd)(int, char **), const char *const *args)
{
	char *argv[40];
	int argc = 0;

	for (; args[argc] && argc < 39; argc++)
		argv[argc] = (char *)args[argc];
	argv[argc] = NULL;
	return cmd(argc, argv);
}
