/* t5_cuda.c: the umT5 encoder on one GPU (see t5_cuda.h).
 *
 * DESIGN
 * Weights live in one arena as bf16, laid out for few, large GEMMs: per layer [q;k;v] as one
 * [3·da, D] matrix and [gate;fc1] as one [2F, D] matrix; norms and the relative-bias table stay
 * fp32. Per layer (R rows):
 *   h   = RMS(x)·norm1                          k_add_rms (fused with the previous residual)
 *   qkv = h·Wqkvᵀ                               cuBLASLt
 *   S_h = K_h·Q_hᵀ  (fp32 out, all heads)        cuBLAS strided batched, no 1/sqrt(d)
 *   P_h = softmax(S_h + bias_h, masked keys 0)   k_softmax_bias (fp32 math, bf16 out)
 *   O_h = P_h·V_h                                cuBLAS strided batched
 *   x  += O·Woᵀ                                  cuBLAS, fp32 output accumulated into x (beta 1)
 *   h   = RMS(x)·norm2                           k_add_rms
 *   a   = fc1(h) ⊙ gelu_tanh(gate(h))            cuBLASLt + k_geglu
 *   x  += a·Wfc2ᵀ                                cuBLAS, into x like the output projection
 * The residual stream x is fp32 (upstream keeps it in bf16; fp32 is closer to the reference).
 * When the mask is a prefix of real tokens, only R = that count rounded up to 8 rows are
 * computed (padded keys are masked and padded rows zeroed, so the result is the same as
 * computing all 512). */
#include "config.h"

#include "plugins/wan/cuda/t5_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "plugins/wan/cuda/arena.h"
#include "plugins/wan/cuda/cuda_check.h"
#include "plugins/wan/cuda/gemm_lt.h"
#include "plugins/wan/cuda/t5_kernels.h"

struct t5_layer_dev {
	void *wqkv, *wo, *wgf, *wfc2; /* bf16, borrowed from the weight arena */
	float *n1, *n2, *pos;
};

struct t5_cuda {
	struct t5_config cfg;
	int max_len;
	cudaStream_t st;
	struct wan_gemm *gemm;     /* new */
	cublasHandle_t blas;       /* new */
	struct wan_arena wa, aa;   /* weights, activations */
	void *emb;                 /* bf16 [V, D] */
	float *norm;               /* [D] */
	struct t5_layer_dev *layers; /* new [num_layers] */
	/* activations (borrowed from aa) */
	float *x, *out, *s;
	void *h, *qkv, *p, *o, *gf, *a;
	int *ids, *keymask, *bucket;
	cudaEvent_t ev0, ev1;
	int have_events;
};

/* ---- layout (run twice: measure, then real) ---- */

static int layout_weights(struct t5_cuda *t, char *err, size_t errlen)
{
	const struct t5_config *c = &t->cfg;
	size_t d = (size_t)c->dim, da = (size_t)c->dim_attn, f = (size_t)c->dim_ffn;
	int failed = 0;
	t->emb = wan_arena_alloc(&t->wa, 2 * (size_t)c->vocab_size * d, &failed, err, errlen);
	t->norm = wan_arena_alloc(&t->wa, 4 * d, &failed, err, errlen);
	for (int l = 0; l < c->num_layers && !failed; l++) {
		struct t5_layer_dev *L = &t->layers[l];
		L->wqkv = wan_arena_alloc(&t->wa, 2 * 3 * da * d, &failed, err, errlen);
		L->wo = wan_arena_alloc(&t->wa, 2 * d * da, &failed, err, errlen);
		L->wgf = wan_arena_alloc(&t->wa, 2 * 2 * f * d, &failed, err, errlen);
		L->wfc2 = wan_arena_alloc(&t->wa, 2 * d * f, &failed, err, errlen);
		L->n1 = wan_arena_alloc(&t->wa, 4 * d, &failed, err, errlen);
		L->n2 = wan_arena_alloc(&t->wa, 4 * d, &failed, err, errlen);
		L->pos = wan_arena_alloc(&t->wa, 4 * (size_t)c->num_buckets * c->num_heads, &failed, err, errlen);
	}
	return failed ? -1 : 0;
}

static int layout_acts(struct t5_cuda *t, char *err, size_t errlen)
{
	const struct t5_config *c = &t->cfg;
	size_t n = (size_t)t->max_len, d = (size_t)c->dim, da = (size_t)c->dim_attn, f = (size_t)c->dim_ffn;
	size_t hh = (size_t)c->num_heads;
	int failed = 0;
	t->x = wan_arena_alloc(&t->aa, 4 * n * d, &failed, err, errlen);
	t->out = wan_arena_alloc(&t->aa, 4 * n * d, &failed, err, errlen);
	t->s = wan_arena_alloc(&t->aa, 4 * hh * n * n, &failed, err, errlen);
	t->p = wan_arena_alloc(&t->aa, 2 * hh * n * n, &failed, err, errlen);
	t->h = wan_arena_alloc(&t->aa, 2 * n * d, &failed, err, errlen);
	t->qkv = wan_arena_alloc(&t->aa, 2 * n * 3 * da, &failed, err, errlen);
	t->o = wan_arena_alloc(&t->aa, 2 * n * da, &failed, err, errlen);
	t->gf = wan_arena_alloc(&t->aa, 2 * n * 2 * f, &failed, err, errlen);
	t->a = wan_arena_alloc(&t->aa, 2 * n * f, &failed, err, errlen);
	t->ids = wan_arena_alloc(&t->aa, 4 * n, &failed, err, errlen);
	t->keymask = wan_arena_alloc(&t->aa, 4 * n, &failed, err, errlen);
	t->bucket = wan_arena_alloc(&t->aa, 4 * (2 * n - 1), &failed, err, errlen);
	return failed ? -1 : 0;
}

/* ---- upload ---- */

#define STAGE_ELEMS ((size_t)1 << 24)

/* Tensor T (any float dtype) -> bf16 at device DST. */
static int upload_bf16(const struct wt_tensor *t, void *dst, uint16_t *stage, float *fstage, char *err,
		       size_t errlen)
{
	int64_t n = wt_numel(t);
	if (t->dtype == WT_BF16)
		CU_RET(cudaMemcpy(dst, t->data, (size_t)n * 2, cudaMemcpyHostToDevice));
	/* other dtypes: convert row by row through the staging buffers */
	int64_t cols = t->ndim == 2 ? t->shape[1] : n, rows = n / (cols ? cols : 1);
	int64_t per = (int64_t)(STAGE_ELEMS / (size_t)cols);
	if (per < 1) {
		snprintf(err, errlen, "tensor '%s' rows are too long to stage", t->name);
		return -1;
	}
	for (int64_t r0 = 0; r0 < rows && t->dtype != WT_BF16; r0 += per) {
		int64_t nr = r0 + per < rows ? per : rows - r0;
		for (int64_t r = 0; r < nr; r++) {
			if (t5_tensor_row_f32(t, r0 + r, fstage + r * cols)) {
				snprintf(err, errlen, "cannot convert tensor '%s'", t->name);
				return -1;
			}
		}
		for (int64_t i = 0; i < nr * cols; i++)
			stage[i] = wt_f32_to_bf16(fstage[i]);
		CU_RET(cudaMemcpy((char *)dst + (size_t)(r0 * cols) * 2, stage, (size_t)(nr * cols) * 2,
				  cudaMemcpyHostToDevice));
	}
	return 0;
}

static int upload_f32(const struct wt_tensor *t, float *dst, float *fstage, char *err, size_t errlen)
{
	if (wt_tensor_to_f32(t, fstage, err, errlen))
		return -1;
	CU_RET(cudaMemcpy(dst, fstage, sizeof(float) * (size_t)wt_numel(t), cudaMemcpyHostToDevice));
	return 0;
}

static int upload_all(struct t5_cuda *t, const struct t5_weights *w, char *err, size_t errlen)
{
	const struct t5_config *c = &t->cfg;
	size_t d = (size_t)c->dim, da = (size_t)c->dim_attn, f = (size_t)c->dim_ffn;
	uint16_t *stage = malloc(2 * STAGE_ELEMS);
	float *fstage = malloc(4 * STAGE_ELEMS);
	int rc = -1;
	if (!stage || !fstage) {
		snprintf(err, errlen, "out of host memory for the upload staging buffers");
		goto out;
	}
	if (upload_bf16(w->embedding, t->emb, stage, fstage, err, errlen) ||
	    upload_f32(w->norm, t->norm, fstage, err, errlen))
		goto out;
	for (int l = 0; l < c->num_layers; l++) {
		const struct t5_layer_tensors *L = &w->layers[l];
		struct t5_layer_dev *D = &t->layers[l];
		char *qkv = D->wqkv, *gf = D->wgf;
		if (upload_bf16(L->q, qkv, stage, fstage, err, errlen) ||
		    upload_bf16(L->k, qkv + 2 * da * d, stage, fstage, err, errlen) ||
		    upload_bf16(L->v, qkv + 4 * da * d, stage, fstage, err, errlen) ||
		    upload_bf16(L->o, D->wo, stage, fstage, err, errlen) ||
		    upload_bf16(L->gate, gf, stage, fstage, err, errlen) ||
		    upload_bf16(L->fc1, gf + 2 * f * d, stage, fstage, err, errlen) ||
		    upload_bf16(L->fc2, D->wfc2, stage, fstage, err, errlen) ||
		    upload_f32(L->norm1, D->n1, fstage, err, errlen) || upload_f32(L->norm2, D->n2, fstage, err, errlen) ||
		    upload_f32(L->pos, D->pos, fstage, err, errlen))
			goto out;
	}
	rc = 0;
out:
	free(stage);
	free(fstage);
	return rc;
}

struct t5_cuda *t5_cuda_new(const struct t5_weights *w, int max_len, char *err, size_t errlen)
{
	struct t5_cuda *t = calloc(1, sizeof(*t));
	int rc = 0, ndev = 0;
	int *bucket = NULL;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->cfg = w->cfg;
	t->max_len = max_len;
	if (max_len < 1 || max_len > 4096) {
		snprintf(err, errlen, "max_len %d is out of range [1, 4096]", max_len);
		goto fail;
	}
	if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
		snprintf(err, errlen, "no CUDA device is available");
		goto fail;
	}
	t->layers = calloc((size_t)t->cfg.num_layers, sizeof(*t->layers));
	if (!t->layers) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	CU_TRY(cudaStreamCreateWithFlags(&t->st, cudaStreamNonBlocking));
	if (!(t->gemm = wan_gemm_new((size_t)32 << 20, err, errlen)))
		goto fail;
	if (cublasCreate(&t->blas) != CUBLAS_STATUS_SUCCESS) {
		snprintf(err, errlen, "cublasCreate failed");
		t->blas = NULL;
		goto fail;
	}
	cublasSetStream(t->blas, t->st);
	wan_arena_measure(&t->wa);
	wan_arena_measure(&t->aa);
	if (layout_weights(t, err, errlen) || layout_acts(t, err, errlen))
		goto fail;
	if (wan_arena_init(&t->wa, t->wa.used, err, errlen) || wan_arena_init(&t->aa, t->aa.used, err, errlen))
		goto fail;
	if (layout_weights(t, err, errlen) || layout_acts(t, err, errlen))
		goto fail;
	if (upload_all(t, w, err, errlen))
		goto fail;
	bucket = malloc(sizeof(int) * (size_t)(2 * max_len - 1));
	if (!bucket) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int r = -(max_len - 1); r <= max_len - 1; r++)
		bucket[r + max_len - 1] = t5_rel_bucket(r, t->cfg.num_buckets, t->cfg.max_dist);
	CU_TRY(cudaMemcpy(t->bucket, bucket, sizeof(int) * (size_t)(2 * max_len - 1), cudaMemcpyHostToDevice));
	CU_TRY(cudaEventCreate(&t->ev0));
	CU_TRY(cudaEventCreate(&t->ev1));
	t->have_events = 1;
	free(bucket);
	return t;
cleanup:
fail:
	(void)rc;
	free(bucket);
	t5_cuda_free(t);
	return NULL;
}

void t5_cuda_free(struct t5_cuda *t)
{
	if (!t)
		return;
	if (t->st)
		cudaStreamSynchronize(t->st);
	if (t->have_events) {
		cudaEventDestroy(t->ev0);
		cudaEventDestroy(t->ev1);
	}
	if (t->blas)
		cublasDestroy(t->blas);
	wan_gemm_free(t->gemm);
	wan_arena_release(&t->wa);
	wan_arena_release(&t->aa);
	if (t->st)
		cudaStreamDestroy(t->st);
	free(t->layers);
	free(t);
}

size_t t5_cuda_weight_bytes(const struct t5_cuda *t) { return t->wa.used; }
size_t t5_cuda_activation_bytes(const struct t5_cuda *t) { return t->aa.used; }

/* ---- forward ---- */

static int blas_fail(char *err, size_t errlen, const char *what, cublasStatus_t s)
{
	snprintf(err, errlen, "%s failed: cuBLAS status %d", what, (int)s);
	return -1;
}

/* x f32 [R, D] += a bf16 [R, K] · W bf16 [D, K]ᵀ: the output projections accumulate straight
 * into the fp32 residual (beta = 1), so their results are never rounded to bf16. */
static int residual_gemm(struct t5_cuda *t, int R, int K, const void *a, const void *w, char *err, size_t errlen)
{
	const float one = 1.f;
	cublasStatus_t bs = cublasGemmEx(t->blas, CUBLAS_OP_T, CUBLAS_OP_N, t->cfg.dim, R, K, &one, w, CUDA_R_16BF, K,
					 a, CUDA_R_16BF, K, &one, t->x, CUDA_R_32F, t->cfg.dim, CUBLAS_COMPUTE_32F,
					 CUBLAS_GEMM_DEFAULT);
	return bs == CUBLAS_STATUS_SUCCESS ? 0 : blas_fail(err, errlen, "residual GEMM", bs);
}

/* Runs the layers over R rows of a LEN-token sequence whose ids and keymask are on the device;
 * leaves the final normalized rows in t->out. */
static int forward(struct t5_cuda *t, int R, int len, char *err, size_t errlen)
{
	const struct t5_config *c = &t->cfg;
	const int d = c->dim, da = c->dim_attn, f = c->dim_ffn, H = c->num_heads, hd = c->head_dim;
	const float one = 1.f, zero = 0.f;
	const float eps = (float)c->eps;
	char *qkv = t->qkv;
	cublasStatus_t bs;

	if (t5_k_embed(t->st, t->ids, t->emb, t->x, R, d, err, errlen))
		return -1;
	for (int l = 0; l < c->num_layers; l++) {
		const struct t5_layer_dev *L = &t->layers[l];
		if (t5_k_add_rmsnorm(t->st, t->x, NULL, L->n1, t->h, NULL, R, d, eps, err, errlen))
			return -1;
		if (wan_gemm_bf16(t->gemm, t->st, R, 3 * da, d, t->h, d, L->wqkv, d, NULL, WAN_EPI_NONE, t->qkv, 3 * da,
				  err, errlen))
			return -1;
		/* S[h][i][j] = K_j · Q_i (column-major: C = Kᵀ-view x Q-view) */
		bs = cublasGemmStridedBatchedEx(t->blas, CUBLAS_OP_T, CUBLAS_OP_N, R, R, hd, &one, qkv + 2 * (size_t)da,
						CUDA_R_16BF, 3 * da, hd, qkv, CUDA_R_16BF, 3 * da, hd, &zero, t->s,
						CUDA_R_32F, R, (long long)R * R, H, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
		if (bs != CUBLAS_STATUS_SUCCESS)
			return blas_fail(err, errlen, "attention logits GEMM", bs);
		if (t5_k_softmax_bias(t->st, t->s, t->p, L->pos, t->bucket, t->keymask, R, R, R, H, len, err, errlen))
			return -1;
		bs = cublasGemmStridedBatchedEx(t->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, R, R, &one, qkv + 4 * (size_t)da,
						CUDA_R_16BF, 3 * da, hd, t->p, CUDA_R_16BF, R, (long long)R * R, &zero,
						t->o, CUDA_R_16BF, da, hd, H, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
		if (bs != CUBLAS_STATUS_SUCCESS)
			return blas_fail(err, errlen, "attention PV GEMM", bs);
		if (residual_gemm(t, R, da, t->o, L->wo, err, errlen))
			return -1;
		if (t5_k_add_rmsnorm(t->st, t->x, NULL, L->n2, t->h, NULL, R, d, eps, err, errlen))
			return -1;
		if (wan_gemm_bf16(t->gemm, t->st, R, 2 * f, d, t->h, d, L->wgf, d, NULL, WAN_EPI_NONE, t->gf, 2 * f, err,
				  errlen))
			return -1;
		if (t5_k_geglu(t->st, t->gf, t->a, R, f, err, errlen))
			return -1;
		if (residual_gemm(t, R, f, t->a, L->wfc2, err, errlen))
			return -1;
	}
	return t5_k_add_rmsnorm(t->st, t->x, NULL, t->norm, NULL, t->out, R, d, eps, err, errlen);
}

/* Uploads ids and the key mask; returns R (rows to compute) and the real-token count. */
static int prepare(struct t5_cuda *t, const int64_t *ids, const int64_t *mask, int len, int *count, char *err,
		   size_t errlen)
{
	int rc = 0, n = 0, prefix = 1, R;
	int *hid = malloc(sizeof(int) * (size_t)len), *hmask = malloc(sizeof(int) * (size_t)len);
	if (!hid || !hmask) {
		free(hid);
		free(hmask);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < len; i++) {
		hid[i] = (int)ids[i];
		hmask[i] = mask[i] != 0;
		n += mask[i] > 0;
	}
	for (int i = 0; i < len; i++)
		prefix &= hmask[i] == (i < n);
	R = prefix ? ((n + 7) & ~7) : len;
	if (R > len)
		R = len;
	CU_TRY(cudaMemcpyAsync(t->ids, hid, sizeof(int) * (size_t)R, cudaMemcpyHostToDevice, t->st));
	CU_TRY(cudaMemcpyAsync(t->keymask, hmask, sizeof(int) * (size_t)R, cudaMemcpyHostToDevice, t->st));
	CU_TRY(cudaStreamSynchronize(t->st));
	*count = n;
	rc = R;
cleanup:
	free(hid);
	free(hmask);
	return rc;
}

int t5_cuda_encode(struct t5_cuda *t, const int64_t *ids, const int64_t *mask, int len, float *out, char *err,
		   size_t errlen)
{
	int rc = 0, count = 0, R;
	const int d = t->cfg.dim;
	if (len < 1 || len > t->max_len) {
		snprintf(err, errlen, "sequence length %d is out of range [1, %d]", len, t->max_len);
		return -1;
	}
	for (int i = 0; i < len; i++)
		if (ids[i] < 0 || ids[i] >= t->cfg.vocab_size) {
			snprintf(err, errlen, "token id %lld at position %d is out of range [0, %d)", (long long)ids[i], i,
				 t->cfg.vocab_size);
			return -1;
		}
	memset(out, 0, sizeof(float) * (size_t)len * d);
	if ((R = prepare(t, ids, mask, len, &count, err, errlen)) < 0)
		return -1;
	if (count == 0)
		return 0;
	if (forward(t, R, len, err, errlen))
		return -1;
	CU_TRY(cudaMemcpyAsync(out, t->out, sizeof(float) * (size_t)count * d, cudaMemcpyDeviceToHost, t->st));
	CU_TRY(cudaStreamSynchronize(t->st));
cleanup:
	return rc;
}

int t5_cuda_bench(struct t5_cuda *t, int tokens, int iters, double *best_ms, double *mean_ms, char *err,
		  size_t errlen)
{
	int rc = 0, count, R, len = t->max_len;
	int64_t *ids = calloc((size_t)len, sizeof(*ids)), *mask = calloc((size_t)len, sizeof(*mask));
	double best = 1e30, sum = 0;
	if (!ids || !mask || tokens < 1 || tokens > len) {
		snprintf(err, errlen, ids && mask ? "tokens %d out of range [1, %d]" : "out of memory", tokens, len);
		rc = -1;
		goto cleanup;
	}
	for (int i = 0; i < tokens; i++) {
		ids[i] = 3 + (i * 7919) % (t->cfg.vocab_size > 3 ? t->cfg.vocab_size - 3 : 1);
		mask[i] = 1;
	}
	if ((R = prepare(t, ids, mask, len, &count, err, errlen)) < 0) {
		rc = -1;
		goto cleanup;
	}
	for (int it = -1; it < iters; it++) {
		float ms = 0;
		CU_TRY(cudaEventRecord(t->ev0, t->st));
		if (forward(t, R, len, err, errlen)) {
			rc = -1;
			goto cleanup;
		}
		CU_TRY(cudaEventRecord(t->ev1, t->st));
		CU_TRY(cudaEventSynchronize(t->ev1));
		CU_TRY(cudaEventElapsedTime(&ms, t->ev0, t->ev1));
		if (it < 0)
			continue; /* warm-up: plans GEMM shapes */
		sum += ms;
		best = ms < best ? ms : best;
	}
	*best_ms = best;
	*mean_ms = sum / iters;
cleanup:
	free(ids);
	free(mask);
	return rc;
}
