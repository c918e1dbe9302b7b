/* wan_pipeline.h: the StreamDiffusionV2 frame-to-frame pipeline over the Wan engines.
 *
 * DESIGN
 * One wan_pipeline turns camera frames into generated frames, device-independent: the C fp32
 * reference engines (DiT, VAE, TAEHV, umT5) or, in builds with CUDA, the CUDA engines. It owns
 * no thread: every call runs on the caller's thread (the plugin's worker, where a CUDA context
 * lives). The algorithm is upstream's demo path (spec §4, §8):
 *
 *   frame (RGB8, any size) -> resized to the model resolution (area average when shrinking,
 *   bilinear when enlarging; the aspect ratio is not kept, as upstream) -> [-1,1] planes;
 *   chunks of 5 frames (the first) then 4;
 *   VAE stream encode (raw mu, not normalized: spec §5.5) -> latents;
 *   strength s: the first chunk uses s_init, later chunks the motion-aware controller (§4.3)
 *     on the pixel frames, s_init = 0.4 + 0.5 * prompt_dominance (0.8 at 0.8, upstream's
 *     default noise_scale); motion_lock widens the motion term and smooths s (see below);
 *   mixing (1-s) z + s eps, eps from a seeded generator (xoshiro256** + Box-Muller), or
 *     per latent pixel (1-s_p) z + s_p eps with s_p = s (1 - preserve_p) where a preserve map
 *     is given (architecture.md §6);
 *   prompt -> tokenizer -> umT5 -> context [512, text_dim] -> the DiT's cross-attention cache;
 *   first chunk: S sequential steps (dit_stream_first); later chunks: stream batch of S slots
 *     (dit_stream_next), so the first S-1 chunks after the first only fill the batch;
 *   x0 -> Wan VAE stream decode (z*std + mean) or TAEHV (context mode, latents as they are);
 *   frames out as RGB8 with upstream's conversion: (x*0.5+0.5) clamped to [0,1], *255,
 *     truncated (uint8 cast), at the model resolution (the host scales to its output size).
 *
 * Output frames: 5 for the first chunk (4 with TAEHV, which drops the first latent's frame),
 * then 4 per chunk once the S-1 warm-up calls are done. Each output carries the tag of the
 * input frame at the same position of the same chunk.
 *
 * Restarts: a new prompt or a new seed restarts the stream exactly as upstream's demo does on
 * a prompt change: the next 5 frames make a new first chunk (new prepare: KV caches, the
 * cross-attention cache, the VAE/TAEHV caches, the noise controller and the generator all
 * reset) and frames still in flight are dropped. Given the same frames, prompt and seed, the
 * output is the same bytes (the CPU path; the CUDA path is deterministic per GPU and build).
 *
 * motion_lock m (0..1): m = 0 is upstream's controller exactly:
 *   s = 0.9 (s_init - 0.1 dhat) + 0.1 s_prev.
 * For m > 0: s = lambda (s_init - delta dhat) + (1 - lambda) s_prev with delta = 0.1 + 0.3 m
 * (moving scenes keep more of the camera) and lambda = 0.9 - 0.6 m (s changes more slowly),
 * clamped to [0.1, 1].
 *
 * Weights folder (StreamDiffusionV2's layout; OPTS.root):
 *   ckpts/wan_causal_dmd_v2v/model.pt (wan-1.3b) or ckpts/wan_causal_dmd_v2v_14b/model.pt
 *   wan_models/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth
 *   wan_models/Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth
 *   wan_models/Wan2.1-T2V-1.3B/google/umt5-xxl/ (tokenizer)
 *   ckpts/taew2_1.pth (only with TAEHV)
 * and optionally heru-model.json there, overriding any of: dit_weights, dit_config (1.3b, 14b
 * or a Wan2.1 config.json), vae_weights, vae_config (VAE/TAEHV architecture JSON),
 * taehv_weights, t5_weights, t5_config (umt5-xxl or a JSON), tokenizer, width, height (model
 * resolution, multiples of 16; default 512x512), kv_frames (6), sink_frames (3),
 * sink_threshold (0.2; -1 turns the adaptive sink off). Relative paths are relative to the
 * folder. Unknown keys are refused. */
#ifndef HERU_WAN_PIPELINE_H
#define HERU_WAN_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum wan_device { WAN_DEVICE_CPU, WAN_DEVICE_CUDA };

struct wan_pipeline_options {
	const char *root;       /* borrowed: the weights folder */
	const char *model;      /* borrowed: "wan-1.3b" or "wan-14b" */
	enum wan_device device;
	bool taehv;             /* decode with TAEHV instead of the Wan VAE decoder */
	int steps;              /* S: 1..8 (5..8: wan_sched's documented extension) */
	int threads;            /* CPU threads for the umT5 reference; <= 0: all */
};

/* The live controls of one frame (all borrowed for the call). */
struct wan_pipeline_params {
	const char *prompt;     /* UTF-8; NULL is "" */
	float prompt_dominance; /* 0..1 */
	float motion_lock;      /* 0..1 */
	uint64_t seed;
	const float *preserve;  /* NULL, or [preserve_h][preserve_w] in [0,1], any size */
	int preserve_w, preserve_h;
};

/* What an output frame answers: copied from the input at the same chunk position. */
struct wan_frame_tag {
	uint64_t id;
	double ts_ms;
};

/* Called for each output frame: RGB [height][width][3] (borrowed for the call). A nonzero
 * return stops the pipeline call with that code. */
typedef int (*wan_pipeline_emit_fn)(void *ctx, const uint8_t *rgb, int width, int height,
				    const struct wan_frame_tag *tag);

enum wan_pipeline_phase {
	WAN_PHASE_IDLE,    /* waiting for the 5 frames of a first chunk */
	WAN_PHASE_WARMUP,  /* first chunk done; the stream batch is filling (S-1 calls) */
	WAN_PHASE_ACTIVE,  /* every chunk emits 4 frames */
};

/* Milliseconds per stage: the last call that ran the stage, and the running mean. */
enum wan_stage {
	WAN_STAGE_TEXT,    /* tokenizer + umT5 (once per prompt) */
	WAN_STAGE_RESIZE,  /* RGB8 -> model-resolution [-1,1] planes */
	WAN_STAGE_ENCODE,  /* VAE stream encode */
	WAN_STAGE_DIT,     /* mixing + the DiT call(s) of one chunk */
	WAN_STAGE_DECODE,  /* VAE / TAEHV decode */
	WAN_STAGE_OUTPUT,  /* [-1,1] -> RGB8 and emit */
	WAN_STAGE_COUNT
};
extern const char *const wan_stage_names[WAN_STAGE_COUNT];

struct wan_pipeline_stats {
	double last_ms[WAN_STAGE_COUNT];
	double mean_ms[WAN_STAGE_COUNT];
	uint64_t runs[WAN_STAGE_COUNT];
	uint64_t frames_in, frames_out, chunks, restarts;
	double noise_scale;     /* s of the last chunk */
	int64_t first_step;     /* its first timestep */
	int width, height;      /* model resolution */
	int steps;
	bool taehv;
	const char *device;     /* "cpu" or "cuda" */
	double dit_prepare_ms;  /* the DiT's dit_stream_prepare at open (CUDA; 0 on the CPU) */
};

struct wan_pipeline;

/* Opens every file the pipeline needs (checking architectures against each other). new, or
 * NULL with one sentence in ERR; a missing file names its path and how to get it. With
 * WAN_DEVICE_CUDA in a build without CUDA it fails saying so. */
struct wan_pipeline *wan_pipeline_open(const struct wan_pipeline_options *opts, char *err,
				       size_t errlen);
void wan_pipeline_free(struct wan_pipeline *p);

/* Feeds one camera frame: RGB [height][stride bytes] (width*3 <= stride), any size up to
 * 16384^2. When it completes a chunk the chunk runs and EMIT gets 0..5 frames. Returns 0, or
 * -1 with ERR (the stream then restarts with the next frames). */
int wan_pipeline_push(struct wan_pipeline *p, const uint8_t *rgb, int width, int height,
		      size_t stride, const struct wan_frame_tag *tag,
		      const struct wan_pipeline_params *prm, wan_pipeline_emit_fn emit,
		      void *emit_ctx, char *err, size_t errlen);

/* Forgets the stream (the next frames start a new first chunk). */
void wan_pipeline_restart(struct wan_pipeline *p);

enum wan_pipeline_phase wan_pipeline_phase(const struct wan_pipeline *p);
void wan_pipeline_get_stats(const struct wan_pipeline *p, struct wan_pipeline_stats *out);
/* Model resolution. */
void wan_pipeline_size(const struct wan_pipeline *p, int *width, int *height);

/* The strength the first chunk uses for PROMPT_DOMINANCE (0.4 + 0.5 d). */
double wan_pipeline_init_scale(float prompt_dominance);
/* The controller step described above (exported for tests): DHAT in [0,1]. */
double wan_pipeline_ctl_step(double init_scale, double prev_scale, double dhat, float motion_lock);

#ifdef __cplusplus
}
#endif
#endif
