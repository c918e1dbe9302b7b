/* dit_kv.h: the host-side bookkeeping of the DiT self-attention KV cache (spec §4.7, §4.8):
 * ring buffer with sink frames, adaptive sink refresh, per-layer and per-slot evict lists with
 * upstream's eviction order, global/local end indices and the no-batch step counter.
 *
 * DESIGN: this module never touches cache memory. Whichever device holds the cache (the C
 * reference or CUDA) asks it, per layer and per batch slot, where to write the chunk's new
 * keys and values and how many cache rows attention sees; for the adaptive sink it computes
 * the cosine statistic itself and passes the result in. Everything here is deterministic from
 * the configuration and those statistics, so both devices share one implementation. State is
 * reset per stream (upstream keeps its evict lists across sessions; spec §11.14).
 *
 * Units: rows are tokens (a cache frame is tokens_per_frame rows); positions (c_start) are
 * tokens on the stream's timeline, as upstream's current_start. */
#ifndef HERU_WAN_DIT_KV_H
#define HERU_WAN_DIT_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Pending sink refreshes kept per layer and slot. Upstream's list grows without bound when
 * refreshes are queued faster than the cache rotates (no-batch mode checks S times per chunk);
 * past this many the oldest pending refresh is forgotten. */
#define DIT_KV_SINK_PENDING_MAX 256

struct dit_kv_config {
	int tokens_per_frame; /* L */
	int kv_frames;        /* cache length in latent frames (num_kv_cache, 6) */
	int sink_frames;      /* num_sink_tokens, in latent frames (3) */
	double sink_threshold;/* adapt_sink_threshold; <= -1 turns the adaptive sink off */
	int total_steps;      /* S: the no-batch step counter (kv_cache["total_steps"]) */
	int layers;
	int max_slots;        /* the stream-batch size S (>= 1) */
};

/* Where one layer's write for one slot goes, and what attention reads. */
struct dit_kv_step {
	int write_row; /* first cache row written: rows [write_row, write_row + n_new) */
	int attn_len;  /* attention covers cache rows [0, attn_len) after the write */
};

struct dit_kv;

/* Checks C (0 <= sink_frames < kv_frames, 4 <= kv_frames <= 48, L >= 1, ...). new, or NULL
 * with ERR. The state starts empty with one cache slot. */
struct dit_kv *dit_kv_new(const struct dit_kv_config *c, char *err, size_t errlen);
void dit_kv_free(struct dit_kv *kv);
const struct dit_kv_config *dit_kv_config(const struct dit_kv *kv);

/* A new stream: empty evict lists, end indices 0, one cache slot, step counters at S. */
void dit_kv_reset(struct dit_kv *kv);
/* The first chunk is done: the cache becomes SLOTS slots (1..max_slots), each a copy of slot
 * 0 (the device copies its cache rows the same way). Returns 0 or -1 with ERR. */
int dit_kv_expand(struct dit_kv *kv, int slots, char *err, size_t errlen);
/* The current number of cache slots (1 before expand). */
int dit_kv_slots(const struct dit_kv *kv);
int dit_kv_rows(const struct dit_kv *kv); /* kv_frames * L */

/* Whether the adaptive-sink statistic is needed for a write of N_NEW tokens: sink frames > 0,
 * threshold > -1 and n_new == L (upstream: n_new <= L, and its reshape requires == L). */
bool dit_kv_sink_check_needed(const struct dit_kv *kv, int n_new);
/* Given a[j] = (cos(mean k of sink frame j, mean new k) + cos(same for v)) / 2 for
 * j < sink_frames, returns the sink frame to refresh (argmin, first on ties) when
 * min a < threshold, else -1. */
int dit_kv_sink_pick(const struct dit_kv *kv, const double *a);

/* Layer LAYER, slot SLOT writes N_NEW tokens at position C_START. SINK_REFRESH is
 * dit_kv_sink_pick's answer (or -1). Fills OUT; returns 0, or -1 with ERR (bad slot, a write
 * that would leave the cache) and then changes nothing. */
int dit_kv_advance(struct dit_kv *kv, int layer, int slot, int64_t c_start, int n_new,
		   int sink_refresh, struct dit_kv_step *out, char *err, size_t errlen);

/* The same for every layer at once, when no sink decision is needed
 * (!dit_kv_sink_check_needed): OUT[layers] gets each layer's step. Without the adaptive sink
 * every layer's bookkeeping is identical, so a device may run the whole call with OUT[0]
 * (what a graph-captured forward wants). 0, or -1 with ERR and nothing changed. */
int dit_kv_advance_layers(struct dit_kv *kv, int slot, int64_t c_start, int n_new,
			  struct dit_kv_step *out, char *err, size_t errlen);

/* How many cache rows attention reads after layer LAYER, slot SLOT writes N_NEW tokens at
 * C_START: dit_kv_advance's attn_len, which the sink decision never changes (so a device can
 * size attention before it decides the write row). -1 for a slot or write dit_kv_advance
 * would refuse. Changes nothing. */
int dit_kv_attn_len(const struct dit_kv *kv, int layer, int slot, int64_t c_start, int n_new);

/* Inspection (tests, debugging, and a device that keeps a copy of the bookkeeping: the CUDA
 * engine runs the adaptive-sink decision on the GPU): the evict list of a layer and slot in
 * rows, front first; returns its length and copies at most MAX entries. */
int dit_kv_evict_list(const struct dit_kv *kv, int layer, int slot, int64_t *out, int max);
int64_t dit_kv_local_end(const struct dit_kv *kv, int layer, int slot);
int64_t dit_kv_global_end(const struct dit_kv *kv, int layer, int slot);
/* The no-batch step counter of a layer (kv_cache["total_steps"] counting down). */
int dit_kv_current_step(const struct dit_kv *kv, int layer);
/* Sink refreshes applied (dit_kv_advance with SINK_REFRESH >= 0) since the last reset, over
 * every layer and slot. */
long dit_kv_sink_refreshes(const struct dit_kv *kv);

#ifdef __cplusplus
}
#endif
#endif
