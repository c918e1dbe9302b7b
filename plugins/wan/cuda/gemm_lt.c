/* gemm_lt.c: see gemm_lt.h.
 *
 * cuBLASLt is column-major. A row-major Y[M,N] is the column-major Yᵀ[N,M], so we compute
 * Yᵀ = W·Xᵀ with A = W (stored column-major as [K,N], used transposed: op(A) = [N,K]) and
 * B = X (column-major [K,M], not transposed). The bias epilogue adds bias[row of C] = bias[N]. */
#include "plugins/wan/cuda/gemm_lt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cublasLt.h>
#include "plugins/wan/cuda/cuda_check.h"

#define GEMM_CACHE_MAX 128
#define GEMM_TUNE_ALGOS 24 /* heuristic candidates timed on a shape's first call */
#define GEMM_TUNE_REPS 4
#define GEMM_SPLITK_EXTRA 12

struct gemm_plan {
	int m, n, k, ldx, ldw, ldy, epi, tin, tout;
	cublasLtMatmulDesc_t desc;
	cublasLtMatrixLayout_t la, lb, lc;
	cublasLtMatmulAlgo_t algo;
	/* heuristic candidates, best guess first, then split-K variants */
	cublasLtMatmulAlgo_t cand[GEMM_TUNE_ALGOS + GEMM_SPLITK_EXTRA];
	int ncand, tuned;
};

struct wan_gemm {
	cublasLtHandle_t lt;
	void *workspace;      /* new (cudaMalloc) */
	size_t workspace_bytes;
	int tune;             /* time the candidates on each shape's first call */
	int nplans;
	struct gemm_plan plans[GEMM_CACHE_MAX];
};

struct wan_gemm *wan_gemm_new(size_t workspace_bytes, char *err, size_t errlen)
{
	struct wan_gemm *g = calloc(1, sizeof(*g));
	int rc = 0;

	if (!g) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	LT_TRY(cublasLtCreate(&g->lt));
	g->workspace_bytes = workspace_bytes;
	if (workspace_bytes)
		CU_TRY(cudaMalloc(&g->workspace, workspace_bytes));
cleanup:
	if (rc) {
		wan_gemm_free(g);
		return NULL;
	}
	return g;
}

static void plan_release(struct gemm_plan *p)
{
	if (p->desc)
		cublasLtMatmulDescDestroy(p->desc);
	if (p->la)
		cublasLtMatrixLayoutDestroy(p->la);
	if (p->lb)
		cublasLtMatrixLayoutDestroy(p->lb);
	if (p->lc)
		cublasLtMatrixLayoutDestroy(p->lc);
	memset(p, 0, sizeof(*p));
}

void wan_gemm_free(struct wan_gemm *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->nplans; i++)
		plan_release(&g->plans[i]);
	if (g->workspace)
		cudaFree(g->workspace);
	if (g->lt)
		cublasLtDestroy(g->lt);
	free(g);
}

int wan_gemm_cached_shapes(const struct wan_gemm *g)
{
	return g ? g->nplans : 0;
}

static int plan_build(struct wan_gemm *g, struct gemm_plan *p, char *err, size_t errlen)
{
	cublasLtMatmulPreference_t pref = NULL;
	cublasLtMatmulHeuristicResult_t heur[GEMM_TUNE_ALGOS];
	cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
	cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
	static const cudaDataType_t types[3] = { CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F };
	cudaDataType_t tin = types[p->tin], tout = types[p->tout], bias_type = tout;
	int found = 0, rc = 0;

	LT_TRY(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
	if (p->epi == WAN_EPI_BIAS)
		epi = CUBLASLT_EPILOGUE_BIAS;
	else if (p->epi == WAN_EPI_BIAS_GELU)
		epi = CUBLASLT_EPILOGUE_GELU_BIAS;
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
	if (p->epi != WAN_EPI_NONE)
		LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
						      &bias_type, sizeof(bias_type)));
	/* A = W: column-major [K, N] with ld = ldw; B = X: [K, M] ld ldx; C = Y: [N, M] ld ldy. */
	LT_TRY(cublasLtMatrixLayoutCreate(&p->la, tin, p->k, p->n, p->ldw));
	LT_TRY(cublasLtMatrixLayoutCreate(&p->lb, tin, p->k, p->m, p->ldx));
	LT_TRY(cublasLtMatrixLayoutCreate(&p->lc, tout, p->n, p->m, p->ldy));
	LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
	LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
						    &g->workspace_bytes, sizeof(g->workspace_bytes)));
	LT_TRY(cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref,
					      g->tune ? GEMM_TUNE_ALGOS : 1, heur, &found));
	if (found < 1) {
		snprintf(err, errlen, "cuBLASLt has no algorithm for M=%d N=%d K=%d (types %d/%d)", p->m,
			 p->n, p->k, p->tin, p->tout);
		rc = -1;
		goto cleanup;
	}
	p->algo = heur[0].algo;
	for (int i = 0; i < found && i < GEMM_TUNE_ALGOS; i++)
		if (heur[i].state == CUBLAS_STATUS_SUCCESS)
			p->cand[p->ncand++] = heur[i].algo;
	/* split-K variants of the first few candidates: a grid of N=1536 output tiles fills the
	 * 132 SMs only ~2.2 times (the FFN down and the O projections) */
	for (int i = 0, n0 = p->ncand; g->tune && i < n0 && i < 4; i++)
		for (int sk = 2; sk <= 4 && p->ncand < GEMM_TUNE_ALGOS + GEMM_SPLITK_EXTRA; sk++) {
			cublasLtMatmulAlgo_t a = p->cand[i];
			cublasLtMatmulHeuristicResult_t chk;
			int32_t splits = sk;

			if (cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
								 sizeof(splits)) != CUBLAS_STATUS_SUCCESS ||
			    cublasLtMatmulAlgoCheck(g->lt, p->desc, p->la, p->lb, p->lc, p->lc, &a, &chk) !=
				    CUBLAS_STATUS_SUCCESS ||
			    chk.workspaceSize > g->workspace_bytes)
				continue;
			p->cand[p->ncand++] = a;
		}
	p->tuned = p->ncand < 2;
cleanup:
	if (pref)
		cublasLtMatmulPreferenceDestroy(pref);
	return rc;
}

static struct gemm_plan *plan_get(struct wan_gemm *g, int m, int n, int k, int ldx, int ldw,
				  int ldy, int epi, int tin, int tout, char *err, size_t errlen)
{
	struct gemm_plan *p;

	for (int i = 0; i < g->nplans; i++) {
		p = &g->plans[i];
		if (p->m == m && p->n == n && p->k == k && p->ldx == ldx && p->ldw == ldw &&
		    p->ldy == ldy && p->epi == epi && p->tin == tin && p->tout == tout)
			return p;
	}
	if (g->nplans == GEMM_CACHE_MAX) {
		snprintf(err, errlen, "GEMM plan cache full (%d shapes)", GEMM_CACHE_MAX);
		return NULL;
	}
	p = &g->plans[g->nplans];
	memset(p, 0, sizeof(*p));
	p->m = m; p->n = n; p->k = k; p->ldx = ldx; p->ldw = ldw; p->ldy = ldy; p->epi = epi;
	p->tin = tin;
	p->tout = tout;
	if (plan_build(g, p, err, errlen)) {
		plan_release(p);
		return NULL;
	}
	g->nplans++;
	return p;
}

void wan_gemm_set_tuning(struct wan_gemm *g, int on)
{
	const char *e = getenv("WAN_GEMM_TUNE");

	if (g)
		g->tune = on && !(e && e[0] == '0');
}

static int overlaps(const void *a, size_t an, const void *b, size_t bn)
{
	const char *x = a, *y = b;

	return x < y + bn && y < x + an;
}

/* Times every candidate algorithm of P on these operands (device events, the median-free
 * mean of a few runs after one warm-up) and keeps the fastest. Only outside stream capture
 * and when Y overlaps no input (each run rewrites Y with the same values). Errors of a
 * candidate just drop it; the plan keeps its heuristic choice if nothing runs. */
static void plan_tune(struct wan_gemm *g, struct gemm_plan *p, cudaStream_t st, const void *x,
		      const void *w, void *y)
{
	const float one = 1.0f, zero = 0.0f;
	enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
	cudaEvent_t e0 = NULL, e1 = NULL;
	size_t xb = ((size_t)(p->m - 1) * p->ldx + p->k) * 2, wb = ((size_t)(p->n - 1) * p->ldw + p->k) * 2;
	size_t yb = ((size_t)(p->m - 1) * p->ldy + p->n) * (p->tout == 2 ? 4 : 2); /* f32 or 16-bit Y */
	float best = -1.0f, first = 0.0f;
	int best_i = 0;

	p->tuned = 1;
	if (cudaStreamIsCapturing(st, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone ||
	    overlaps(y, yb, x, xb) || overlaps(y, yb, w, wb))
		return;
	if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess)
		goto cleanup;
	for (int i = 0; i < p->ncand; i++) {
		float ms = 0.0f;
		int ok = 1;

		for (int r = 0; r <= GEMM_TUNE_REPS && ok; r++) {
			if (r == 1 && cudaEventRecord(e0, st) != cudaSuccess)
				ok = 0;
			if (ok && cublasLtMatmul(g->lt, p->desc, &one, w, p->la, x, p->lb, &zero, y, p->lc, y,
						 p->lc, &p->cand[i], g->workspace, g->workspace_bytes,
						 st) != CUBLAS_STATUS_SUCCESS)
				ok = 0;
		}
		if (!ok || cudaEventRecord(e1, st) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
		    cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
			continue;
		if (best < 0.0f || ms < best) {
			best = ms;
			best_i = i;
			p->algo = p->cand[i];
		}
		if (i == 0)
			first = ms;
	}
	if (getenv("WAN_GEMM_DEBUG"))
		fprintf(stderr, "gemm M=%d N=%d K=%d epi %d: %d candidates, heuristic %.3f ms, best #%d %.3f ms\n",
			p->m, p->n, p->k, p->epi, p->ncand, first / GEMM_TUNE_REPS, best_i,
			best / GEMM_TUNE_REPS);
cleanup:
	cudaGetLastError();
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
}

int wan_gemm_ex(struct wan_gemm *g, cudaStream_t st, enum wan_gemm_type tin,
		enum wan_gemm_type tout, int m, int n, int k,
		  const void *x, int ldx, const void *w, int ldw, const void *bias,
		  enum wan_gemm_epi epi, void *y, int ldy, char *err, size_t errlen)
{
	const float one = 1.0f, zero = 0.0f;
	struct gemm_plan *p;

	if (m <= 0 || n <= 0 || k <= 0 || ldx < k || ldw < k || ldy < n) {
		snprintf(err, errlen, "bad GEMM shape M=%d N=%d K=%d (ld %d/%d/%d)", m, n, k, ldx, ldw, ldy);
		return -1;
	}
	if ((int)tin < 0 || tin > WAN_GEMM_F16 || (int)tout < 0 || tout > WAN_GEMM_F32) {
		snprintf(err, errlen, "bad GEMM data types %d/%d", (int)tin, (int)tout);
		return -1;
	}
	if (epi != WAN_EPI_NONE && !bias) {
		snprintf(err, errlen, "GEMM bias epilogue without a bias");
		return -1;
	}
	p = plan_get(g, m, n, k, ldx, ldw, ldy, (int)epi, (int)tin, (int)tout, err, errlen);
	if (!p)
		return -1;
	if (epi != WAN_EPI_NONE)
		LT_RET(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
						      &bias, sizeof(bias)));
	if (!p->tuned)
		plan_tune(g, p, st, x, w, y);
	LT_RET(cublasLtMatmul(g->lt, p->desc, &one, w, p->la, x, p->lb, &zero, y, p->lc, y, p->lc,
			      &p->algo, g->workspace, g->workspace_bytes, st));
	return 0;
}

int wan_gemm_bf16(struct wan_gemm *g, cudaStream_t st, int m, int n, int k,
		  const void *x, int ldx, const void *w, int ldw, const void *bias,
		  enum wan_gemm_epi epi, void *y, int ldy, char *err, size_t errlen)
{
	return wan_gemm_ex(g, st, WAN_GEMM_BF16, WAN_GEMM_BF16, m, n, k, x, ldx, w, ldw, bias, epi, y,
			   ldy, err, errlen);
}
