/* gemm_lt.c: see gemm_lt.h.
 *
 * cuBLASLt is column-major. A row-major Y[M,N] is the column-major Yᵀ[N,M], so we compute
 * Yᵀ = W·Xᵀ with A = W (stored column-major as [K,N], used transposed: op(A) = [N,K]) and
 * B = X (column-major [K,M], not transposed). The bias epilogue adds bias[row of C] = bias[N]. */
#include "plugins/wan/cuda/gemm_lt.h"

#include <stdlib.h>
#include <string.h>
#include <cublasLt.h>
#include "plugins/wan/cuda/cuda_check.h"

#define GEMM_CACHE_MAX 128

struct gemm_plan {
	int m, n, k, ldx, ldw, ldy, epi, tin, tout;
	cublasLtMatmulDesc_t desc;
	cublasLtMatrixLayout_t la, lb, lc;
	cublasLtMatmulAlgo_t algo;
};

struct wan_gemm {
	cublasLtHandle_t lt;
	void *workspace;      /* new (cudaMalloc) */
	size_t workspace_bytes;
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
	cublasLtMatmulHeuristicResult_t heur;
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
	LT_TRY(cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1,
					      &heur, &found));
	if (found < 1) {
		snprintf(err, errlen, "cuBLASLt has no algorithm for M=%d N=%d K=%d (types %d/%d)", p->m,
			 p->n, p->k, p->tin, p->tout);
		rc = -1;
		goto cleanup;
	}
	p->algo = heur.algo;
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
