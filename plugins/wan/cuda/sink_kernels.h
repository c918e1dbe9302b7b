/* sink_kernels.h: the adaptive-sink statistics and decision on the GPU (spec §4.7) and the
 * cache write they steer, so that a stream call with the adaptive sink on is one CUDA graph
 * with no host round trip per layer, at nearly the cost of a plain call: the new keys'
 * statistics come from a pass over qkv, the decision follows, and the write goes straight to
 * the decided rows (sink_kernels.cu). Launchers return 0 or -1 with err set. */
#ifndef WAN_CUDA_SINK_KERNELS_H
#define WAN_CUDA_SINK_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>
#include "plugins/wan/cuda/sink_ring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows per chunk of every sink token sum: WAN_SINK_CHUNK = 8, 16 (default), 32 or 64, read
 * once. The sum of a frame's column is its chunks' sums (each sequential from the chunk's
 * first row, fp32) added in one fixed order (sink_kernels.cu DESIGN), so the mean of the same
 * bf16 rows is bitwise the same wherever it is computed. */
int wan_sink_chunk(void);

/* 1 when the fused pass computes the new keys bitwise as wan_k_qkv_rope_cache stores them:
 * width divisible by 256 (at most 8192) and the pass launches D/8 threads (registers),
 * head dim divisible by 8, and neither WAN_SINK_FUSED=0 nor WAN_K_VEC=0 (kernels.cu's plain
 * kernel rounds differently) in the environment. */
int wan_sink_fused_ok(int d, int hd);

/* Chunk sums of bf16 rows (D wide) for slots b < B, K (kc) and V (vc), row sets j < NSETS:
 * set (b, kv, j) is COUNT rows at (kv ? vc : kc) + b·slot_stride + j·set_stride (elements),
 * its chunk c goes to part[(((b·2 + kv)·nsets + j)·nch + c)·D], nch = ceil(count / chunk). */
int wan_k_sink_row_parts(cudaStream_t st, const void *kc, const void *vc, int64_t slot_stride,
			 int64_t set_stride, int b, int nsets, int count, int d, float *part,
			 char *err, size_t errlen);

/* The same chunk sums (nsets 1, count N) of the new keys and values of B slots, straight from
 * qkv bf16 [B·N, 3D] before anything is written: the keys RMS-normalized, scaled by g_k,
 * roped and rounded to bf16 exactly as wan_k_qkv_rope_cache stores
 * them (arguments as there). Needs wan_sink_fused_ok(d, hd). */
int wan_k_sink_fresh_parts(cudaStream_t st, const void *qkv, int b, int n, int d, int hd, int l,
			   int w2, const float *g_k, const void *rope, const int *start_frame,
			   float eps, float *part, char *err, size_t errlen);

/* What the statistics of one layer are made of, and where they go. */
struct wan_sink_reduce {
	int ns, l, n, chunk;      /* sink frames (<= 64), tokens per frame, new tokens per slot, wan_sink_chunk() */
	const float *sink_part;   /* the sink frames' chunk sums (row_parts: nsets ns, count l), or
				   * NULL: their means are the kept ones in KEEP */
	const float *fresh_part;  /* the new tokens' chunk sums (nsets 1, count n) */
	float *means;             /* out [B][2(ns+1)][D]: K frames 0..ns-1, new K, V frames, new V
				   * (the sink rows only when summed here) */
	float *keep;              /* kept sink means, frame j of slot b, K (kv 0) or V at keep +
				   * b·keep_slot + kv·keep_kv + j·D; may be NULL (means only) */
	int64_t keep_slot, keep_kv;
	double *dots;             /* scratch [B][ceil(D/64)][2 + 4·ns] */
	int *count;               /* [B] arrival counters: zero before the launch, left zero */
};

/* The token means of R (every set it sums) into r->means, nothing else (host-decided path). */
int wan_k_sink_reduce_means(cudaStream_t st, const struct wan_sink_reduce *r, int b, int d,
			    char *err, size_t errlen);

/* One layer's decision for call slots b < B, spread over ceil(D/64) blocks per slot: the means
 * of R, a_j = (cos(K_j, K_new) + cos(V_j, V_new)) / 2 for the NS sink frames in double as
 * ops_cosine computes it (norms clamped at 1e-8), the first argmin refreshed when below the
 * threshold, then dit_kv_advance on RINGS[b] (this layer's ring of slot b): the first cache
 * row of the slot's new tokens goes to WRITE_ROW[b] (-1 when refused), the decision to REC[b].
 * With r->keep: a full call (sink_part) stores every sink frame's mean there, and a write of a
 * whole aligned frame onto sink frame j replaces its kept means with the new tokens'. ROWS
 * cache rows. */
int wan_k_sink_decide(cudaStream_t st, const struct wan_sink_reduce *r, int b, int d,
		      struct wan_sink_ring *rings, const struct wan_sink_params *params, int rows,
		      int *write_row, struct wan_sink_rec *rec, char *err, size_t errlen);

/* Copies slot b's N new K and V rows (KNEW/VNEW bf16 [B, n, D]) to cache rows
 * [write_row[b], write_row[b] + n) of the slot (slots SLOT_STRIDE elements apart); a slot
 * with write_row[b] < 0 is left alone. */
int wan_k_kv_write_rows(cudaStream_t st, const void *knew, const void *vnew, void *kc, void *vc,
			int64_t slot_stride, int b, int n, int d, const int *write_row, char *err,
			size_t errlen);

/* dit_kv_advance on one ring, on the host (the same code the kernel runs; tests). Returns
 * a WAN_SINK_* status; on success fills *WRITE_ROW and *ATTN_LEN. */
int wan_sink_ring_advance_host(struct wan_sink_ring *r, const struct wan_sink_params *p, int l,
			       int rows, int nsink, int c_start, int n_new, int pick,
			       int *write_row, int *attn_len);

#ifdef __cplusplus
}
#endif
#endif
