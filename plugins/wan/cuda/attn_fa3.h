/* attn_fa3.h: a Hopper flash-attention kernel (wgmma + TMA, sm_90a) for head dim 128.
 *
 * Same operands and layout as wan_attn_run (attn_cudnn.h: BSHD with strides, bf16 in and out,
 * fp32 accumulation, non-causal, keys [0, skv) of each batch entry). attn_cudnn.c selects it
 * per shape when it is faster than the cuDNN plan (or when WAN_ATTN=fa3 forces it); tests and
 * benchmarks may call it directly. Launching only encodes three tensor maps on the host and
 * launches one kernel: no allocation, no synchronisation, so it can be captured in a CUDA
 * graph. */
#ifndef WAN_CUDA_ATTN_FA3_H
#define WAN_CUDA_ATTN_FA3_H

#include <stddef.h>
#include "plugins/wan/cuda/attn_cudnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the kernel can run shape s on the current device: d == 128, a compute capability
 * 9.0 GPU, 16-byte aligned row and batch strides, h·128 columns inside each row. Else 0 with a
 * one-sentence reason in why (may be NULL). Prepares the kernel's shared-memory limit. */
int wan_attn_fa3_supported(const struct wan_attn_shape *s, char *why, size_t whylen);

/* O = softmax(Q·Kᵀ·scale)·V on stream st. q, k, v, o: borrowed device pointers, 16-byte
 * aligned. Returns 0, or -1 with err set (unsupported shape, misaligned pointer, launch
 * failure). */
int wan_attn_fa3(cudaStream_t st, const struct wan_attn_shape *s, const void *q, const void *k,
		 const void *v, void *o, char *err, size_t errlen);

/* Keys per tile of wan_attn_fa3 (the kernel exists for 128, 176 and 192). */
#define WAN_FA3_BN_DEFAULT 192

/* The same with the keys of each batch entry in `split` parts (1..4, one CTA set each, for
 * grids that would leave the GPU idle), merged by their log-sum-exp into o, and bn keys per
 * tile (128, 176, 192; 0: the default). Scratch for split > 1: opart bf16 [b·split, sq, h·128],
 * lse f32 [b·split, h, sq] (borrowed device memory). */
int wan_attn_fa3_split(cudaStream_t st, const struct wan_attn_shape *s, int split, int bn, const void *q,
		       const void *k, const void *v, void *opart, float *lse, void *o, char *err,
		       size_t errlen);

/* The same with the work units (128 queries x one head x one slot) that would form a partial
 * last wave on the device's multiprocessors split in `parts` (2..4) key parts each, so the
 * tail spreads over every SM; merged into o by their log-sum-exp. Runs whole when the units
 * fill whole waves. scratch and scratch_lse: borrowed device memory of the sizes
 * wan_attn_fa3_tail_scratch gives for `sms` multiprocessors. */
int wan_attn_fa3_tail(cudaStream_t st, const struct wan_attn_shape *s, int parts, int bn,
		      const void *q, const void *k, const void *v, void *scratch, float *scratch_lse,
		      void *o, char *err, size_t errlen);
size_t wan_attn_fa3_tail_scratch(int sms, size_t *lse_bytes);

#ifdef __cplusplus
}
#endif
#endif
