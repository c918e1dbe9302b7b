/* gemm_lt.h: bf16 GEMMs through cuBLASLt with fp32 accumulation.
 *
 * Layout convention (PyTorch nn.Linear): activations are row-major X[M,K], weights W[N,K]
 * (out x in), result row-major Y[M,N] = X·Wᵀ (+ bias[N]) (then GELU-tanh when asked).
 * Descriptors and the heuristic's first algorithm are built on first use of a shape and cached;
 * later calls only set the bias pointer and launch, so they are CUDA-graph capturable. */
#ifndef WAN_CUDA_GEMM_LT_H
#define WAN_CUDA_GEMM_LT_H

#include <stddef.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

enum wan_gemm_epi {
	WAN_EPI_NONE = 0,
	WAN_EPI_BIAS,       /* + bias[N] */
	WAN_EPI_BIAS_GELU,  /* GELU_tanh(· + bias[N]) */
};

struct wan_gemm; /* opaque */

/* New handle with a private workspace of `workspace_bytes` (32 MiB is plenty on Hopper). */
struct wan_gemm *wan_gemm_new(size_t workspace_bytes, char *err, size_t errlen);
void wan_gemm_free(struct wan_gemm *g);
/* On: each new shape's first call (outside stream capture) times, on its operands, the
 * cuBLASLt heuristic's candidates, split-K variants and, for shapes that fill the GPU, up to
 * 32 configurations of the heuristic's algorithm ids enumerated by tile size and ranked by
 * wave quantization, and keeps the fastest (bounded: tens of ms per shape, a few hundred at
 * most); off (the default): the heuristic's first choice. The environment variable WAN_GEMM_TUNE=0 keeps it off, WAN_GEMM_ENUM=0 tunes among
 * the heuristic's candidates only; WAN_GEMM_DEBUG=1 prints each shape's winner, =2 every
 * candidate. Set before the first call. */
void wan_gemm_set_tuning(struct wan_gemm *g, int on);

/* Y = epi(X·Wᵀ + bias). All pointers borrowed device memory, bf16. ld* are row strides in
 * elements (>= the row length). Returns 0 or -1 with err set (unsupported shape included). */
int wan_gemm_bf16(struct wan_gemm *g, cudaStream_t st, int m, int n, int k,
		  const void *x, int ldx, const void *w, int ldw, const void *bias,
		  enum wan_gemm_epi epi, void *y, int ldy, char *err, size_t errlen);

enum wan_gemm_type { WAN_GEMM_BF16 = 0, WAN_GEMM_F16, WAN_GEMM_F32 };

/* As wan_gemm_bf16 with X and W of type TIN (bf16 or fp16) and Y (and the bias) of type TOUT
 * (bf16, fp16 or f32; fp32 accumulation always). */
int wan_gemm_ex(struct wan_gemm *g, cudaStream_t st, enum wan_gemm_type tin,
		enum wan_gemm_type tout, int m, int n, int k, const void *x, int ldx, const void *w,
		int ldw, const void *bias, enum wan_gemm_epi epi, void *y, int ldy, char *err,
		size_t errlen);

/* Number of distinct shapes planned so far (for tests and the benchmark report). */
int wan_gemm_cached_shapes(const struct wan_gemm *g);

#ifdef __cplusplus
}
#endif
#endif
