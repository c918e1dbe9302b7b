/* gpu_kernels.c: single CUDA ops against the C reference (tests/gpu_ref.c): cuBLASLt GEMMs
 * with each epilogue, attention on cuDNN and on the fallback kernel (uniform and ragged key
 * lengths, DiT shapes and odd ones), LayerNorm+modulation, the fused residual+LayerNorm and
 * RMSNorm on their vectorized and plain paths, q/k RMSNorm+RoPE+cache write, each row kernel at
 * 1, 2, 4 and 8 tokens per block and at one warp per token (bitwise equal), the deferred
 * residual against two plain updates (bitwise); the fa3 (wgmma) attention kernel against a float64 reference on sampled
 * rows and against cuDNN on the full S=4 DiT shape. Fresh random inputs each check, outputs
 * poisoned first. Exits 77 without a GPU.
 * `gpu_kernels bench` then times fa3 against cuDNN on the DiT attention shapes; `gpu_kernels
 * rows` runs only the row-kernel checks, `gpu_kernels rowbench` times the row kernels of one
 * S=4 layer in the block and the warp layout (`rowprof`: one call each, for ncu); `gpu_kernels
 * energy` runs each op of one 1.3B 480x832 S=4 layer back to back for a second on random
 * data and prints its time and energy per call (NVML), and their sum over the 30 layers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cuda_runtime.h>
#include "plugins/wan/cuda/attn_cudnn.h"
#include "plugins/wan/cuda/attn_fa3.h"
#include "plugins/wan/cuda/gemm_lt.h"
#include "plugins/wan/cuda/gpu_energy.h"
#include "plugins/wan/wan_clock.h"
#include "plugins/wan/cuda/kernels.h"
#include "tests/gpu_ref.h"

static int failures;
static uint64_t seed = 99;

static void check(const char *what, const float *got, const float *ref, size_t n, double tol)
{
	double e = rel_l2(got, ref, n);

	if (any_nonfinite(got, n) || !(e <= tol)) {
		fprintf(stderr, "FAIL %-50s rel L2 %.3e (<= %.0e)%s\n", what, e, tol,
			any_nonfinite(got, n) ? " non-finite" : "");
		failures++;
	} else {
		printf("ok   %-50s rel L2 %.3e\n", what, e);
	}
}

/* host f32 -> device bf16 (and rounds the host copy so both sides see the same numbers) */
static void *to_dev_bf16(float *h, size_t n)
{
	float *tmp;
	void *d;
	char err[256];

	for (size_t i = 0; i < n; i++)
		h[i] = bf16_round(h[i]);
	cudaMalloc((void **)&tmp, n * 4);
	cudaMalloc(&d, n * 2);
	cudaMemcpy(tmp, h, n * 4, cudaMemcpyHostToDevice);
	wan_k_f32_to_bf16(0, tmp, d, n, err, sizeof(err));
	cudaDeviceSynchronize();
	cudaFree(tmp);
	return d;
}

static void from_dev_bf16(const void *d, float *h, size_t n)
{
	float *tmp;
	char err[256];

	cudaMalloc((void **)&tmp, n * 4);
	wan_k_bf16_to_f32(0, d, tmp, n, err, sizeof(err));
	cudaMemcpy(h, tmp, n * 4, cudaMemcpyDeviceToHost);
	cudaFree(tmp);
}

/* The row kernels' layout in force, for test names: "4 rows/block" or "warp/row". */
static const char *row_mode(void)
{
	static char buf[32];

	if (wan_k_warp_rows(-1))
		return "warp/row";
	snprintf(buf, sizeof(buf), "%d rows/block", wan_k_rows_per_block(0));
	return buf;
}

static void test_gemm(struct wan_gemm *g, int m, int n, int k, enum wan_gemm_epi epi)
{
	float *x = malloc((size_t)m * k * 4), *w = malloc((size_t)n * k * 4), *b = malloc((size_t)n * 4);
	float *y = malloc((size_t)m * n * 4), *r = malloc((size_t)m * n * 4);
	void *dx, *dw, *db, *dy;
	char err[256], what[96];

	fill_uniform(x, (size_t)m * k, &seed, 1.0f);
	fill_uniform(w, (size_t)n * k, &seed, 1.0f / sqrtf((float)k));
	fill_uniform(b, n, &seed, 0.5f);
	dx = to_dev_bf16(x, (size_t)m * k);
	dw = to_dev_bf16(w, (size_t)n * k);
	db = to_dev_bf16(b, n);
	cudaMalloc(&dy, (size_t)m * n * 2);
	cudaMemset(dy, 0xff, (size_t)m * n * 2); /* NaN poison */
	snprintf(what, sizeof(what), "gemm %dx%dx%d epilogue %d", m, n, k, (int)epi);
	if (wan_gemm_bf16(g, 0, m, n, k, dx, k, dw, k, epi == WAN_EPI_NONE ? NULL : db, epi, dy, n,
			  err, sizeof(err)) || cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL %s: %s\n", what, err);
		failures++;
	} else {
		from_dev_bf16(dy, y, (size_t)m * n);
		ref_linear(x, w, epi == WAN_EPI_NONE ? NULL : b, r, m, n, k);
		if (epi == WAN_EPI_BIAS_GELU)
			for (size_t i = 0; i < (size_t)m * n; i++)
				r[i] = ref_gelu_tanh(r[i]);
		check(what, y, r, (size_t)m * n, 1e-2);
	}
	cudaFree(dx); cudaFree(dw); cudaFree(db); cudaFree(dy);
	free(x); free(w); free(b); free(y); free(r);
}

static void test_attn(struct wan_attn *a, int b, int h, int d, int sq, int kv_rows, int ragged,
		      const char *label)
{
	int D = h * d, kvl[8];
	size_t nq = (size_t)b * sq * D, nk = (size_t)b * kv_rows * D;
	float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *o = malloc(nq * 4), *r = malloc(nq * 4);
	void *dq, *dk, *dv, *dO;
	int *dkv = NULL;
	char err[256], what[128];
	struct wan_attn_shape s = {.b = b, .h = h, .d = d, .sq = sq, .skv = kv_rows,
				   .q_bstride = (int64_t)sq * D, .q_sstride = D,
				   .kv_bstride = (int64_t)kv_rows * D, .kv_sstride = D,
				   .o_bstride = (int64_t)sq * D, .o_sstride = D,
				   .scale = 1.0f / sqrtf((float)d)};
	int rc;

	fill_uniform(q, nq, &seed, 2.0f);
	fill_uniform(k, nk, &seed, 2.0f);
	fill_uniform(v, nk, &seed, 1.0f);
	dq = to_dev_bf16(q, nq);
	dk = to_dev_bf16(k, nk);
	dv = to_dev_bf16(v, nk);
	cudaMalloc(&dO, nq * 2);
	cudaMemset(dO, 0xff, nq * 2);
	for (int i = 0; i < b; i++)
		kvl[i] = ragged ? kv_rows - (i * kv_rows) / (2 * b) : kv_rows;
	if (ragged) {
		cudaMalloc((void **)&dkv, sizeof(kvl));
		cudaMemcpy(dkv, kvl, sizeof(kvl), cudaMemcpyHostToDevice);
		rc = wan_attn_run_ragged(a, 0, &s, dkv, dq, dk, dv, dO, err, sizeof(err));
	} else {
		rc = wan_attn_run(a, 0, &s, dq, dk, dv, dO, err, sizeof(err));
	}
	{
		char how[32];
		int split = ragged ? 0 : wan_attn_split(a, &s);

		if (!ragged && wan_attn_uses_cudnn(a, &s) == 2)
			snprintf(how, sizeof(how), "fa3");
		else if (split > 1)
			snprintf(how, sizeof(how), "cuDNN, keys split %d", split);
		else
			snprintf(how, sizeof(how), "%s", split ? "cuDNN" : "fallback");
		snprintf(what, sizeof(what), "attention %s b%d h%d d%d sq%d kv%d%s [%s]", label, b, h, d, sq,
			 kv_rows, ragged ? " ragged" : "", how);
	}
	if (rc || cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL %s: %s\n", what, rc ? err : cudaGetErrorString(cudaGetLastError()));
		failures++;
	} else {
		from_dev_bf16(dO, o, nq);
		ref_attention(q, k, v, r, b, h, d, sq, kv_rows, kvl, s.scale);
		check(what, o, r, nq, 1e-2);
	}
	cudaFree(dq); cudaFree(dk); cudaFree(dv); cudaFree(dO);
	if (dkv)
		cudaFree(dkv);
	free(q); free(k); free(v); free(o); free(r);
}

/* One query row of one head against keys [0, skv), in double. */
static void ref_attn_row(const float *q, const float *k, const float *v, int D, int d, int sq,
			 int kv_rows, int skv, int bb, int hh, int row, float scale, float *out)
{
	const float *qr = q + ((size_t)bb * sq + row) * D + (size_t)hh * d;
	double *w = malloc((size_t)skv * sizeof(double)), mx = -1e300, sum = 0, acc[128] = {0};

	for (int j = 0; j < skv; j++) {
		const float *kr = k + ((size_t)bb * kv_rows + j) * D + (size_t)hh * d;
		double dot = 0;

		for (int c = 0; c < d; c++)
			dot += (double)qr[c] * kr[c];
		w[j] = dot * scale;
		if (w[j] > mx)
			mx = w[j];
	}
	for (int j = 0; j < skv; j++) {
		const float *vr = v + ((size_t)bb * kv_rows + j) * D + (size_t)hh * d;

		w[j] = exp(w[j] - mx);
		sum += w[j];
		for (int c = 0; c < d; c++)
			acc[c] += w[j] * vr[c];
	}
	for (int c = 0; c < d; c++)
		out[c] = (float)(acc[c] / sum);
	free(w);
}

/* fa3 on random bf16 inputs: every output row written (NaN poison), nothing written past the
 * last row (guard rows), sampled rows of every head against the float64 reference. Cache rows
 * past skv hold large values, so reading them (or the next batch entry) as keys shows. */
static void test_fa3(int b, int h, int sq, int skv, int kv_rows, int split, int bn, const char *label)
{
	int D = h * 128, guard = 64, rows[24], nrows = 0;
	size_t nq = (size_t)b * sq * D, nk = (size_t)b * kv_rows * D, no = nq + (size_t)guard * D;
	float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *o = malloc(no * 4);
	float *got = NULL, *ref = NULL;
	uint16_t *raw = malloc(no * 2);
	void *dq, *dk, *dv, *dO, *opart = NULL;
	float *lse = NULL;
	char err[256], what[128];
	struct wan_attn_shape s = {.b = b, .h = h, .d = 128, .sq = sq, .skv = skv,
				   .q_bstride = (int64_t)sq * D, .q_sstride = D,
				   .kv_bstride = (int64_t)kv_rows * D, .kv_sstride = D,
				   .o_bstride = (int64_t)sq * D, .o_sstride = D,
				   .scale = 1.0f / sqrtf(128.0f)};
	int bad_guard = 0, nonfinite = 0, n = 0;

	snprintf(what, sizeof(what), "fa3/%d %s b%d h%d sq%d skv%d (cache %d), split %d", bn, label, b, h,
		 sq, skv, kv_rows, split);
	if (!wan_attn_fa3_supported(&s, err, sizeof(err))) {
		printf("skip %-50s %s\n", what, err);
		free(q); free(k); free(v); free(o); free(raw);
		return;
	}
	fill_uniform(q, nq, &seed, 2.0f);
	fill_uniform(k, nk, &seed, 2.0f);
	fill_uniform(v, nk, &seed, 1.0f);
	for (int bb = 0; bb < b; bb++)
		for (size_t i = (size_t)skv * D; i < (size_t)kv_rows * D; i++) {
			k[(size_t)bb * kv_rows * D + i] = 8.0f;
			v[(size_t)bb * kv_rows * D + i] = 30.0f;
		}
	dq = to_dev_bf16(q, nq);
	dk = to_dev_bf16(k, nk);
	dv = to_dev_bf16(v, nk);
	cudaMalloc(&dO, no * 2);
	cudaMemset(dO, 0xff, no * 2);
	{
		int sms = 0;
		size_t tl, tb;

		cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
		tb = wan_attn_fa3_tail_scratch(sms, &tl);
		if (tb < nq * 4 * 2)
			tb = nq * 4 * 2;
		if (tl < (size_t)b * 4 * h * sq * 4)
			tl = (size_t)b * 4 * h * sq * 4;
		cudaMalloc(&opart, tb);
		cudaMalloc((void **)&lse, tl);
		cudaMemset(opart, 0xff, tb);
		cudaMemset(lse, 0xff, tl);
	}
	/* split < 0: only the last wave's units, in -split parts */
	if ((split > 0 ? wan_attn_fa3_split(0, &s, split, bn, dq, dk, dv, opart, lse, dO, err, sizeof(err))
		       : wan_attn_fa3_tail(0, &s, -split, bn, dq, dk, dv, opart, lse, dO, err, sizeof(err))) ||
	    cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL %s: %s\n", what, err);
		failures++;
		goto out;
	}
	cudaMemcpy(raw, dO, no * 2, cudaMemcpyDeviceToHost);
	for (size_t i = nq; i < no; i++)
		bad_guard |= raw[i] != 0xffff;
	from_dev_bf16(dO, o, nq);
	nonfinite = any_nonfinite(o, nq);
	/* first and last rows of tiles and of the sequence, and a spread in between */
	{
		int cand[] = {0, 1, 63, 64, 127, 128, sq - 1, sq - 2, sq / 2, sq - 65};

		for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
			if (cand[i] >= 0 && cand[i] < sq)
				rows[nrows++] = cand[i];
		for (int i = 0; i < 8; i++)
			rows[nrows++] = (int)(((uint64_t)(i + 1) * 2654435761u) % (uint64_t)sq);
	}
	got = malloc((size_t)b * nrows * D * 4);
	ref = malloc((size_t)b * nrows * D * 4);
	for (int bb = 0; bb < b; bb++)
		for (int ri = 0; ri < nrows; ri++)
			for (int hh = 0; hh < h; hh++, n++) {
				ref_attn_row(q, k, v, D, 128, sq, kv_rows, skv, bb, hh, rows[ri], s.scale,
					     ref + (size_t)n * 128);
				memcpy(got + (size_t)n * 128, o + ((size_t)bb * sq + rows[ri]) * D + (size_t)hh * 128,
				       128 * 4);
			}
	if (bad_guard || nonfinite) {
		fprintf(stderr, "FAIL %s: %s\n", what,
			bad_guard ? "wrote past the last query row" : "some outputs not written (NaN poison left)");
		failures++;
	} else {
		check(what, got, ref, (size_t)n * 128, 1e-2);
	}
out:
	cudaFree(dq); cudaFree(dk); cudaFree(dv); cudaFree(dO); cudaFree(opart); cudaFree(lse);
	free(q); free(k); free(v); free(o); free(raw); free(got); free(ref);
}

/* fa3 and cuDNN on the full 1.3B 480x832 S=4 self-attention (4 slots, 6-frame caches). */
static void test_fa3_vs_cudnn(struct wan_attn *dnn, int b, int h, int sq, int skv)
{
	int D = h * 128;
	size_t nq = (size_t)b * sq * D, nk = (size_t)b * skv * D;
	float *x = malloc((nk > nq ? nk : nq) * 4), *o1 = malloc(nq * 4), *o2 = malloc(nq * 4);
	void *dq, *dk, *dv, *d1, *d2;
	char err[256], what[128];
	struct wan_attn_shape s = {.b = b, .h = h, .d = 128, .sq = sq, .skv = skv,
				   .q_bstride = (int64_t)sq * D, .q_sstride = D,
				   .kv_bstride = (int64_t)skv * D, .kv_sstride = D,
				   .o_bstride = (int64_t)sq * D, .o_sstride = D,
				   .scale = 1.0f / sqrtf(128.0f)};

	snprintf(what, sizeof(what), "fa3 vs cuDNN b%d h%d sq%d skv%d (all outputs)", b, h, sq, skv);
	if (!wan_attn_fa3_supported(&s, err, sizeof(err))) {
		printf("skip %-50s %s\n", what, err);
		free(x); free(o1); free(o2);
		return;
	}
	fill_uniform(x, nq, &seed, 2.0f);
	dq = to_dev_bf16(x, nq);
	fill_uniform(x, nk, &seed, 2.0f);
	dk = to_dev_bf16(x, nk);
	fill_uniform(x, nk, &seed, 1.0f);
	dv = to_dev_bf16(x, nk);
	cudaMalloc(&d1, nq * 2);
	cudaMalloc(&d2, nq * 2);
	cudaMemset(d1, 0xff, nq * 2);
	cudaMemset(d2, 0xff, nq * 2);
	if (wan_attn_fa3(0, &s, dq, dk, dv, d1, err, sizeof(err)) ||
	    wan_attn_run(dnn, 0, &s, dq, dk, dv, d2, err, sizeof(err)) || cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL %s: %s\n", what, err);
		failures++;
	} else {
		from_dev_bf16(d1, o1, nq);
		from_dev_bf16(d2, o2, nq);
		check(what, o1, o2, nq, 1e-2);
	}
	cudaFree(dq); cudaFree(dk); cudaFree(dv); cudaFree(d1); cudaFree(d2);
	free(x); free(o1); free(o2);
}

/* `gpu_kernels bench`: fa3 and cuDNN (its chosen plan, key split included) on the DiT shapes. */
static void bench_attn(struct wan_attn *dnn, const char *name, int b, int h, int sq, int skv)
{
	int D = h * 128, reps = 20;
	size_t nq = (size_t)b * sq * D, nk = (size_t)b * skv * D;
	void *dq = NULL, *dk = NULL, *dv = NULL, *dO = NULL;
	struct wan_attn_shape s = {.b = b, .h = h, .d = 128, .sq = sq, .skv = skv,
				   .q_bstride = (int64_t)sq * D, .q_sstride = D,
				   .kv_bstride = (int64_t)skv * D, .kv_sstride = D,
				   .o_bstride = (int64_t)sq * D, .o_sstride = D,
				   .scale = 1.0f / sqrtf(128.0f)};
	double flop = 4.0 * b * h * (double)sq * skv * 128;
	float ms[2] = {-1.0f, -1.0f}, msplit[3][5];
	void *opart = NULL;
	float *lse = NULL;
	char err[256];
	cudaEvent_t e0, e1;

	cudaEventCreate(&e0);
	cudaEventCreate(&e1);
	if (cudaMalloc(&dq, nq * 2) || cudaMalloc(&dk, nk * 2) || cudaMalloc(&dv, nk * 2) || cudaMalloc(&dO, nq * 2)) {
		printf("bench %s: out of device memory\n", name);
		goto out;
	}
	{
		int sms = 0;
		size_t tl, tb;

		cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
		tb = wan_attn_fa3_tail_scratch(sms, &tl);
		cudaMalloc(&opart, tb > nq * 4 * 2 ? tb : nq * 4 * 2);
		cudaMalloc((void **)&lse, tl > (size_t)b * 4 * h * sq * 4 ? tl : (size_t)b * 4 * h * sq * 4);
	}
	cudaMemset(dq, 0x3c, nq * 2);
	cudaMemset(dk, 0x3b, nk * 2);
	cudaMemset(dv, 0x3c, nk * 2);
	for (int which = 0; which < 2; which++) {
		int ok = 1;

		for (int r = -2; r < reps && ok; r++) {
			if (r == 0)
				cudaEventRecord(e0, 0);
			ok = !(which ? wan_attn_run(dnn, 0, &s, dq, dk, dv, dO, err, sizeof(err))
				     : wan_attn_fa3(0, &s, dq, dk, dv, dO, err, sizeof(err)));
		}
		cudaEventRecord(e1, 0);
		if (ok && cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms[which], e0, e1) == cudaSuccess)
			ms[which] /= reps;
		else
			printf("bench %s %s: %s\n", name, which ? "cuDNN" : "fa3", ok ? "timing failed" : err);
	}
	printf("bench %-28s b%d h%-2d sq%-5d skv%-5d %6.1f GFLOP  fa3 %7.3f ms %6.1f TFLOP/s  cuDNN %7.3f ms %6.1f TFLOP/s (split %d)\n",
	       name, b, h, sq, skv, flop / 1e9, ms[0], ms[0] > 0 ? flop / ms[0] / 1e9 : 0.0, ms[1],
	       ms[1] > 0 ? flop / ms[1] / 1e9 : 0.0, wan_attn_split(dnn, &s));
	for (int t = 0; t < 3; t++)
		for (int si = 0; si < 5 && opart && lse; si++) {
			int ok = 1, bn = t == 2 ? 192 : t ? 176 : 128;

			msplit[t][si] = -1.0f;
			for (int r = -2; r < reps && ok; r++) {
				if (r == 0)
					cudaEventRecord(e0, 0);
				ok = !(si < 3 ? wan_attn_fa3_split(0, &s, 1 << si, bn, dq, dk, dv, opart, lse, dO, err,
								   sizeof(err))
					      : wan_attn_fa3_tail(0, &s, si == 3 ? 2 : 4, bn, dq, dk, dv, opart, lse, dO, err,
								  sizeof(err)));
			}
			cudaEventRecord(e1, 0);
			if (ok && cudaEventSynchronize(e1) == cudaSuccess &&
			    cudaEventElapsedTime(&msplit[t][si], e0, e1) == cudaSuccess)
				msplit[t][si] /= reps;
			cudaGetLastError();
		}
	for (int t = 0; t < 3; t++)
		printf("      fa3 tile %d, keys in 1 / 2 / 4 parts: %7.3f / %7.3f / %7.3f ms; last wave in 2 / 4 parts: %7.3f / %7.3f ms\n",
		       t == 2 ? 192 : t ? 176 : 128, msplit[t][0], msplit[t][1], msplit[t][2], msplit[t][3], msplit[t][4]);
out:
	cudaFree(dq); cudaFree(dk); cudaFree(dv); cudaFree(dO); cudaFree(opart); cudaFree(lse);
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
}

/* ---- `gpu_kernels energy` ---- */

struct eop {
	const char *name;
	int per_layer;   /* how often one DiT layer runs it */
	double flop;     /* per call, 0 for memory-bound ops */
	int kind;        /* 0 fa3 self, 1 cuDNN cross, 2 GEMM, 3 the five row kernels */
	int m, n, k, epi; /* kind 0: m = key tile (0: the default); kind 3: m = 1 one warp per row */
};

struct ebuf {
	struct wan_gemm *g;
	struct wan_attn *dnn;
	struct wan_attn_shape self, cross;
	void *q, *k, *v, *o, *ck, *cv, *x, *w, *bias, *y;
	/* rows: 3 sets used in turn so that a call finds little in L2, as in the DiT */
	float *rx[3], *mv, *gb, *rope;
	void *ry[3], *ry2[3], *rout[3], *rqkv[3], *rkc[3], *rvc[3];
	int *sf, *wr, turn;
};

static int eop_run(struct ebuf *b, const struct eop *op, char *err, size_t n)
{
	const int B = 4, L = 1560, T = B * L, D = 1536;
	int i = b->turn++ % 3;

	switch (op->kind) {
	case 0:
		return wan_attn_fa3_split(0, &b->self, 1, op->m, b->q, b->k, b->v, NULL, NULL, b->o, err, n);
	case 1:
		return wan_attn_run(b->dnn, 0, &b->cross, b->q, b->ck, b->cv, b->o, err, n);
	case 2:
		return wan_gemm_bf16(b->g, 0, op->m, op->n, op->k, b->x, op->k, b->w, op->k,
				     op->epi == WAN_EPI_NONE ? NULL : b->bias, (enum wan_gemm_epi)op->epi, b->y, op->n,
				     err, n);
	default:
		wan_k_warp_rows(op->m);
		return wan_k_res_ln2(0, b->rx[i], 1, b->ry[i], b->mv, 2, b->ry2[i], b->rout[i], b->mv, 6, 3, 4, NULL, NULL,
				     T, D, L, L, 1e-6f, err, n) ||
		       wan_k_res_ln(0, b->rx[i], b->ry[i], b->mv, 5, b->rout[i], b->mv, 6, 0, 1, NULL, NULL, T, D, L, L,
				    1e-6f, err, n) ||
		       wan_k_res_ln2(0, b->rx[i], 0, b->ry[i], b->mv, 2, NULL, b->rout[i], NULL, 0, 0, 0, b->gb,
				     b->gb + D, T, D, L, L, 1e-6f, err, n) ||
		       wan_k_qkv_rope_cache(0, b->rqkv[i], b->rout[i], b->rkc[i], b->rvc[i], (int64_t)6 * L * D, T, D, 128,
					    L, L, 52, b->gb, b->gb + D, b->rope, b->sf, b->wr, 1e-6f, err, n) ||
		       wan_k_rmsnorm(0, b->ry[i], D, b->rout[i], T, D, b->gb + 2 * D, 1e-6f, err, n);
	}
}

/* Each op of one 1.3B 480x832 S=4 layer on random data, back to back: 0.3 s of warm-up, then
 * calls for about a second between two readings of the energy counter. Sustained like this,
 * the compute-bound ops run at the GPU's power limit, as the DiT's back-to-back calls do. */
static void energy_layer(struct wan_gemm *g, struct wan_attn *dnn)
{
	const int B = 4, L = 1560, T = B * L, D = 1536, F = 8960, kvr = 6 * L;
	struct eop ops[] = {
		{"self-attention (fa3, default tile)", 1, 4.0 * B * 12 * (double)L * kvr * 128, 0, 0, 0, 0, 0},
		{"self-attention (fa3, key tile 128)", 0, 4.0 * B * 12 * (double)L * kvr * 128, 0, 128, 0, 0, 0},
		{"self-attention (fa3, key tile 176)", 0, 4.0 * B * 12 * (double)L * kvr * 128, 0, 176, 0, 0, 0},
		{"cross-attention (cuDNN)", 1, 4.0 * B * 12 * (double)L * 512 * 128, 1, 0, 0, 0, 0},
		{"QKV GEMM +bias", 1, 2.0 * T * 3 * D * D, 2, T, 3 * D, D, WAN_EPI_BIAS},
		{"O / cross-q / cross-o GEMM +bias", 3, 2.0 * T * D * D, 2, T, D, D, WAN_EPI_BIAS},
		{"FFN up GEMM +bias+GELU", 1, 2.0 * T * F * D, 2, T, F, D, WAN_EPI_BIAS_GELU},
		{"FFN up GEMM +bias (no GELU)", 0, 2.0 * T * F * D, 2, T, F, D, WAN_EPI_BIAS},
		{"FFN down GEMM +bias", 1, 2.0 * T * D * F, 2, T, D, F, WAN_EPI_BIAS},
		{"row kernels (5 per layer, warp/row)", 1, 0, 3, 1, 0, 0, 0},
		{"row kernels (5 per layer, blocks)", 0, 0, 3, 0, 0, 0, 0},
	};
	struct ebuf b = {.g = g, .dnn = dnn};
	struct wan_energy en;
	size_t nq = (size_t)T * D, nkv = (size_t)B * kvr * D, nx = (size_t)T * F;
	double sum_j = 0, sum_ms = 0;
	char err[256];
	int saved_warp = wan_k_warp_rows(-1), ok = 1, h_sf[4] = {5, 5, 5, 5}, h_wr[4] = {5 * L, 5 * L, 5 * L, 5 * L};

	if (wan_energy_open(&en)) {
		printf("energy: NVML is not available here (libnvidia-ml.so.1)\n");
		return;
	}
	b.self = (struct wan_attn_shape){.b = B, .h = 12, .d = 128, .sq = L, .skv = kvr,
					 .q_bstride = (int64_t)L * D, .q_sstride = D,
					 .kv_bstride = (int64_t)kvr * D, .kv_sstride = D,
					 .o_bstride = (int64_t)L * D, .o_sstride = D, .scale = 1.0f / sqrtf(128.0f)};
	b.cross = b.self;
	b.cross.skv = 512;
	b.cross.kv_bstride = (int64_t)512 * D;
	ok = !cudaMalloc(&b.q, nq * 2) && !cudaMalloc(&b.k, nkv * 2) && !cudaMalloc(&b.v, nkv * 2) &&
	     !cudaMalloc(&b.o, nq * 2) && !cudaMalloc(&b.ck, (size_t)B * 512 * D * 2) &&
	     !cudaMalloc(&b.cv, (size_t)B * 512 * D * 2) && !cudaMalloc(&b.x, nx * 2) &&
	     !cudaMalloc(&b.w, (size_t)F * D * 2) && !cudaMalloc(&b.bias, (size_t)F * 2) && !cudaMalloc(&b.y, nx * 2) &&
	     !cudaMalloc((void **)&b.mv, (size_t)B * 6 * D * 4) && !cudaMalloc((void **)&b.gb, (size_t)4 * D * 4) &&
	     !cudaMalloc((void **)&b.rope, (size_t)1024 * 64 * 8) && !cudaMalloc((void **)&b.sf, sizeof(h_sf)) &&
	     !cudaMalloc((void **)&b.wr, sizeof(h_wr));
	for (int i = 0; i < 3 && ok; i++)
		ok = !cudaMalloc((void **)&b.rx[i], nq * 4) && !cudaMalloc(&b.ry[i], nq * 2) &&
		     !cudaMalloc(&b.ry2[i], nq * 2) && !cudaMalloc(&b.rout[i], nq * 2) &&
		     !cudaMalloc(&b.rqkv[i], nq * 6) && !cudaMalloc(&b.rkc[i], nkv * 2) && !cudaMalloc(&b.rvc[i], nkv * 2);
	if (!ok) {
		printf("energy: out of device memory\n");
		return;
	}
	/* random operands everywhere (constant ones would draw less power) */
	wan_k_fill_uniform_bf16(0, b.q, nq, 1, 2.0f, err, sizeof(err));
	wan_k_fill_uniform_bf16(0, b.k, nkv, 2, 2.0f, err, sizeof(err));
	wan_k_fill_uniform_bf16(0, b.v, nkv, 3, 1.0f, err, sizeof(err));
	wan_k_fill_uniform_bf16(0, b.ck, (size_t)B * 512 * D, 4, 2.0f, err, sizeof(err));
	wan_k_fill_uniform_bf16(0, b.cv, (size_t)B * 512 * D, 5, 1.0f, err, sizeof(err));
	wan_k_fill_uniform_bf16(0, b.x, nx, 6, 1.0f, err, sizeof(err));
	wan_k_fill_uniform_bf16(0, b.w, (size_t)F * D, 7, 1.0f / sqrtf((float)D), err, sizeof(err));
	wan_k_fill_uniform_bf16(0, b.bias, F, 8, 0.5f, err, sizeof(err));
	wan_k_fill_uniform_f32(0, b.mv, (size_t)B * 6 * D, 41, 0.0f, 0.5f, err, sizeof(err));
	wan_k_fill_uniform_f32(0, b.gb, (size_t)4 * D, 42, 1.0f, 0.5f, err, sizeof(err));
	wan_k_fill_uniform_f32(0, b.rope, (size_t)1024 * 64 * 2, 43, 0.0f, 1.0f, err, sizeof(err));
	for (int i = 0; i < 3; i++) {
		wan_k_fill_uniform_f32(0, b.rx[i], nq, 1 + i, 0.0f, 2.0f, err, sizeof(err));
		wan_k_fill_uniform_bf16(0, b.ry[i], nq, 11 + i, 1.0f, err, sizeof(err));
		wan_k_fill_uniform_bf16(0, b.ry2[i], nq, 21 + i, 1.0f, err, sizeof(err));
		wan_k_fill_uniform_bf16(0, b.rqkv[i], nq * 3, 31 + i, 1.0f, err, sizeof(err));
	}
	cudaMemcpy(b.sf, h_sf, sizeof(h_sf), cudaMemcpyHostToDevice);
	cudaMemcpy(b.wr, h_wr, sizeof(h_wr), cudaMemcpyHostToDevice);
	cudaDeviceSynchronize();
	{
		double mj0 = wan_energy_mj(&en), t0 = wan_now_ms(), mj1;
		struct timespec one = {1, 0};

		nanosleep(&one, NULL);
		mj1 = wan_energy_mj(&en);
		printf("energy: 1.3B 480x832 S=4 layer ops, random data, %s; power limit %.0f W; idle %.0f W\n",
		       "back to back for ~1 s each", en.limit_mw / 1000.0, (mj1 - mj0) / (wan_now_ms() - t0));
	}
	printf("energy %-34s %9s %9s %8s %6s %9s %8s %12s\n", "op", "ms/call", "J/call", "W", "MHz", "TFLOP/s",
	       "pJ/FLOP", "J per call x30");
	for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
		double t0 = wan_now_ms(), mj0 = -1, t1 = 0, mj1;
		long calls = 0;
		unsigned int mhz = 0;

		ok = 1;
		/* warm-up (tuning, plans, clock), then ~1 s measured in batches of 8 calls */
		while (ok && wan_now_ms() - t0 < 300)
			for (int r = 0; r < 8 && ok; r++)
				ok = !eop_run(&b, &ops[o], err, sizeof(err));
		cudaDeviceSynchronize();
		mj0 = wan_energy_mj(&en);
		t0 = wan_now_ms();
		while (ok && wan_now_ms() - t0 < 1000) {
			for (int r = 0; r < 8 && ok; r++, calls++)
				ok = !eop_run(&b, &ops[o], err, sizeof(err));
			cudaDeviceSynchronize();
		}
		mhz = wan_energy_sm_mhz(&en);
		mj1 = wan_energy_mj(&en);
		t1 = wan_now_ms() - t0;
		if (!ok || calls == 0 || mj0 < 0 || mj1 < mj0) {
			printf("energy %-34s failed: %s\n", ops[o].name, ok ? "no energy reading" : err);
			continue;
		}
		{
			double ms = t1 / calls, j = (mj1 - mj0) / 1e3 / calls;

			printf("energy %-34s %9.4f %9.4f %8.0f %6u %9.1f %8.2f %12.2f\n", ops[o].name, ms, j,
			       (mj1 - mj0) / t1, mhz, ops[o].flop > 0 ? ops[o].flop / ms / 1e9 : 0.0,
			       ops[o].flop > 0 ? j / ops[o].flop * 1e12 : 0.0, 30.0 * ops[o].per_layer * j);
			sum_j += 30.0 * ops[o].per_layer * j;
			sum_ms += 30.0 * ops[o].per_layer * ms;
		}
	}
	wan_k_warp_rows(saved_warp);
	printf("energy %-34s %9.2f ms %8.2f J   (30 layers x the per-layer counts; the head, patch embedding and\n"
	       "       the time embedding are left out)\n", "sum over one S=4 call", sum_ms, sum_j);
	cudaFree(b.q); cudaFree(b.k); cudaFree(b.v); cudaFree(b.o); cudaFree(b.ck); cudaFree(b.cv);
	cudaFree(b.x); cudaFree(b.w); cudaFree(b.bias); cudaFree(b.y); cudaFree(b.mv); cudaFree(b.gb);
	cudaFree(b.rope); cudaFree(b.sf); cudaFree(b.wr);
	for (int i = 0; i < 3; i++) {
		cudaFree(b.rx[i]); cudaFree(b.ry[i]); cudaFree(b.ry2[i]); cudaFree(b.rout[i]); cudaFree(b.rqkv[i]);
		cudaFree(b.rkc[i]); cudaFree(b.rvc[i]);
	}
}

/* `gpu_kernels rowbench` (and `rowprof`, one call of each for a profiler): the row kernels of
 * one 1.3B 480x832 S=4 layer (6240 tokens of D = 1536, 4 slots of one frame, 6-frame caches),
 * block and warp layouts, default cache hints. NSETS copies of every buffer are used in turn,
 * so a call finds little of its input in L2 (as in the DiT, where GEMMs run in between).
 * Prints us per call (mean of 20 back-to-back calls) and the bytes moved per second. */
#define NSETS 3
static void bench_rows(int prof)
{
	const int B = 4, L = 1560, T = B * L, D = 1536, kvr = 6 * L, w2 = 52;
	size_t nx = (size_t)T * D, nc = (size_t)B * kvr * D;
	float *x[NSETS], *mv, *gb, *rope;
	void *y[NSETS], *y2[NSETS], *out[NSETS], *qkv[NSETS], *kc[NSETS], *vc[NSETS];
	int *sf, *wr, h_sf[4] = { 5, 5, 5, 5 }, h_wr[4] = { 5 * L, 5 * L, 5 * L, 5 * L }, reps = prof ? 1 : 20;
	int saved_warp = wan_k_warp_rows(-1);
	char err[256];
	cudaEvent_t e0, e1;
	static const char *names[5] = { "res+LN after cross-attn (14·D)", "res+LN after FFN (12·D)",
					"norm3 res+LN, x not stored (8·D)", "q/k RMSNorm+RoPE+cache (12·D)",
					"cross-q RMSNorm (4·D)" };
	static const int bytes[5] = { 14, 12, 8, 12, 4 };

	cudaEventCreate(&e0);
	cudaEventCreate(&e1);
	for (int i = 0; i < NSETS; i++) {
		if (cudaMalloc((void **)&x[i], nx * 4) || cudaMalloc(&y[i], nx * 2) || cudaMalloc(&y2[i], nx * 2) ||
		    cudaMalloc(&out[i], nx * 2) || cudaMalloc(&qkv[i], nx * 6) || cudaMalloc(&kc[i], nc * 2) ||
		    cudaMalloc(&vc[i], nc * 2)) {
			printf("rowbench: out of device memory\n");
			return;
		}
		wan_k_fill_uniform_f32(0, x[i], nx, 1 + i, 0.0f, 2.0f, err, sizeof(err));
		wan_k_fill_uniform_bf16(0, y[i], nx, 11 + i, 1.0f, err, sizeof(err));
		wan_k_fill_uniform_bf16(0, y2[i], nx, 21 + i, 1.0f, err, sizeof(err));
		wan_k_fill_uniform_bf16(0, qkv[i], nx * 3, 31 + i, 1.0f, err, sizeof(err));
	}
	cudaMalloc((void **)&mv, (size_t)B * 6 * D * 4);
	cudaMalloc((void **)&gb, (size_t)4 * D * 4);
	cudaMalloc((void **)&rope, (size_t)1024 * 64 * 8);
	cudaMalloc((void **)&sf, sizeof(h_sf));
	cudaMalloc((void **)&wr, sizeof(h_wr));
	wan_k_fill_uniform_f32(0, mv, (size_t)B * 6 * D, 41, 0.0f, 0.5f, err, sizeof(err));
	wan_k_fill_uniform_f32(0, gb, (size_t)4 * D, 42, 1.0f, 0.5f, err, sizeof(err));
	wan_k_fill_uniform_f32(0, rope, (size_t)1024 * 64 * 2, 43, 0.0f, 1.0f, err, sizeof(err));
	cudaMemcpy(sf, h_sf, sizeof(h_sf), cudaMemcpyHostToDevice);
	cudaMemcpy(wr, h_wr, sizeof(h_wr), cudaMemcpyHostToDevice);
	cudaDeviceSynchronize();
	printf("rowbench: 1.3B 480x832 S=4 layer, %d tokens x %d, %d buffer sets in turn, hints %d\n", T, D,
	       NSETS, wan_k_hints(-1));
	for (int k = 0; k < 5; k++) {
		float ms[2] = { -1.0f, -1.0f };

		for (int mode = 0; mode < 2; mode++) { /* block, warp */
			int ok = 1;

			wan_k_warp_rows(mode);
			for (int r = prof ? 0 : -3; r < (prof ? 1 : reps * NSETS) && ok; r++) {
				int i = (r + 3) % NSETS;

				if (r == 0)
					cudaEventRecord(e0, 0);
				switch (k) {
				case 0:
					ok = !wan_k_res_ln2(0, x[i], 1, y[i], mv, 2, y2[i], out[i], mv, 6, 3, 4, NULL, NULL, T,
							    D, L, L, 1e-6f, err, sizeof(err));
					break;
				case 1:
					ok = !wan_k_res_ln(0, x[i], y[i], mv, 5, out[i], mv, 6, 0, 1, NULL, NULL, T, D, L, L,
							   1e-6f, err, sizeof(err));
					break;
				case 2:
					ok = !wan_k_res_ln2(0, x[i], 0, y[i], mv, 2, NULL, out[i], NULL, 0, 0, 0, gb, gb + D,
							    T, D, L, L, 1e-6f, err, sizeof(err));
					break;
				case 3:
					ok = !wan_k_qkv_rope_cache(0, qkv[i], out[i], kc[i], vc[i], (int64_t)kvr * D, T, D,
								   128, L, L, w2, gb, gb + D, rope, sf, wr, 1e-6f, err,
								   sizeof(err));
					break;
				default:
					ok = !wan_k_rmsnorm(0, y[i], D, out[i], T, D, gb + 2 * D, 1e-6f, err, sizeof(err));
					break;
				}
			}
			cudaEventRecord(e1, 0);
			if (ok && cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms[mode], e0, e1) == cudaSuccess)
				ms[mode] /= prof ? 1 : reps * NSETS;
			else
				printf("rowbench %s: %s\n", names[k], ok ? "timing failed" : err);
		}
		printf("rowbench %-34s block (%d rows) %7.2f us %5.2f TB/s   warp/row %7.2f us %5.2f TB/s\n",
		       names[k], wan_k_rows_per_block(0), ms[0] * 1e3, ms[0] > 0 ? bytes[k] * (double)nx / ms[0] / 1e9 : 0.0,
		       ms[1] * 1e3, ms[1] > 0 ? bytes[k] * (double)nx / ms[1] / 1e9 : 0.0);
	}
	wan_k_warp_rows(saved_warp);
	for (int i = 0; i < NSETS; i++) {
		cudaFree(x[i]); cudaFree(y[i]); cudaFree(y2[i]); cudaFree(out[i]); cudaFree(qkv[i]);
		cudaFree(kc[i]); cudaFree(vc[i]);
	}
	cudaFree(mv); cudaFree(gb); cudaFree(rope); cudaFree(sf); cudaFree(wr);
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
}

static void test_ln_mod(int b, int fr, int l, int d)
{
	int n = fr * l, t = b * n, m = b * fr;
	float *x = malloc((size_t)t * d * 4), *mod = malloc(6 * (size_t)d * 4), *emb = malloc((size_t)m * 6 * d * 4);
	float *y = malloc((size_t)t * d * 4), *r = malloc((size_t)t * d * 4);
	float *dx, *dmod, *demb;
	void *dy;
	char err[256];

	fill_uniform(x, (size_t)t * d, &seed, 3.0f);
	fill_uniform(mod, 6 * (size_t)d, &seed, 0.3f);
	fill_uniform(emb, (size_t)m * 6 * d, &seed, 0.3f);
	cudaMalloc((void **)&dx, (size_t)t * d * 4);
	cudaMalloc((void **)&dmod, 6 * (size_t)d * 4);
	cudaMalloc((void **)&demb, (size_t)m * 6 * d * 4);
	cudaMalloc(&dy, (size_t)t * d * 2);
	cudaMemcpy(dx, x, (size_t)t * d * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(dmod, mod, 6 * (size_t)d * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(demb, emb, (size_t)m * 6 * d * 4, cudaMemcpyHostToDevice);
	if (wan_k_ln_mod(0, dx, dy, t, d, n, l, dmod, demb, 6 * (int64_t)d, d, 3, 4, 1e-6f, err, sizeof(err)) ||
	    cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL ln_mod: %s\n", err);
		failures++;
	} else {
		from_dev_bf16(dy, y, (size_t)t * d);
		ref_layernorm(x, r, t, d, 1e-6f);
		for (int i = 0; i < t; i++) {
			size_t mi = (size_t)(i / n) * fr + (i % n) / l;

			for (int c = 0; c < d; c++) {
				float sc = mod[4 * d + c] + emb[(mi * 6 + 4) * d + c];
				float sh = mod[3 * d + c] + emb[(mi * 6 + 3) * d + c];

				r[(size_t)i * d + c] = r[(size_t)i * d + c] * (1 + sc) + sh;
			}
		}
		check("layernorm + modulation (2 slots x 2 frames)", y, r, (size_t)t * d, 1e-2);
	}
	cudaFree(dx); cudaFree(dmod); cudaFree(demb); cudaFree(dy);
	free(x); free(mod); free(emb); free(y); free(r);
}

/* x += y·gate; out = LN(x)·(1+sc)+sh, against the reference; x itself checked too. */
static void test_res_ln(int b, int fr, int l, int d)
{
	int n = fr * l, t = b * n, m = b * fr;
	size_t nx = (size_t)t * d, nm = (size_t)m * 6 * d;
	float *x = malloc(nx * 4), *y = malloc(nx * 4), *mv = malloc(nm * 4), *o = malloc(nx * 4);
	float *r = malloc(nx * 4), *xg = malloc(nx * 4);
	float *dx, *dmv;
	void *dy, *dout;
	char err[256], what[96];

	fill_uniform(x, nx, &seed, 3.0f);
	fill_uniform(y, nx, &seed, 1.0f);
	fill_uniform(mv, nm, &seed, 0.5f);
	dy = to_dev_bf16(y, nx);
	cudaMalloc((void **)&dx, nx * 4);
	cudaMalloc((void **)&dmv, nm * 4);
	cudaMalloc(&dout, nx * 2);
	cudaMemset(dout, 0xff, nx * 2);
	cudaMemcpy(dx, x, nx * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(dmv, mv, nm * 4, cudaMemcpyHostToDevice);
	snprintf(what, sizeof(what), "fused residual+LN+mod D=%d (%d slots x %d frames)", d, b, fr);
	if (wan_k_res_ln(0, dx, dy, dmv, 5, dout, dmv, 6, 0, 1, NULL, NULL, t, d, n, l, 1e-6f, err, sizeof(err)) ||
	    cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL %s: %s\n", what, err);
		failures++;
	} else {
		for (int i = 0; i < t; i++) {
			size_t mi = (size_t)(i / n) * fr + (i % n) / l;

			for (int c = 0; c < d; c++)
				x[(size_t)i * d + c] += y[(size_t)i * d + c] * mv[(mi * 6 + 5) * d + c];
		}
		ref_layernorm(x, r, t, d, 1e-6f);
		for (int i = 0; i < t; i++) {
			size_t mi = (size_t)(i / n) * fr + (i % n) / l;

			for (int c = 0; c < d; c++)
				r[(size_t)i * d + c] = r[(size_t)i * d + c] * (1 + mv[(mi * 6 + 1) * d + c]) + mv[(mi * 6) * d + c];
		}
		from_dev_bf16(dout, o, nx);
		cudaMemcpy(xg, dx, nx * 4, cudaMemcpyDeviceToHost);
		check(what, o, r, nx, 1e-2);
		check("  ... residual stream after the update", xg, x, nx, 1e-5);
	}
	cudaFree(dx); cudaFree(dmv); cudaFree(dy); cudaFree(dout);
	free(x); free(y); free(mv); free(o); free(r); free(xg);
}

/* out = RMSNorm(x)·g over rows of stride ldx (the vectorized path for widths divisible by
 * 256, the plain one otherwise), and LN·gamma+beta of the fused kernel without a residual. */
static void test_rmsnorm(int t, int d, int ldx)
{
	size_t nx = (size_t)t * ldx, no = (size_t)t * d;
	float *x = malloc(nx * 4), *g = malloc((size_t)d * 4), *o = malloc(no * 4), *r = malloc(no * 4);
	float *dg;
	void *dx, *dout;
	char err[256], what[96];

	fill_uniform(x, nx, &seed, 2.0f);
	fill_uniform(g, d, &seed, 1.0f);
	dx = to_dev_bf16(x, nx);
	cudaMalloc((void **)&dg, (size_t)d * 4);
	cudaMalloc(&dout, no * 2);
	cudaMemset(dout, 0xff, no * 2);
	cudaMemcpy(dg, g, (size_t)d * 4, cudaMemcpyHostToDevice);
	snprintf(what, sizeof(what), "rmsnorm D=%d (row stride %d, %d rows)", d, ldx, t);
	if (wan_k_rmsnorm(0, dx, ldx, dout, t, d, dg, 1e-6f, err, sizeof(err)) ||
	    cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL %s: %s\n", what, err);
		failures++;
	} else {
		for (int i = 0; i < t; i++) {
			double ss = 0;

			for (int c = 0; c < d; c++)
				ss += (double)x[(size_t)i * ldx + c] * x[(size_t)i * ldx + c];
			ss = 1.0 / sqrt(ss / d + 1e-6);
			for (int c = 0; c < d; c++)
				r[(size_t)i * d + c] = (float)(x[(size_t)i * ldx + c] * ss * g[c]);
		}
		from_dev_bf16(dout, o, no);
		check(what, o, r, no, 1e-2);
	}
	cudaFree(dx); cudaFree(dg); cudaFree(dout);
	free(x); free(g); free(o); free(r);
}

static void test_ln_affine_fused(int t, int d)
{
	size_t nx = (size_t)t * d;
	float *x = malloc(nx * 4), *gb = malloc((size_t)2 * d * 4), *o = malloc(nx * 4), *r = malloc(nx * 4);
	float *dx, *dgb;
	void *dout;
	char err[256], what[96];

	fill_uniform(x, nx, &seed, 3.0f);
	fill_uniform(gb, (size_t)2 * d, &seed, 1.0f);
	cudaMalloc((void **)&dx, nx * 4);
	cudaMalloc((void **)&dgb, (size_t)2 * d * 4);
	cudaMalloc(&dout, nx * 2);
	cudaMemset(dout, 0xff, nx * 2);
	cudaMemcpy(dx, x, nx * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(dgb, gb, (size_t)2 * d * 4, cudaMemcpyHostToDevice);
	snprintf(what, sizeof(what), "fused LN*gamma+beta, no residual D=%d", d);
	if (wan_k_res_ln(0, dx, NULL, NULL, -1, dout, NULL, 0, 0, 0, dgb, dgb + d, t, d, t, t, 1e-6f,
			 err, sizeof(err)) || cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL %s: %s\n", what, err);
		failures++;
	} else {
		ref_layernorm(x, r, t, d, 1e-6f);
		for (size_t i = 0; i < nx; i++)
			r[i] = r[i] * gb[i % d] + gb[d + i % d];
		from_dev_bf16(dout, o, nx);
		check(what, o, r, nx, 1e-2);
	}
	cudaFree(dx); cudaFree(dgb); cudaFree(dout);
	free(x); free(gb); free(o); free(r);
}

/* q/k RMSNorm + RoPE + KV cache write against a C reference (B slots of F frames of L tokens,
 * each slot writing at its own cache row and frame position; the rows it must not write keep
 * their values), for the current tokens-per-block setting. */
static void test_qkv_rope(int b, int fr, int h2, int w2, int d, int hd, int kv_rows)
{
	int l = h2 * w2, n = fr * l, t = b * n, half = hd / 2, ch = hd / 6, ct = half - 2 * ch;
	int npos = 64, start[8], wrow[8], *dstart, *dwrow;
	size_t nq = (size_t)t * 3 * d, nc = (size_t)b * kv_rows * d;
	float *qkv = malloc(nq * 4), *g = malloc((size_t)2 * d * 4), *rope = malloc((size_t)npos * half * 8);
	float *q = malloc((size_t)t * d * 4), *rq = malloc((size_t)t * d * 4);
	float *kc = malloc(nc * 4), *vc = malloc(nc * 4), *rk = malloc(nc * 4), *rv = malloc(nc * 4);
	float *dg, *drope;
	void *dqkv, *dq, *dkc, *dvc;
	char err[256], what[128];

	fill_uniform(qkv, nq, &seed, 2.0f);
	fill_uniform(g, (size_t)2 * d, &seed, 1.0f);
	fill_uniform(rope, (size_t)npos * half * 2, &seed, 1.0f);
	fill_uniform(rk, nc, &seed, 1.0f);
	fill_uniform(rv, nc, &seed, 1.0f);
	for (int i = 0; i < b; i++) {
		start[i] = 3 * i + 1;
		wrow[i] = (i * 2 * l) % (kv_rows - n + 1);
	}
	dqkv = to_dev_bf16(qkv, nq);
	dkc = to_dev_bf16(rk, nc);
	dvc = to_dev_bf16(rv, nc);
	cudaMalloc((void **)&dg, (size_t)2 * d * 4);
	cudaMalloc((void **)&drope, (size_t)npos * half * 8);
	cudaMalloc((void **)&dstart, sizeof(start));
	cudaMalloc((void **)&dwrow, sizeof(wrow));
	cudaMalloc(&dq, (size_t)t * d * 2);
	cudaMemset(dq, 0xff, (size_t)t * d * 2);
	cudaMemcpy(dg, g, (size_t)2 * d * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(drope, rope, (size_t)npos * half * 8, cudaMemcpyHostToDevice);
	cudaMemcpy(dstart, start, sizeof(start), cudaMemcpyHostToDevice);
	cudaMemcpy(dwrow, wrow, sizeof(wrow), cudaMemcpyHostToDevice);
	snprintf(what, sizeof(what), "qkv rmsnorm+rope+cache D=%d hd=%d %d slots x %d frames [%s]",
		 d, hd, b, fr, row_mode());
	if (wan_k_qkv_rope_cache(0, dqkv, dq, dkc, dvc, (int64_t)kv_rows * d, t, d, hd, n, l, w2, dg, dg + d,
				 drope, dstart, dwrow, 1e-6f, err, sizeof(err)) ||
	    cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL %s: %s\n", what, err);
		failures++;
	} else {
		for (int tok = 0; tok < t; tok++) {
			int bb = tok / n, i = tok % n, rem = i % l;
			int pos[3] = { start[bb] + i / l, rem / w2, rem % w2 };
			const float *src = qkv + (size_t)tok * 3 * d;
			double ss[2] = { 0, 0 };
			size_t row = ((size_t)bb * kv_rows + wrow[bb] + i) * d;

			for (int c = 0; c < d; c++) {
				ss[0] += (double)src[c] * src[c];
				ss[1] += (double)src[d + c] * src[d + c];
			}
			for (int j = 0; j < 2; j++)
				ss[j] = 1.0 / sqrt(ss[j] / d + 1e-6);
			for (int c = 0; c < d; c += 2) {
				int pj = (c % hd) / 2, ax = pj < ct ? 0 : pj < ct + ch ? 1 : 2;
				const float *cs = rope + ((size_t)pos[ax] * half + pj) * 2;
				float q0 = (float)(src[c] * ss[0] * g[c]), q1 = (float)(src[c + 1] * ss[0] * g[c + 1]);
				float k0 = (float)(src[d + c] * ss[1] * g[d + c]), k1 = (float)(src[d + c + 1] * ss[1] * g[d + c + 1]);

				rq[(size_t)tok * d + c] = q0 * cs[0] - q1 * cs[1];
				rq[(size_t)tok * d + c + 1] = q0 * cs[1] + q1 * cs[0];
				rk[row + c] = k0 * cs[0] - k1 * cs[1];
				rk[row + c + 1] = k0 * cs[1] + k1 * cs[0];
				rv[row + c] = src[2 * d + c];
				rv[row + c + 1] = src[2 * d + c + 1];
			}
		}
		from_dev_bf16(dq, q, (size_t)t * d);
		from_dev_bf16(dkc, kc, nc);
		from_dev_bf16(dvc, vc, nc);
		check(what, q, rq, (size_t)t * d, 1e-2);
		check("  ... K cache (written rows and untouched ones)", kc, rk, nc, 1e-2);
		check("  ... V cache (written rows and untouched ones)", vc, rv, nc, 1e-6);
	}
	cudaFree(dqkv); cudaFree(dkc); cudaFree(dvc); cudaFree(dg); cudaFree(drope);
	cudaFree(dstart); cudaFree(dwrow); cudaFree(dq);
	free(qkv); free(g); free(rope); free(q); free(rq); free(kc); free(vc); free(rk); free(rv);
}

/* The row kernels give bitwise the same results for 1, 2, 4 and 8 tokens per block and for
 * one warp per token, with every set of cache hints, on a token count that is no multiple of 4
 * or 8 and frames that change inside a block: the fused residual+LN (modulated and affine),
 * RMSNorm and q/k RMSNorm+RoPE+cache. */
static void test_rows_bitwise(int b, int fr, int h2, int w2, int d, int hd)
{
	int l = h2 * w2, n = fr * l, t = b * n, m = b * fr, kv_rows = 2 * n, npos = 64;
	size_t nx = (size_t)t * d, nm = (size_t)m * 6 * d, nc = (size_t)b * kv_rows * d;
	size_t outb = nx * 2 * 5 + nx * 4 + nc * 2 * 2; /* ln mod, ln affine, rms, q, x, kc, vc */
	float *x = malloc(nx * 4), *y = malloc(nx * 4), *mv = malloc(nm * 4), *qkv = malloc(nx * 3 * 4);
	float *g = malloc((size_t)2 * d * 4), *rope = malloc((size_t)npos * hd * 4);
	unsigned char *ref = malloc(outb), *got = malloc(outb);
	int zero[8] = { 0 }, *dzero, saved = wan_k_rows_per_block(0), saved_hints = wan_k_hints(-1), bad = 0;
	int saved_warp = wan_k_warp_rows(-1);
	float *dx, *dmv, *dg, *drope;
	void *dy, *dqkv, *dout, *dkc, *dvc;
	char err[256];

	fill_uniform(x, nx, &seed, 3.0f);
	fill_uniform(y, nx, &seed, 1.0f);
	fill_uniform(mv, nm, &seed, 0.5f);
	fill_uniform(qkv, nx * 3, &seed, 2.0f);
	fill_uniform(g, (size_t)2 * d, &seed, 1.0f);
	fill_uniform(rope, (size_t)npos * hd, &seed, 1.0f);
	dy = to_dev_bf16(y, nx);
	dqkv = to_dev_bf16(qkv, nx * 3);
	cudaMalloc((void **)&dx, nx * 4);
	cudaMalloc((void **)&dmv, nm * 4);
	cudaMalloc((void **)&dg, (size_t)2 * d * 4);
	cudaMalloc((void **)&drope, (size_t)npos * hd * 4);
	cudaMalloc((void **)&dzero, sizeof(zero));
	cudaMalloc(&dout, nx * 2 * 5);
	cudaMalloc(&dkc, nc * 2);
	cudaMalloc(&dvc, nc * 2);
	cudaMemcpy(dmv, mv, nm * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(dg, g, (size_t)2 * d * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(drope, rope, (size_t)npos * hd * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(dzero, zero, sizeof(zero), cudaMemcpyHostToDevice);
	/* 1, 2, 4, 8 tokens per block, then 4 with each set of cache hints, then one warp per
	 * token with each set */
	for (int ri = 0; ri < 12; ri++) {
		int rows = ri < 4 ? 1 << ri : 4;
		char *o = dout;

		wan_k_rows_per_block(rows);
		wan_k_hints(ri < 4 ? 0 : ri % 4);
		wan_k_warp_rows(ri >= 8);
		cudaMemcpy(dx, x, nx * 4, cudaMemcpyHostToDevice);
		cudaMemset(dout, 0xff, nx * 2 * 5);
		cudaMemset(dkc, 0x7f, nc * 2);
		cudaMemset(dvc, 0x7f, nc * 2);
		if (wan_k_res_ln(0, dx, dy, dmv, 2, o, dmv, 6, 0, 1, NULL, NULL, t, d, n, l, 1e-6f, err, sizeof(err)) ||
		    wan_k_res_ln(0, dx, dy, NULL, -1, o + nx * 2, NULL, 0, 0, 0, dg, dg + d, t, d, n, l, 1e-6f, err,
				 sizeof(err)) ||
		    wan_k_rmsnorm(0, dqkv, 3 * d, o + nx * 4, t, d, dg, 1e-6f, err, sizeof(err)) ||
		    wan_k_qkv_rope_cache(0, dqkv, o + nx * 6, dkc, dvc, (int64_t)kv_rows * d, t, d, hd, n, l, w2, dg,
					 dg + d, drope, dzero, dzero, 1e-6f, err, sizeof(err)) ||
		    cudaDeviceSynchronize() != cudaSuccess) {
			fprintf(stderr, "FAIL row kernels at %s: %s\n", row_mode(), err);
			failures++;
			bad = 1;
			break;
		}
		cudaMemcpy(got, dout, nx * 2 * 4, cudaMemcpyDeviceToHost);
		cudaMemcpy(got + nx * 8, dx, nx * 4, cudaMemcpyDeviceToHost);
		cudaMemcpy(got + nx * 12, dkc, nc * 2, cudaMemcpyDeviceToHost);
		cudaMemcpy(got + nx * 12 + nc * 2, dvc, nc * 2, cudaMemcpyDeviceToHost);
		if (rows == 1) {
			memcpy(ref, got, nx * 12 + nc * 4);
		} else if (memcmp(ref, got, nx * 12 + nc * 4)) {
			fprintf(stderr, "FAIL row kernels at %s (cache hints %d) differ from one "
				"row per block (%d tokens, D=%d)\n", row_mode(), wan_k_hints(-1), t, d);
			failures++;
			bad = 1;
		}
	}
	if (!bad) {
		char what[96];

		snprintf(what, sizeof(what), "row kernels, 1/2/4/8 tokens per block and warp/token, hints 0-3, "
			 "D=%d, %d tokens", d, t);
		printf("ok   %-50s bitwise\n", what);
	}
	wan_k_rows_per_block(saved);
	wan_k_hints(saved_hints);
	wan_k_warp_rows(saved_warp);
	cudaFree(dx); cudaFree(dmv); cudaFree(dg); cudaFree(drope); cudaFree(dzero); cudaFree(dy);
	cudaFree(dqkv); cudaFree(dout); cudaFree(dkc); cudaFree(dvc);
	free(x); free(y); free(mv); free(qkv); free(g); free(rope); free(ref); free(got);
}

/* One chain of dependent ops, as the DiT layer orders them (GEMM -> residual+LN -> GEMM ->
 * RMSNorm -> q/k RMSNorm+RoPE+cache -> ...), N rounds, captured on stream st and replayed 3
 * times; returns the number of programmatic edges in the captured graph, or -1. */
static long pdl_chain(struct wan_gemm *g, cudaStream_t st, int rounds, int t, int d, float *dx,
		      void *dy, void *dh, void *dq, void *dqkv, void *dkc, void *dvc, const float *dmv,
		      const float *dg, const float *drope, const int *dzero, const void *dw)
{
	cudaGraph_t graph = NULL;
	cudaGraphExec_t exec = NULL;
	size_t ne = 0;
	long np = 0;
	cudaGraphEdgeData *ed = NULL;
	char err[256];
	/* RoPE positions inside the 64-row table: frames of 1560 = 30 x 52 tokens, or one frame of
	 * 11 columns */
	int l = t % 1560 ? t : 1560, w2 = t % 1560 ? 11 : 52;
	int ok = cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess;

	for (int r = 0; ok && r < rounds; r++)
		ok = !wan_gemm_bf16(g, st, t, d, d, dh, d, dw, d, NULL, WAN_EPI_NONE, dy, d, err, sizeof(err)) &&
		     !wan_k_res_ln(st, dx, dy, dmv, 2, dh, dmv, 6, 0, 1, NULL, NULL, t, d, t, t, 1e-6f, err,
				   sizeof(err)) &&
		     !wan_gemm_bf16(g, st, t, 3 * d, d, dh, d, dw, d, NULL, WAN_EPI_NONE, dqkv, 3 * d, err,
				    sizeof(err)) &&
		     !wan_k_rmsnorm(st, dqkv, 3 * d, dh, t, d, dg, 1e-6f, err, sizeof(err)) &&
		     !wan_k_qkv_rope_cache(st, dqkv, dq, dkc, dvc, (int64_t)t * d, t, d, 128, t, l, w2, dg,
					   dg + d, drope, dzero, dzero, 1e-6f, err, sizeof(err)) &&
		     !wan_k_res_ln2(st, dx, 1, dq, dmv, 5, dh, dh, dmv, 6, 3, 4, NULL, NULL, t, d, t, t, 1e-6f,
				    err, sizeof(err));
	if (cudaStreamEndCapture(st, &graph) != cudaSuccess || !ok || !graph)
		goto fail;
	if (cudaGraphGetEdges(graph, NULL, NULL, NULL, &ne) != cudaSuccess || !(ed = calloc(ne + 1, sizeof(*ed))))
		goto fail;
	{
		cudaGraphNode_t *from = calloc(ne + 1, sizeof(*from)), *to = calloc(ne + 1, sizeof(*to));

		if (from && to && cudaGraphGetEdges(graph, from, to, ed, &ne) == cudaSuccess)
			for (size_t i = 0; i < ne; i++)
				np += ed[i].type == cudaGraphDependencyTypeProgrammatic;
		free(from);
		free(to);
	}
	if (cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess)
		goto fail;
	for (int i = 0; i < 3; i++)
		if (cudaGraphLaunch(exec, st) != cudaSuccess)
			goto fail;
	if (cudaStreamSynchronize(st) != cudaSuccess)
		goto fail;
	cudaGraphExecDestroy(exec);
	cudaGraphDestroy(graph);
	free(ed);
	return np;
fail:
	cudaGetLastError();
	if (exec)
		cudaGraphExecDestroy(exec);
	if (graph)
		cudaGraphDestroy(graph);
	free(ed);
	return -1;
}

/* Programmatic dependent launch (wan_k_pdl): the chain above gives bitwise the same residual
 * stream, activations and caches with PDL on and off, and the captured graph keeps a
 * programmatic edge for every one of our kernels that follows a kernel (none with PDL off). */
static void test_pdl(struct wan_gemm *g, int t, int d, int rounds)
{
	size_t nx = (size_t)t * d, nm = (size_t)6 * d;
	float *x = malloc(nx * 4), *h = malloc(nx * 4), *mv = malloc(nm * 4), *gg = malloc((size_t)2 * d * 4);
	float *rope = malloc((size_t)64 * 128 * 4), *w = malloc((size_t)3 * d * d * 4);
	size_t outb = nx * 4 + nx * 2 * 2 + nx * 2 * 3;
	unsigned char *res[2] = { malloc(outb), malloc(outb) };
	float *dx, *dmv, *dg, *drope;
	void *dh, *dy, *dq, *dqkv, *dkc, *dvc, *dw;
	int *dzero, saved = wan_k_pdl(-1);
	long np[2] = { -1, -1 };
	cudaStream_t st;

	fill_uniform(x, nx, &seed, 3.0f);
	fill_uniform(h, nx, &seed, 1.0f);
	fill_uniform(mv, nm, &seed, 0.2f);
	fill_uniform(gg, (size_t)2 * d, &seed, 1.0f);
	fill_uniform(rope, (size_t)64 * 128, &seed, 1.0f);
	fill_uniform(w, (size_t)3 * d * d, &seed, 0.05f);
	dw = to_dev_bf16(w, (size_t)3 * d * d);
	cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
	cudaMalloc((void **)&dx, nx * 4);
	cudaMalloc((void **)&dmv, nm * 4);
	cudaMalloc((void **)&dg, (size_t)2 * d * 4);
	cudaMalloc((void **)&drope, (size_t)64 * 128 * 4);
	cudaMalloc((void **)&dzero, 8 * sizeof(int));
	cudaMalloc(&dy, nx * 2);
	cudaMalloc(&dq, nx * 2);
	cudaMalloc(&dqkv, nx * 2 * 3);
	cudaMalloc(&dkc, nx * 2);
	cudaMalloc(&dvc, nx * 2);
	cudaMemcpy(dmv, mv, nm * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(dg, gg, (size_t)2 * d * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(drope, rope, (size_t)64 * 128 * 4, cudaMemcpyHostToDevice);
	cudaMemset(dzero, 0, 8 * sizeof(int));
	for (int on = 0; on < 2; on++) {
		wan_k_pdl(on);
		cudaMemcpy(dx, x, nx * 4, cudaMemcpyHostToDevice);
		dh = to_dev_bf16(h, nx);
		cudaMemset(dqkv, 0, nx * 2 * 3);
		np[on] = pdl_chain(g, st, rounds, t, d, dx, dy, dh, dq, dqkv, dkc, dvc, dmv, dg, drope, dzero, dw);
		cudaMemcpy(res[on], dx, nx * 4, cudaMemcpyDeviceToHost);
		cudaMemcpy(res[on] + nx * 4, dh, nx * 2, cudaMemcpyDeviceToHost);
		cudaMemcpy(res[on] + nx * 6, dq, nx * 2, cudaMemcpyDeviceToHost);
		cudaMemcpy(res[on] + nx * 8, dkc, nx * 2, cudaMemcpyDeviceToHost);
		cudaMemcpy(res[on] + nx * 10, dvc, nx * 2, cudaMemcpyDeviceToHost);
		cudaMemcpy(res[on] + nx * 12, dqkv, nx * 2, cudaMemcpyDeviceToHost);
		cudaFree(dh);
	}
	wan_k_pdl(saved);
	if (np[0] < 0 || np[1] < 0) {
		fprintf(stderr, "FAIL PDL chain: capture or replay failed\n");
		failures++;
	} else if (memcmp(res[0], res[1], outb)) {
		fprintf(stderr, "FAIL PDL chain (%d tokens, D=%d): results differ with PDL on\n", t, d);
		failures++;
	} else if (np[0] != 0 || np[1] < 4L * rounds) {
		fprintf(stderr, "FAIL PDL chain: %ld programmatic edges with PDL off, %ld with PDL on (want 0 and >= %d)\n",
			np[0], np[1], 4 * rounds);
		failures++;
	} else {
		char what[96];

		snprintf(what, sizeof(what), "PDL on/off, %d rounds, %d tokens, D=%d", rounds, t, d);
		printf("ok   %-50s bitwise, %ld programmatic edges\n", what, np[1]);
	}
	cudaStreamDestroy(st);
	cudaFree(dx); cudaFree(dmv); cudaFree(dg); cudaFree(drope); cudaFree(dzero); cudaFree(dy);
	cudaFree(dq); cudaFree(dqkv); cudaFree(dkc); cudaFree(dvc); cudaFree(dw);
	free(x); free(h); free(mv); free(gg); free(rope); free(w); free(res[0]); free(res[1]);
}

/* The deferred residual (wan_k_res_ln2: normalise x + y·gate without storing it, then add y·gate
 * and y2 together, the output written over y2) gives bitwise the outputs and the residual
 * stream of two plain wan_k_res_ln updates. */
static void test_res_ln2(int b, int fr, int l, int d)
{
	int n = fr * l, t = b * n, m = b * fr;
	size_t nx = (size_t)t * d, nm = (size_t)m * 6 * d;
	float *x = malloc(nx * 4), *y = malloc(nx * 4), *mv = malloc(nm * 4), *gb = malloc((size_t)2 * d * 4);
	unsigned char *ra = malloc(nx * 8), *rb = malloc(nx * 8);
	float *dx, *dmv, *dgb;
	void *dy, *dy2a, *dy2b, *o1;
	char err[256], what[96];
	int rc;

	fill_uniform(x, nx, &seed, 3.0f);
	fill_uniform(y, nx, &seed, 1.0f);
	fill_uniform(mv, nm, &seed, 0.5f);
	fill_uniform(gb, (size_t)2 * d, &seed, 1.0f);
	dy = to_dev_bf16(y, nx);
	fill_uniform(y, nx, &seed, 1.0f);
	dy2a = to_dev_bf16(y, nx);
	dy2b = to_dev_bf16(y, nx);
	cudaMalloc((void **)&dx, nx * 4);
	cudaMalloc((void **)&dmv, nm * 4);
	cudaMalloc((void **)&dgb, (size_t)2 * d * 4);
	cudaMalloc(&o1, nx * 2);
	cudaMemcpy(dmv, mv, nm * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(dgb, gb, (size_t)2 * d * 4, cudaMemcpyHostToDevice);
	snprintf(what, sizeof(what), "deferred residual D=%d (%d slots x %d frames) [%s]", d, b,
		 fr, row_mode());
	/* two updates: x += y·gate2, LN·gamma+beta -> o1; x += y2, LN·mod(3,4) -> y2a (copied out) */
	cudaMemcpy(dx, x, nx * 4, cudaMemcpyHostToDevice);
	rc = wan_k_res_ln(0, dx, dy, dmv, 2, o1, NULL, 0, 0, 0, dgb, dgb + d, t, d, n, l, 1e-6f, err,
			  sizeof(err)) ||
	     cudaMemcpy(ra, o1, nx * 2, cudaMemcpyDeviceToHost) != cudaSuccess ||
	     wan_k_res_ln(0, dx, dy2a, NULL, -1, o1, dmv, 6, 3, 4, NULL, NULL, t, d, n, l, 1e-6f, err,
			  sizeof(err)) ||
	     cudaMemcpy(ra + nx * 2, o1, nx * 2, cudaMemcpyDeviceToHost) != cudaSuccess ||
	     cudaMemcpy(ra + nx * 4, dx, nx * 4, cudaMemcpyDeviceToHost) != cudaSuccess;
	/* deferred: LN(x + y·gate2) -> o1 with x untouched; x += y·gate2 + y2, output over y2b */
	cudaMemcpy(dx, x, nx * 4, cudaMemcpyHostToDevice);
	rc = rc || wan_k_res_ln2(0, dx, 0, dy, dmv, 2, NULL, o1, NULL, 0, 0, 0, dgb, dgb + d, t, d, n, l,
				 1e-6f, err, sizeof(err)) ||
	     cudaMemcpy(rb, o1, nx * 2, cudaMemcpyDeviceToHost) != cudaSuccess ||
	     wan_k_res_ln2(0, dx, 1, dy, dmv, 2, dy2b, dy2b, dmv, 6, 3, 4, NULL, NULL, t, d, n, l, 1e-6f, err,
			   sizeof(err)) ||
	     cudaMemcpy(rb + nx * 2, dy2b, nx * 2, cudaMemcpyDeviceToHost) != cudaSuccess ||
	     cudaMemcpy(rb + nx * 4, dx, nx * 4, cudaMemcpyDeviceToHost) != cudaSuccess;
	if (rc) {
		fprintf(stderr, "FAIL %s: %s\n", what, err);
		failures++;
	} else if (memcmp(ra, rb, nx * 2) || memcmp(ra + nx * 2, rb + nx * 2, nx * 2) ||
		   memcmp(ra + nx * 4, rb + nx * 4, nx * 4)) {
		fprintf(stderr, "FAIL %s: differs from two plain updates (first norm %s, second %s, x %s)\n",
			what, memcmp(ra, rb, nx * 2) ? "differs" : "equal",
			memcmp(ra + nx * 2, rb + nx * 2, nx * 2) ? "differs" : "equal",
			memcmp(ra + nx * 4, rb + nx * 4, nx * 4) ? "differs" : "equal");
		failures++;
	} else {
		printf("ok   %-50s bitwise\n", what);
	}
	cudaFree(dx); cudaFree(dmv); cudaFree(dgb); cudaFree(dy); cudaFree(dy2a); cudaFree(dy2b); cudaFree(o1);
	free(x); free(y); free(mv); free(gb); free(ra); free(rb);
}

/* Every row-kernel check (`gpu_kernels rows` runs only these): the default layout against the
 * C reference, the layouts against each other bitwise, and each layout against the C reference
 * and the deferred residual. */
static void row_tests(void)
{
	int warp = wan_k_warp_rows(-1);

	test_ln_mod(2, 2, 24, 1536);
	test_res_ln(2, 2, 24, 1536);
	test_res_ln(1, 1, 40, 5120);
	test_res_ln(1, 2, 10, 200);
	test_ln_affine_fused(37, 1536);
	test_ln_affine_fused(5, 96);
	test_rmsnorm(64, 1536, 1536);
	test_rmsnorm(33, 1536, 4608);
	test_rmsnorm(20, 5120, 5120);
	test_rmsnorm(9, 200, 208);
	test_qkv_rope(2, 2, 6, 5, 1536, 128, 200);
	test_qkv_rope(3, 1, 7, 3, 1536, 128, 50);
	test_qkv_rope(1, 2, 3, 4, 5120, 128, 40);
	test_qkv_rope(2, 1, 5, 3, 240, 40, 30);
	test_rows_bitwise(3, 2, 1, 7, 1536, 128);
	test_rows_bitwise(1, 3, 3, 4, 5120, 128);
	test_rows_bitwise(2, 2, 3, 5, 1280, 128); /* 5 chunks per lane */
	test_rows_bitwise(2, 1, 4, 5, 512, 64); /* 2 chunks per lane, head dim 64 */
	test_rows_bitwise(1, 1, 3, 3, 256, 32); /* 1 chunk per lane */
	test_rows_bitwise(4, 1, 30, 52, 1536, 128); /* the S=4 layer */
	/* 1, 2, 4, 8 tokens per block, then one warp per token */
	for (int ri = 0; ri < 5; ri++) {
		wan_k_warp_rows(ri == 4);
		if (ri < 4)
			wan_k_rows_per_block(1 << ri);
		printf("-- %s\n", row_mode());
		test_res_ln(1, 3, 13, 1536);
		test_rmsnorm(37, 1536, 4608);
		test_qkv_rope(3, 1, 7, 3, 1536, 128, 50);
		test_qkv_rope(2, 1, 4, 5, 512, 64, 60);
		test_res_ln2(3, 2, 7, 1536);
	}
	wan_k_warp_rows(warp);
	wan_k_rows_per_block(4);
	test_res_ln2(2, 1, 9, 200);
	test_res_ln2(1, 2, 5, 5120);
}

int main(int argc, char **argv)
{
	int ndev = 0;
	char err[256];
	struct wan_gemm *g;
	struct wan_attn *a, *fb, *dnn;

	if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
		printf("SKIP: no CUDA device\n");
		return 77;
	}
	g = wan_gemm_new((size_t)32 << 20, err, sizeof(err));
	a = wan_attn_new(1, err, sizeof(err));
	fb = wan_attn_new(0, err, sizeof(err));
	dnn = wan_attn_new(1, err, sizeof(err));
	if (!g || !a || !fb || !dnn) {
		fprintf(stderr, "FAIL setup: %s\n", err);
		return 1;
	}
	wan_attn_set_fa3(dnn, -1);
	if (argc > 1 && (!strcmp(argv[1], "rowbench") || !strcmp(argv[1], "rowprof"))) {
		bench_rows(!strcmp(argv[1], "rowprof"));
		goto done;
	}
	if (argc > 1 && !strcmp(argv[1], "energy")) {
		energy_layer(g, dnn);
		goto done;
	}
	if (argc > 1 && !strcmp(argv[1], "rows")) {
		row_tests();
		goto done;
	}
	if (argc > 1 && !strcmp(argv[1], "bench")) {
		bench_attn(dnn, "1.3B 480x832 S=4 self", 4, 12, 1560, 9360);
		bench_attn(dnn, "1.3B 480x832 S=1 self", 1, 12, 1560, 9360);
		bench_attn(dnn, "1.3B 512x512 S=1 self", 1, 12, 1024, 6144);
		bench_attn(dnn, "14B 480x832 S=1 self", 1, 40, 1560, 9360);
		bench_attn(dnn, "1.3B 480x832 S=4 cross", 4, 12, 1560, 512);
		goto done;
	}
	for (int bn = 128; bn <= 192; bn += bn == 128 ? 48 : 16) {
		test_fa3(1, 12, 1560, 9360, 9360, 1, bn, "480p S=1");
		test_fa3(2, 12, 77, 300, 400, 1, bn, "short");
		test_fa3(2, 40, 200, 2340, 2340, 1, bn, "14B heads");
		test_fa3(3, 2, 130, bn + 1, 400, 1, bn, "tile edges");
		test_fa3(1, 1, 5, 1, 8, 1, bn, "one key");
		test_fa3(1, 12, 1560, 9360, 9360, 2, bn, "480p S=1");
		test_fa3(2, 12, 77, 2340, 2400, 4, bn, "short");
		test_fa3(1, 12, 1024, 6144, 6144, 4, bn, "512p S=1");
		test_fa3(1, 12, 1560, 9360, 9360, -4, bn, "480p S=1 tail");
		test_fa3(2, 40, 200, 2340, 2340, -2, bn, "14B heads tail");
		test_fa3(3, 12, 77, 2340, 2400, -4, bn, "short tail");
	}
	test_fa3_vs_cudnn(dnn, 4, 12, 1560, 9360);
	test_gemm(g, 1560, 4608, 1536, WAN_EPI_BIAS);
	test_gemm(g, 100, 8960, 1536, WAN_EPI_BIAS_GELU);
	test_gemm(g, 37, 64, 1536, WAN_EPI_NONE);
	test_gemm(g, 512, 1536, 4096, WAN_EPI_BIAS_GELU);
	test_attn(a, 2, 12, 128, 390, 2340, 0, "self");
	test_attn(a, 1, 12, 128, 780, 512, 0, "cross");
	test_attn(a, 1, 12, 128, 200, 2400, 0, "self");
	test_attn(a, 1, 12, 128, 130, 9360, 0, "self 480p keys");
	test_attn(a, 4, 12, 128, 390, 2340, 0, "self");
	test_attn(a, 1, 3, 64, 77, 131, 0, "odd");
	test_attn(fb, 2, 4, 128, 100, 600, 0, "self");
	test_attn(fb, 3, 2, 40, 50, 300, 1, "odd");
	row_tests();
	test_pdl(g, 6240, 1536, 6);
	test_pdl(g, 77, 1536, 3);
done:
	wan_gemm_free(g);
	wan_attn_free(a);
	wan_attn_free(fb);
	wan_attn_free(dnn);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
