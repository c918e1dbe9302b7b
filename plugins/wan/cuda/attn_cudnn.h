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

/* 1 when the shape runs on cuDNN (after planning it), 2 when on the fa3 wgmma kernel
 * (attn_fa3.h), 0 when on the fallback kernel. An fa3 candidate counts as cuDNN until its
 * first eager run has timed both and found fa3 faster. */
int wan_attn_uses_cudnn(struct wan_attn *a, const struct wan_attn_shape *s);

/* What runs shape s (planning it if new), in a few words into buf (returned): "cuDNN flash",
 * "fa3 tile 192", "fa3 tile 192, last wave in 4 key parts", "fallback kernel", ... */
const char *wan_attn_variant(struct wan_attn *a, const struct wan_attn_shape *s, char *buf, size_t len);

/* Which shapes may run on the fa3 kernel (head dim 128 on a Hopper GPU): -1 none, 0 those
 * where it beats the cuDNN plan (timed on first use; the default), 1 all (WAN_ATTN=fa3). The
 * environment sets the initial mode: WAN_ATTN=cudnn gives -1. Affects shapes planned later;
 * without cuDNN (use_cudnn = 0) it stays -1. */
void wan_attn_set_fa3(struct wan_attn *a, int mode);

/* Shapes planned so far (*plans) and, of those, how many still wait for the timing of their
 * first eager run (*untimed: cuDNN engine configs or fa3 against cuDNN); tests use them to
 * see that nothing new is planned or timed after a stream's shapes were prepared. */
void wan_attn_counts(const struct wan_attn *a, int *plans, int *untimed);

/* Key split of a planned cuDNN shape (1: none; 0: not on cuDNN). */
int wan_attn_split(struct wan_attn *a, const struct wan_attn_shape *s);

/* The fallback kernel's launcher (kernels.cu). kv_len_dev may be NULL: then s->skv for all. */
int wan_attn_fallback(cudaStream_t st, const struct wan_attn_shape *s, const int *kv_len_dev,
		      const void *q, const void *k, const void *v, void *o, char *err, size_t errlen);

/* Merges `split` partial attention outputs of one query set (kernels.cu): opart bf16
 * [b·split, sq, h·d] each normalised by its own softmax, stats f32 [b·split, h, sq] their
 * log-sum-exp; writes o (BSHD with the given strides). */
int wan_attn_combine(cudaStream_t st, const void *opart, const float *stats, void *o, int b,
		     int split, int h, int d, int sq, int64_t o_bstride, int64_t o_sstride,
		     char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
