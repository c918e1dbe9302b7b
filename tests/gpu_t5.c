/* gpu_t5.c: the CUDA umT5 encoder against the fp32 C reference (and the PyTorch goldens).
 * Exits 77 without a GPU. Prints the relative L2 error of every case.
 *  1. tiny config (fixtures): padded and full prompts, bf16 .pth and fp32 safetensors;
 *  2. a non-prefix mask (the general path);
 *  3. the real umT5-XXL shape with random weights: 2 layers over 512 tokens, and all 24
 *     layers over a 40-token prompt (the C reference on all cores). Target: rel L2 <= 1e-2. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cuda_runtime.h>

#include "cuda/t5_cuda.h"
#include "t5_model.h"
#include "t5_ref.h"
#include "wt_file.h"

#ifndef T5_TOP_SRCDIR
#define T5_TOP_SRCDIR ".."
#endif

#define TOL 1e-2

static int failures;
static char fixdir[4096];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double rel_l2(const float *a, const float *b, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)a[i] - b[i];
		num += d * d;
		den += (double)b[i] * b[i];
	}
	return sqrt(num / (den > 0 ? den : 1));
}

static void check(const char *what, double rel, int zeros_ok)
{
	int ok = rel <= TOL && zeros_ok;
	printf("%s %-52s rel L2 %.3e%s\n", ok ? "PASS" : "FAIL", what, rel, zeros_ok ? "" : " (padded rows not zero)");
	failures += !ok;
}

static int zeros_ok(const float *out, int len, int d, int count)
{
	for (int i = count; i < len; i++)
		for (int j = 0; j < d; j++)
			if (out[(size_t)i * d + j] != 0.0f)
				return 0;
	return 1;
}

/* CUDA vs reference (and vs WANT when given) for one input. */
static void compare_case(const char *what, const struct t5_weights *w, struct t5_cuda *g, const int64_t *ids,
			 const int64_t *mask, int len, const float *want)
{
	char err[512];
	size_t n = (size_t)len * w->cfg.dim;
	float *ref = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
	int count = 0;
	for (int i = 0; i < len; i++)
		count += mask[i] > 0;
	double t0 = now_s();
	if (t5_encode_ref(w, ids, mask, len, 0, ref, err, sizeof(err))) {
		printf("FAIL %s: reference: %s\n", what, err);
		failures++;
		goto out;
	}
	double t1 = now_s();
	if (t5_cuda_encode(g, ids, mask, len, got, err, sizeof(err))) {
		printf("FAIL %s: cuda: %s\n", what, err);
		failures++;
		goto out;
	}
	printf("     (%s: reference %.1f s, cuda call %.1f ms)\n", what, t1 - t0, (now_s() - t1) * 1e3);
	check(what, rel_l2(got, ref, n), zeros_ok(got, len, w->cfg.dim, count));
	if (want) {
		char w2[128];
		snprintf(w2, sizeof(w2), "%s vs PyTorch golden", what);
		check(w2, rel_l2(got, want, n), 1);
	}
out:
	free(ref);
	free(got);
}

static void tiny(const char *weights, const char *ctx_name)
{
	char path[4200], err[512], what[160];
	struct t5_config c;
	struct t5_weights w;
	snprintf(path, sizeof(path), "%s/%s", fixdir, weights);
	struct wt_file *f = wt_open(path, err, sizeof(err));
	snprintf(path, sizeof(path), "%s/t5_tiny_golden.safetensors", fixdir);
	struct wt_file *gf = wt_open(path, err, sizeof(err));
	if (!f || !gf || t5_config_from_file(f, &c, err, sizeof(err)) || t5_weights_init(&w, f, &c, err, sizeof(err))) {
		printf("FAIL tiny %s: %s\n", weights, err);
		failures++;
		wt_close(f);
		wt_close(gf);
		return;
	}
	struct t5_cuda *g = t5_cuda_new(&w, T5_TEXT_LEN, err, sizeof(err));
	if (!g) {
		printf("FAIL tiny: t5_cuda_new: %s\n", err);
		failures++;
	} else {
		int64_t ids[T5_TEXT_LEN], mask[T5_TEXT_LEN], s2[2] = {1, T5_TEXT_LEN}, s3[3] = {1, T5_TEXT_LEN, c.dim};
		const char *cases[2][3] = {{"ids_a", "mask_a", NULL}, {"ids_b", "mask_b", "context_b"}};
		cases[0][2] = ctx_name;
		for (int k = 0; k < 2; k++) {
			if (k == 1 && strcmp(ctx_name, "context_a"))
				break; /* the full-prompt golden is for the fp32 weights */
			wt_read_i64(gf, cases[k][0], 2, s2, ids, err, sizeof(err));
			wt_read_i64(gf, cases[k][1], 2, s2, mask, err, sizeof(err));
			float *want = wt_load_f32(gf, cases[k][2], 3, s3, err, sizeof(err));
			snprintf(what, sizeof(what), "tiny %s %s", weights, cases[k][0]);
			compare_case(what, &w, g, ids, mask, T5_TEXT_LEN, want);
			free(want);
		}
		/* a mask with a hole: the general (non-prefix) path */
		wt_read_i64(gf, "ids_a", 2, s2, ids, err, sizeof(err));
		wt_read_i64(gf, "mask_a", 2, s2, mask, err, sizeof(err));
		mask[5] = 0;
		mask[37] = mask[38] = 1;
		snprintf(what, sizeof(what), "tiny %s non-prefix mask", weights);
		compare_case(what, &w, g, ids, mask, T5_TEXT_LEN, NULL);
		t5_cuda_free(g);
	}
	t5_weights_release(&w);
	wt_close(f);
	wt_close(gf);
}

static void real_shape(int layers, int tokens)
{
	struct t5_config c;
	struct t5_weights w;
	char err[512], what[160];
	t5_config_umt5_xxl(&c);
	c.num_layers = layers;
	double t0 = now_s();
	struct t5_random *r = t5_weights_random(&w, &c, 7, 0, err, sizeof(err));
	if (!r) {
		printf("FAIL real shape: %s\n", err);
		failures++;
		return;
	}
	double t1 = now_s();
	struct t5_cuda *g = t5_cuda_new(&w, T5_TEXT_LEN, err, sizeof(err));
	if (!g) {
		printf("FAIL real shape: t5_cuda_new: %s\n", err);
		failures++;
	} else {
		int64_t ids[T5_TEXT_LEN] = {0}, mask[T5_TEXT_LEN] = {0};
		for (int i = 0; i < tokens; i++) {
			ids[i] = (i == tokens - 1) ? 1 : 3 + ((int64_t)i * 104729) % (c.vocab_size - 3);
			mask[i] = 1;
		}
		printf("     (real shape %d layers: random weights %.1f s, upload %.1f s)\n", layers, t1 - t0, now_s() - t1);
		snprintf(what, sizeof(what), "umT5-XXL shape, %d layers, %d tokens", layers, tokens);
		compare_case(what, &w, g, ids, mask, T5_TEXT_LEN, NULL);
		t5_cuda_free(g);
	}
	t5_weights_release(&w);
	t5_random_free(r);
}

int main(int argc, char **argv)
{
	int n = 0;
	const char *src = getenv("top_srcdir");
	if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
		printf("SKIP: no CUDA device\n");
		return 77;
	}
	/* make check-gpu runs this without the test environment: fall back to the configured source
	 * tree (or argv[1] when the binary was copied elsewhere) */
	if (!src)
		src = argc > 1 ? argv[1] : T5_TOP_SRCDIR;
	snprintf(fixdir, sizeof(fixdir), "%s/tests/fixtures/wan/t5", src);
	tiny("t5_tiny.safetensors", "context_a");
	tiny("t5_tiny_bf16.pth", "context_a_bf16");
	if (!getenv("GPU_T5_QUICK")) {
		real_shape(2, 512);
		real_shape(24, 40);
	}
	printf("gpu_t5: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}
