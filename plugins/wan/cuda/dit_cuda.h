/* dit_cuda.h: the Wan2.1 causal DiT forward on one GPU (bf16 storage, fp32 accumulation).
 *
 * DESIGN
 * One forward is S slots x n tokens (n = F latent frames of L tokens; F = 2 for the first
 * chunk, 1 in the stream) against per-slot, per-layer self-attention KV caches and a shared
 * cross-attention cache (spec §2, §4). The host owns the ring-buffer bookkeeping (which cache
 * rows a call writes, how many it attends, the RoPE start frame of each slot: dit_*.c); this
 * engine only executes a call described by struct dit_cuda_call:
 *   - slot b's tokens are written to cache rows [write_row[b], write_row[b] + n) (roped K, V);
 *   - slot b attends cache rows [0, kv_len[b]) (non-causal, the chunk's own rows included);
 *   - temporal RoPE position of slot b's frame f is start_frame[b] + f.
 * Memory is planned once (dit_cuda_new): a parameter arena and an activation arena sized for
 * the largest call (max(slots, 2) frames of L tokens) plus the caches. Self-attention runs on
 * cuDNN flash attention: one batched call when every slot attends the same number of rows,
 * one call per slot when the lengths differ (the stream's warm-up calls, adaptive-sink
 * calls); the fallback kernel only when cuDNN refuses a shape. Each call shape (slots, frames,
 * per-slot kv_len) is captured into a CUDA graph on first use (up to 24 graphs, ragged shapes
 * up to 20); later calls copy the per-call integers into device memory and replay the graph.
 * dit_stream_prepare (dit_stream.h) runs every call shape of a stream mode once at load, so
 * a stream's own calls all replay graphs from the first one.
 * The first call of a shape also times the cuBLASLt and cuDNN candidates and keeps the
 * fastest. A call with the adaptive sink on (dit_cuda_forward_sink) decides each layer's
 * sink refresh on the device (sink_kernels.cu: the statistic, dit_kv's pick and ring update)
 * and is graphed the same way, keyed by its sink frame count too; the host uploads the ring
 * state before the call and reads the decisions back once after it. The sink frames' token
 * means are kept on the device between such calls (a write that lands on a sink frame
 * replaces its kept mean), so a steady call reads only its new keys/values, summed by a pass
 * over the QKV output before the decision, which are then written straight to the decided
 * rows (no staging copy); any other cache
 * write (plain forward, slot copy, clear) makes the next sink call re-read them. The
 * host-callback forward (forward_hooked) runs eagerly with one readback per layer.
 * Every call runs on the engine's one stream (splitting a call's slots over two streams was
 * measured slower and removed: NOTES.md "twostream"). The time embedding (timestep MLP, every
 * layer's modulation vectors) is computed outside the graphs, only when a call's slot
 * timesteps differ from the previous call's (WAN_EMB_CACHE=0: inside the graph, every call).
 * Thread-affine: every call on one thread (the CUDA context's).
 */
#ifndef WAN_CUDA_DIT_CUDA_H
#define WAN_CUDA_DIT_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include "plugins/wan/cuda/sink_ring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_CUDA_MAX_SLOTS 8
#define DIT_CUDA_MAX_FRAMES 8 /* latent frames per slot in one call */

struct dit_cuda_dims {
	int dim, ffn_dim, num_heads, num_layers, text_len, text_dim, freq_dim;
	double eps;
};

struct dit_cuda_plan {
	int lat_h, lat_w;    /* latent grid (pixel H/8, W/8), both even */
	int slots;           /* most slots per call (S) */
	int kv_frames;       /* cache length in latent frames (6) */
	int max_frames;      /* most slots x frames in one call; 0: max(slots, 2) */
	int contexts;        /* prompts: 1 (shared by every slot) or one per slot; 0: 1 */
};

struct dit_cuda_call {
	int slots, frames;                         /* B, F */
	int t[DIT_CUDA_MAX_SLOTS][DIT_CUDA_MAX_FRAMES];     /* integer timesteps */
	float sigma[DIT_CUDA_MAX_SLOTS][DIT_CUDA_MAX_FRAMES]; /* sigma(t) for x0 */
	int start_frame[DIT_CUDA_MAX_SLOTS];       /* RoPE frame of the slot's first frame */
	int write_row[DIT_CUDA_MAX_SLOTS];         /* first cache row written (tokens) */
	int kv_len[DIT_CUDA_MAX_SLOTS];            /* rows attended (tokens), >= write_row + n */
};

enum dit_cuda_comp {
	DIT_C_EMBED, DIT_C_NORMS, DIT_C_QKV, DIT_C_SELF_ATTN, DIT_C_PROJ, DIT_C_CROSS_ATTN,
	DIT_C_FFN, DIT_C_HEAD, DIT_C_COUNT
};
extern const char *const dit_cuda_comp_names[DIT_C_COUNT];

struct dit_cuda; /* opaque */

/* Plans memory and creates the handles. new; NULL with err set. */
struct dit_cuda *dit_cuda_new(const struct dit_cuda_dims *dims, const struct dit_cuda_plan *plan,
			      char *err, size_t errlen);
void dit_cuda_free(struct dit_cuda *m);

/* Fills every parameter with deterministic random values of a sane scale (benchmarks). */
int dit_cuda_random_weights(struct dit_cuda *m, uint64_t seed, char *err, size_t errlen);
/* Uploads one parameter by its state-dict name (spec §3.1, without a "model." prefix) from
 * host f32 data of exactly `count` elements. */
int dit_cuda_set_tensor(struct dit_cuda *m, const char *name, const float *data, size_t count,
			char *err, size_t errlen);
/* Text context: host f32 [text_len, text_dim] (NULL: random on the device). Runs
 * text_embedding and fills every layer's cross-attention K/V cache (spec §2.4, §4.9). */
int dit_cuda_set_context(struct dit_cuda *m, const float *ctx, uint64_t seed, char *err,
			 size_t errlen);

/* CTX host f32 [nctx, text_len, text_dim]: nctx 1 (shared) or one per slot (slot b uses
 * prompt b; up to plan.contexts). */
int dit_cuda_set_contexts(struct dit_cuda *m, const float *ctx, int nctx, char *err, size_t errlen);

/* Per-layer KV decision (adaptive sink, spec §4.7): called for every layer and slot after the
 * layer's new keys/values exist and before they are written. MEANS (host f32, borrowed for
 * the call) holds 2·(nsink+1) rows of D: the token means of K over sink frames 0..nsink-1 of
 * the slot's cache, then of the new K; then the same for V. The callback sets the cache row
 * the new tokens go to and how many rows attention reads. 0, or -1 with ERR. */
typedef int (*dit_cuda_kv_fn)(void *ctx, int layer, int slot, const float *means, int nsink,
			      int d, int *write_row, int *attn_len, char *err, size_t errlen);
/* A forward whose cache writes are decided per layer by FN (eager, one small device-to-host
 * read per layer). The call's write_row/kv_len are ignored. flow: host f32 out. */
int dit_cuda_forward_hooked(struct dit_cuda *m, const struct dit_cuda_call *c, int nsink,
			    dit_cuda_kv_fn fn, void *fn_ctx, const float *x, float *flow,
			    char *err, size_t errlen);
/* Adaptive sink on the device. RINGS: the bookkeeping before the call, [num_layers][call
 * slots] (layer-major), which the device copies and updates as dit_kv_advance would; PARAMS:
 * threshold, counters and c_start per call slot (tokens). REC (may be NULL) gets the
 * decisions [num_layers][call slots] once the call is done, so the host can apply the same
 * picks to its own bookkeeping. */
struct dit_cuda_sink {
	int nsink;                          /* sink frames: 1..kv_frames-1 */
	struct wan_sink_params params;
	const struct wan_sink_ring *rings;  /* borrowed */
	struct wan_sink_rec *rec;           /* borrowed, out; NULL: not read back */
};
/* A forward whose cache writes the device decides per layer (no host round trip; graphed
 * like dit_cuda_forward). The call's kv_len must be the rows each slot attends (the sink
 * decision never changes it); write_row is ignored. flow: host f32 out (may be NULL);
 * synchronous when flow or rec is asked for. 0, or -1 with ERR. */
int dit_cuda_forward_sink(struct dit_cuda *m, const struct dit_cuda_call *c,
			  const struct dit_cuda_sink *s, const float *x, float *flow, char *err,
			  size_t errlen);

/* Debug counters since dit_cuda_new (tests, benchmarks). */
struct dit_cuda_counters {
	long forwards;            /* dit_cuda_forward and dit_cuda_forward_sink calls */
	long graph_replays;       /* of those, replayed from a captured graph */
	long sink_forwards;       /* dit_cuda_forward_sink calls */
	long sink_graph_replays;  /* of those, replayed from a captured graph */
	long sink_kept_means;     /* of those, using the kept sink-frame means */
	long graph_captures;      /* call shapes captured into a graph */
	/* the state of the handles when read (not counts of events): what was planned so far */
	long gemm_shapes;         /* GEMM shapes planned (each tuned on its first eager call) */
	long attn_plans;          /* attention shapes planned */
	long attn_untimed;        /* of those, waiting for their first eager run's timing */
};
void dit_cuda_get_counters(const struct dit_cuda *m, struct dit_cuda_counters *out);

/* Zeroes every self-attention cache, forgets the kept sink means and the time embedding. */
int dit_cuda_clear_caches(struct dit_cuda *m, char *err, size_t errlen);

/* One forward. x: host f32 [B,16,F,h,w] (NULL: use the device input buffer as it is).
 * x0 / flow: host f32 outputs of the same shape (either may be NULL). Synchronous when
 * a host output is asked for. */
int dit_cuda_forward(struct dit_cuda *m, const struct dit_cuda_call *c, const float *x,
		     float *x0, float *flow, char *err, size_t errlen);
/* Waits for the queued work. */
int dit_cuda_sync(struct dit_cuda *m, char *err, size_t errlen);
/* After a forward of SLOTS x FRAMES queued without host outputs: queues x0 = x - SIGMA[slot]·flow
 * in double, bitwise ops_flow_to_x0 (wan_k_flow_to_x0_f64), and its copy to the host array
 * OUT [slots][16, frames, h, w]. Not synchronous (OUT is written once the stream gets there;
 * pinned OUT makes the copy asynchronous). 0, or -1 with ERR. */
int dit_cuda_x0_to_host(struct dit_cuda *m, int slots, int frames, const double *sigma, float *out,
			char *err, size_t errlen);
/* Queues the copy of the last device-sink call's decisions (SLOTS call slots) to REC
 * [num_layers][slots]. Not synchronous. 0, or -1 with ERR. */
int dit_cuda_sink_rec_to_host(struct dit_cuda *m, int slots, struct wan_sink_rec *rec, char *err,
			      size_t errlen);
/* Zeroed page-locked host memory (the fastest copies), or NULL; free with dit_cuda_host_free. */
void *dit_cuda_host_alloc(size_t bytes);
void dit_cuda_host_free(void *p);
/* The device input buffer (f32, room for the largest call), for benchmarks. borrowed. */
float *dit_cuda_input(struct dit_cuda *m);
/* Eager forward with an event between op groups; ms[] gets the time per component. */
int dit_cuda_profile(struct dit_cuda *m, const struct dit_cuda_call *c, double ms[DIT_C_COUNT],
		     char *err, size_t errlen);
/* The same for a device-sink call (dit_cuda_forward_sink's arguments; the sink kernels count
 * as norms/rope), kept means used when the last call left them. */
int dit_cuda_profile_sink(struct dit_cuda *m, const struct dit_cuda_call *c,
			  const struct dit_cuda_sink *s, double ms[DIT_C_COUNT], char *err,
			  size_t errlen);
/* Copies cache rows [0, rows) of slot src to slot dst in every layer (stream-batch setup). */
int dit_cuda_copy_slot(struct dit_cuda *m, int dst, int src, int rows, char *err, size_t errlen);
/* Reads back rows [row0, row0+count) of layer `layer`, slot `slot`, K (which=0) or V (1) as
 * f32 [count, dim] (tests and the adaptive-sink check). */
int dit_cuda_read_cache(struct dit_cuda *m, int layer, int slot, int which, int row0, int count,
			float *out, char *err, size_t errlen);

/* Cache rows per slot (kv_frames · L). */
int dit_cuda_kv_rows(const struct dit_cuda *m);
/* Bytes: parameters, activations, KV + cross caches. 1 if graphs are in use. */
size_t dit_cuda_param_bytes(const struct dit_cuda *m);
size_t dit_cuda_act_bytes(const struct dit_cuda *m);
size_t dit_cuda_cache_bytes(const struct dit_cuda *m);
int dit_cuda_graphs_used(const struct dit_cuda *m);
/* 1 when self-attention of a uniform call with these sizes runs on cuDNN, 2 on the fa3 kernel. */
int dit_cuda_self_attn_on_cudnn(struct dit_cuda *m, int slots, int frames, int kv_len);
/* What runs that call's self- and cross-attention, in a few words each (wan_attn_variant). */
void dit_cuda_attn_variants(struct dit_cuda *m, int slots, int frames, int kv_len, char *self_what,
			    char *cross_what, size_t len);
/* Disables CUDA graphs (1) or cuDNN (set before the first forward; tests). */
void dit_cuda_set_options(struct dit_cuda *m, int use_graphs, int use_cudnn);

struct dit_engine;
struct dit_engine_params;
struct wan_dit_config;
/* The dit_cuda behind an engine opened by dit_cuda_engine_open (dit_cuda_engine.c, linked
 * only with it; tests). borrowed. */
struct dit_cuda *dit_cuda_engine_dit(const struct dit_engine *eng);
/* dit_cuda_engine_open for config CFG with dit_cuda_random_weights(SEED) instead of a
 * checkpoint (benchmarks and tests of whole streams at the real shapes; dit_cuda_engine.c). */
int dit_cuda_engine_open_random(const struct wan_dit_config *cfg, const struct dit_engine_params *p,
				uint64_t seed, struct dit_engine *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
