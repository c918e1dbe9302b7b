/* sink_ring.h: the adaptive-sink KV bookkeeping as the GPU keeps it (spec §4.7), shared by
 * the decision kernel (sink_kernels.cu), the DiT (dit_cuda.c) and the engine that fills it from
 * dit_kv (dit_cuda_engine.c). Plain C, fixed-size records, so one copy moves all of it.
 *
 * One ring per layer and cache slot holds exactly dit_kv.c's per-(layer, slot) state: the
 * evict list (cache rows, front first: pending sink refreshes, then rolling entries), the
 * global and local end indices, and the layer's no-batch step counter. All values are cache
 * rows or token positions; they fit in int32 (positions < 1024 frames of at most 2^20
 * tokens). */
#ifndef WAN_CUDA_SINK_RING_H
#define WAN_CUDA_SINK_RING_H

#ifdef __cplusplus
extern "C" {
#endif

/* dit_kv's DIT_KV_SINK_PENDING_MAX (the engine checks they agree) and the list room: the
 * pending refreshes plus at most one rolling entry per cache frame (kv_frames <= 64) and one
 * spare, as dit_kv sizes its lists. */
#define WAN_SINK_PENDING_MAX 256
#define WAN_SINK_LIST_MAX (WAN_SINK_PENDING_MAX + 64 + 1)

struct wan_sink_ring {
	int n;                /* evict list entries in use */
	int global_end;       /* token position after the last write (upstream global_end_index) */
	int local_end;        /* cache rows in use (local_end_index) */
	int current_step;     /* the layer's no-batch step counter */
	int list[WAN_SINK_LIST_MAX];
};

/* What one call needs besides the rings; lives in device memory, so a graph replays it with
 * new values. */
struct wan_sink_params {
	double threshold;     /* refresh when min over sink frames of a_j < threshold */
	int total_steps;      /* the step counter's reset value (S) */
	int kv_slots;         /* cache slots of the bookkeeping: 1 enables the step counter */
	int list_cap;         /* dit_kv's list capacity: pending max + kv_frames + 1 */
	int pending_max;      /* pending refreshes kept per list */
	int c_start[8];       /* per call slot: token position of its first new token */
};

/* What the device decided, per layer and call slot (read back once per call). */
struct wan_sink_rec {
	int pick;             /* sink frame refreshed, or -1 */
	int write_row;        /* first cache row written */
	int attn_len;         /* rows attention reads */
	int status;           /* 0, or WAN_SINK_E*: the write was refused (nothing written) */
};

enum {
	WAN_SINK_OK = 0,
	WAN_SINK_ENOROOM = 1,  /* full cache, no row to write to (dit_kv: "no free slot") */
	WAN_SINK_ERANGE = 2,   /* the write would leave the cache */
	WAN_SINK_EFULL = 3,    /* the evict list has no room (corrupt state) */
};

#ifdef __cplusplus
}
#endif
#endif
