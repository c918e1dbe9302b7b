/* attn_cudnn.h: fused (flash) attention through the cuDNN 9 backend graph API, from C, with
 * a fallback kernel for shapes cuDNN refuses and for per-batch (ragged) key lengths.
 *
 * Layout: every tensor is "BSHD": element (b, s, h, d) of Q lives at
 * q + b*q_bstride + s*q_sstride + h*d_head + d (strides in elements, bf16). K and V share
 * their strides (kv_bstride, kv_sstride); O has its own. Keys [0, skv) of each batch entry are
 * attended, non-causally, with softmax scale `scale`.
 *
 * A plan (operation graph + execution plan + workspace size) is built once per shape and
 * cached; running a cached plan only launches, so it can be captured into a CUDA graph. */
#ifndef WAN_CUDA_ATTN_CUDNN_H
#define WAN_CUDA_ATTN_CUDNN_H

#include <stdint.h>
#include <stddef.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

struct wan_attn_shape {
	int b, h, d;           /* batch, heads, head dim (<= 128, multiple of 8) */
	int sq, skv;           /* query tokens, key tokens (uniform over the batch) */
	int64_t q_bstride, q_sstride;
	int64_t kv_bstride, kv_sstride;
	int64_t o_bstride, o_sstride;
	float scale;
};

struct wan_attn; /* opaque: cuDNN handle, plan cache, workspace */

/* use_cudnn = 0 forces the fallback kernel everywhere (tests, WAN_ATTN=fallback). */
struct wan_attn *wan_attn_new(int use_cudnn, char *err, size_t errlen);
void wan_attn_free(struct wan_attn *a);

/* O = softmax(Q·Kᵀ·scale)·V. Plans the shape on first use (cuDNN, else the fallback kernel).
 * All pointers borrowed device memory. */
int wan_attn_run(struct wan_attn *a, cudaStream_t st, const struct wan_attn_shape *s,
		 const void *q, const void *k, const void *v, void *o, char *err, size_t errlen);

/* Ragged keys: batch entry b attends keys [0, kv_len[b]) (device int array); always the
 * fallback kernel. s->skv is ignored. */
int wan_attn_run_ragged(struct wan_attn *a, cudaStream_t st, const struct wan_attn_shape *s,
			const int *kv_len_dev, const void *q, const void *k, const void *v,
			void *o, char *err, size_t errlen);

/* 1 when the shape runs on cuDNN (after planning it), 0 when on the fallback kernel. */
int wan_attn_uses_cudnn(struct wan_attn *a, const struct wan_attn_shape *s);

/* The fallback kernel's launcher (kernels.cu). kv_len_dev may be NULL: then s->skv for all. */
int wan_attn_fallback(cudaStream_t st, const struct wan_attn_shape *s, const int *kv_len_dev,
		      const void *q, const void *k, const void *v, void *o, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
