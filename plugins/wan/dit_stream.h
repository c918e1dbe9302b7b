/* dit_stream.h: StreamDiffusionV2's streaming denoiser (spec §4.4-§4.8) over any DiT engine.
 *
 * DESIGN: the driver owns the stream state that does not live on the device: the step list,
 * the stream-batch slots (their latents, timesteps and positions), the KV bookkeeping
 * (dit_kv), the RoPE refresh and the emission rule. The engine (the C reference, or CUDA)
 * only runs forwards over its caches and copies cache slots. Every Gaussian draw goes
 * through the caller's noise callback, one latent frame [C, h, w] at a time, in the order the
 * algorithm draws them:
 *   first chunk: its mixing noise (frame 0, then frame 1), then for each of the S-1
 *     re-noisings between its sequential steps, 2 frames;
 *   later chunk: its mixing noise (1 frame), then the S-1 re-noising draws of its call:
 *     batch mode in slot order 0..S-2, no-batch mode in step order.
 * Latents are clean VAE latents (not normalized); a chunk is mixed as (1-s)·z + s·ε.
 * With an engine that splits its forward (forward_begin/forward_end) the draws that follow a
 * forward are made while the device runs it (same draws, same order), and x0 comes back
 * computed on the device; WAN_STREAM_HOST=1 (read by dit_stream_new) ignores the engine's
 * optional hooks (the host path, for comparisons), WAN_STREAM_TRACE=1 prints each call's
 * host phases on stderr. */
#ifndef HERU_WAN_DIT_STREAM_H
#define HERU_WAN_DIT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dit_kv.h"
#include "wan_sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where upstream's demo path restarts temporal positions (spec §4.8). */
#define DIT_ROPE_REFRESH_FRAME 50

/* A DiT device. All functions run on the thread that drives the stream. */
struct dit_engine {
	void *impl; /* owned by the engine: destroy frees it */
	/* dit_cpu_forward's contract: X [nslots, C, frames, h, w], T [nslots, frames],
	 * C_START [nslots] tokens, FLOW out; cache slot s serves slot s. Per layer and slot the
	 * engine asks KV where to write (dit_kv_advance, with its own adaptive-sink statistic)
	 * or, without the adaptive sink, may plan all layers at once (dit_kv_advance_layers). */
	int (*forward)(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
		       const int64_t *t, const int64_t *c_start, float *flow, char *err,
		       size_t errlen);
	/* Copy cache slot 0 to slots 1..slots-1. */
	int (*expand)(void *impl, int slots, char *err, size_t errlen);
	/* Zero the caches; refill the cross-attention cache at the next forward. */
	void (*reset)(void *impl);
	/* CTX [nctx, text_len, text_dim] (T5 output; copied): the cross-attention cache is
	 * filled from it at the next forward. */
	int (*set_context)(void *impl, const float *ctx, char *err, size_t errlen);
	void (*destroy)(void *impl);
	/* Optional (NULL on the C reference): the forward split in two, so that the stream draws
	 * its next noise while the device runs. forward_begin takes forward's arguments less
	 * FLOW and queues the call; X must stay unchanged until forward_end returns. forward_end
	 * waits for it, finishes the KV bookkeeping and writes OUT [nslots][C, frames, h, w] =
	 * x - SIGMA[slot]·flow exactly as ops_flow_to_x0 computes it (double math, one rounding
	 * to float), so the stream's x0 is bitwise the one of forward + ops_flow_to_x0. Every
	 * forward_begin that returned 0 is followed by exactly one forward_end, whatever
	 * happens in between; OUT may be X. An engine has both or neither. */
	int (*forward_begin)(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
			     const int64_t *t, const int64_t *c_start, char *err, size_t errlen);
	int (*forward_end)(void *impl, const double *sigma, float *out, char *err, size_t errlen);
	/* Optional: zeroed host memory the engine copies from and to fastest (pinned), for the
	 * stream's latents; NULL: calloc/free. host_alloc returns NULL when out of memory. */
	void *(*host_alloc)(void *impl, size_t bytes);
	void (*host_free)(void *impl, void *p);
};

/* What an engine is sized for. */
struct dit_engine_params {
	int max_slots; /* cache slots (S in batch mode, B for dit-forward) */
	int kv_rows;   /* cache rows per slot (kv_frames * L) */
	int h, w;      /* latent size */
	int nctx;      /* prompts: 1, or one per slot */
};

struct wan_dit_model;

/* The C fp32 reference engine (dit_cpu.c). MODEL is borrowed and must outlive it. 0, or -1
 * with ERR. */
int dit_cpu_engine_open(const struct wan_dit_model *model, const struct dit_engine_params *p,
			struct dit_engine *out, char *err, size_t errlen);
#ifdef HERU_DIT_CUDA_ENGINE
/* The CUDA engine, when the build provides it: the CUDA fragment defines
 * HERU_DIT_CUDA_ENGINE for heru-wan and links an implementation of this (same contract;
 * weights from wan_dit_model_foreach). heru-wan --device cuda uses it. */
int dit_cuda_engine_open(const struct wan_dit_model *model, const struct dit_engine_params *p,
			 struct dit_engine *out, char *err, size_t errlen);
#endif

/* Fills DST with N standard normal draws (one latent frame). 0, or -1 with ERR. */
typedef int (*dit_noise_fn)(void *ctx, float *dst, size_t n, char *err, size_t errlen);

/* Draws given in memory, handed out in order (heru-wan stream's `noise` tensor, the tests). */
struct dit_noise_array {
	const float *data;      /* borrowed: the draws, one latent frame after another */
	size_t count;           /* values in data */
	size_t used;            /* values handed out so far (start at 0) */
};

/* The dit_noise_fn over a struct dit_noise_array: copies its next N values to DST; -1 with
 * "the noise tensor ran out after F frames" when fewer than N are left. */
int dit_noise_array_next(void *ctx, float *dst, size_t n, char *err, size_t errlen);

struct dit_stream_config {
	int steps;              /* S: 1..8 */
	bool batch;             /* stream batch (S slots in one forward) or no-batch */
	int kv_frames;          /* 6 */
	int sink_frames;        /* 3 */
	double sink_threshold;  /* 0.2; <= -1 turns the adaptive sink off */
	int channels;           /* latent channels (16) */
	int h, w;               /* latent size */
	int layers;             /* DiT layers (for the KV bookkeeping) */
};

struct dit_stream;

/* new, or NULL with ERR (bad steps, sizes, kv/sink frames). ENGINE is borrowed. */
struct dit_stream *dit_stream_new(const struct dit_stream_config *c, const struct dit_engine *eng,
				  char *err, size_t errlen);
void dit_stream_free(struct dit_stream *st);

/* Starts a stream (resets every state, the engine's caches included) with the first chunk:
 * LATENT [C, 2, h, w] (2 latent frames), mixed at strength S, then denoised with the step
 * list as is (S sequential batch-1 forwards). X0 [C, 2, h, w] gets the result. 0 or -1. */
int dit_stream_first(struct dit_stream *st, const float *latent, double s, dit_noise_fn noise,
		     void *noise_ctx, float *x0, char *err, size_t errlen);

/* One later chunk: LATENT [C, 1, h, w] mixed at S (0.1..1), first timestep int(1000 s) - 100.
 * In no-batch mode X0 always gets the chunk's result; in batch mode it gets the chunk that
 * leaves the stream batch (S-1 chunks earlier), and *EMITTED says whether there was one (the
 * first S-1 calls only flush warm-up slots). 0 or -1. */
int dit_stream_next(struct dit_stream *st, const float *latent, double s, dit_noise_fn noise,
		    void *noise_ctx, float *x0, bool *emitted, char *err, size_t errlen);

/* Runs, at load, every call the stream's mode will make, so a device engine plans, tunes and
 * captures them all before the first real chunk (the CUDA engine plans each new call shape on
 * its first use otherwise, which costs a live stream its first seconds). The call shapes of a
 * mode follow from this file and dit_kv alone, and this runs exactly that code on scratch
 * latents and noise: the first chunk (S calls of 1 slot x 2 frames attending 2 frames), then
 * later chunks until every slot's cache is full (batch: S + kv_frames - 3 calls, the first
 * with every slot attending 3 frames, then the ragged warm-up calls where slot i attends
 * max(3, min(kv_frames, k + 2 - i)) frames at call k, then the full cache; no-batch: kv_frames - 2
 * chunks of S calls attending 3, 4, ... kv_frames frames), and one more at the full cache,
 * with the adaptive sink as configured (each later call then takes the sink path; its
 * first one re-reads the sink frames, the rest keep their means). Sink refreshes and the
 * RoPE refresh change rows and positions, not call shapes, so they need no calls of their
 * own; neither does a prompt (its cross-attention cache is refilled at the next start).
 * Afterwards the stream and the engine are as if new: not started, KV bookkeeping reset,
 * caches cleared (a stream run after this gives bitwise the x0 it gives without it). Call it
 * on a device engine only: on the C reference it is just slow. 0, or -1 with ERR (then the
 * stream is also reset). */
int dit_stream_prepare(struct dit_stream *st, char *err, size_t errlen);
/* The number of later chunks dit_stream_prepare runs after the first for config C. */
int dit_stream_prepare_chunks(const struct dit_stream_config *c);

/* FN(CTX) is called while the device runs each forward of a split engine, after the stream's
 * own draws for it: the host has nothing else to do until the device is done (the pipeline
 * generates its next noise there). Never called on the host path. FN NULL: none. CTX is
 * borrowed. */
typedef void (*dit_idle_fn)(void *ctx);
void dit_stream_set_idle(struct dit_stream *st, dit_idle_fn fn, void *ctx);

/* Inspection: the KV bookkeeping, and the temporal position (latent frame) the next chunk
 * will use. */
const struct dit_kv *dit_stream_kv(const struct dit_stream *st);
int dit_stream_next_frame(const struct dit_stream *st);

#ifdef __cplusplus
}
#endif
#endif
