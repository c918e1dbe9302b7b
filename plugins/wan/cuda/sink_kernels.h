/* sink_kernels.h: the adaptive-sink decision on the GPU (spec §4.7) and the cache write it
 * steers, so that a stream call with the adaptive sink on is one CUDA graph with no host
 * round trip per layer (sink_kernels.cu). Launchers return 0 or -1 with err set. */
#ifndef WAN_CUDA_SINK_KERNELS_H
#define WAN_CUDA_SINK_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>
#include "plugins/wan/cuda/sink_ring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where the decision reads token means (f32 rows of D) and keeps the sink frames' means for
 * the next call: sink frame j of slot b, K (kv 0) or V (kv 1), is at
 * sink + b·sink_slot + kv·sink_kv + j·D; the new tokens' means at fresh + b·fresh_slot +
 * kv·fresh_kv. KEEP (may be NULL, may equal SINK with the same strides) gets every sink
 * frame's mean after the write: the ones read, with the frame this write replaced (a whole
 * aligned frame) set to the new means, so the next call need not re-read the sink rows. */
struct wan_sink_means {
	const float *sink;
	int64_t sink_slot, sink_kv;
	const float *fresh;
	int64_t fresh_slot, fresh_kv;
	float *keep;
	int64_t keep_slot, keep_kv;
};

/* One layer's decision for call slots b < B, one block each. With the means of MS it computes
 * a_j = (cos(K_j, K_new) + cos(V_j, V_new)) / 2 for the NS sink frames in double exactly as
 * ops_cosine does (norms clamped at 1e-8), picks the first argmin when min a < threshold,
 * then applies dit_kv_advance to RINGS[b] (ring of this layer and slot b): it writes the
 * first cache row of the slot's new tokens to WRITE_ROW[b] (-1 when refused) and the decision
 * to REC[b]. L tokens per frame, ROWS cache rows, N_NEW tokens per slot. */
int wan_k_sink_decide(cudaStream_t st, struct wan_sink_means ms, int b, int ns, int d,
		      struct wan_sink_ring *rings, const struct wan_sink_params *params, int l,
		      int rows, int n_new, int *write_row, struct wan_sink_rec *rec, char *err,
		      size_t errlen);

/* Copies slot b's N new K and V rows (KNEW/VNEW bf16 [B, n, D]) to cache rows
 * [write_row[b], write_row[b] + n) of the slot (slots SLOT_STRIDE elements apart); a slot
 * with write_row[b] < 0 is left alone. D divisible by 8. */
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
