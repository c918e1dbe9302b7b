/* t5_kernels.h: launchers of the CUDA umT5 encoder's kernels (t5_kernels.cu). Each returns 0 or
 * -1 with err set when the launch failed. bf16 buffers are void * so this stays plain C. */
#ifndef WAN_CUDA_T5_KERNELS_H
#define WAN_CUDA_T5_KERNELS_H

#include <stddef.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x f32 [rows, d] = table bf16 [*, d] rows ids[0..rows) (device ints). */
int t5_k_embed(cudaStream_t st, const int *ids, const void *table, float *x, int rows, int d, char *err,
	       size_t errlen);
/* Per row: x += y (y bf16, may be NULL), then RMS-normalize x (fp32 statistics) times g (f32
 * [d]) into out_bf16 (bf16) or, when out_bf16 is NULL, out_f32. */
int t5_k_add_rmsnorm(cudaStream_t st, float *x, const void *y, const float *g, void *out_bf16, float *out_f32,
		     int rows, int d, float eps, char *err, size_t errlen);
/* s f32 [heads, rows, ld] logits q·kᵀ -> p bf16 [heads, rows, ld] = softmax over keys j < nk
 * with keymask[j] != 0 of s + pos[bucket[j - i + len - 1] * heads + h]; other entries 0. */
int t5_k_softmax_bias(cudaStream_t st, const float *s, void *p, const float *pos, const int *bucket,
		      const int *keymask, int rows, int nk, int ld, int heads, int len, char *err, size_t errlen);
/* a bf16 [rows, f] = gf[:, f:2f] · gelu_tanh(gf[:, 0:f]) (gf bf16 [rows, 2f]). */
int t5_k_geglu(cudaStream_t st, const void *gf, void *a, int rows, int f, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
