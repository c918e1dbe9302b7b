/* taehv_model.h: the TAEHV decoder (taew2_1), fp32 CPU reference, in two streaming modes.
 *
 * DESIGN
 * TAEHV decodes Wan latents with 2D convs; time is carried by MemBlocks (each sees its own
 * previous-timestep input as "past", zeros at t=0) and TGrow layers (1 input frame becomes s
 * output frames), so 1 latent gives 4 frames. Output is mapped from [0,1] to [-1,1] and clamped.
 * Input latents are used as they are (TAEHV has no latent scale/shift, spec §5.5).
 *
 * Two streaming modes:
 *  - context (StreamDiffusionV2, `TAEHVWanVAEWrapper.stream_decode_to_pixel`): each call decodes
 *    [the last <= 3 latents seen before + the new ones] from scratch (all memories zero at the
 *    start of the window) and emits the last 4*new frames; the first call emits 4*(F-1) frames
 *    (4 for the 2-latent first chunk). Cost: up to 4x the latents per call.
 *  - incremental: each MemBlock keeps its memory across calls and only the new latents are
 *    decoded (like upstream StreamingTAEHV). Same frame counts as the context mode (the first
 *    latent's 4 frames are dropped), but the frames differ: memories carry the whole stream's
 *    history instead of restarting from zeros 3 latents back. */
#ifndef HERU_WAN_TAEHV_MODEL_H
#define HERU_WAN_TAEHV_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "vae_config.h"
#include "vae_source.h"

#define TAEHV_CONTEXT_LATENTS 3

struct taehv_model;
struct taehv_stream;

/* Loads the decoder from SRC (keys decoder.N...); TGrow weights with more output channels than
 * the model expects keep the last rows (upstream patch_tgrow_layers). new */
struct taehv_model *taehv_model_load(const struct taehv_config *cfg, const struct vae_source *src,
				     char *err, size_t errlen);
void taehv_model_free(struct taehv_model *m);
void taehv_model_each_tensor(const struct taehv_config *cfg,
			     void (*fn)(void *ctx, const char *name, int ndim, const int64_t *shape),
			     void *ctx);

struct taehv_stream *taehv_stream_new(const struct taehv_model *m, int incremental); /* new */
void taehv_stream_free(struct taehv_stream *s);
void taehv_stream_reset(struct taehv_stream *s);
int taehv_stream_first(const struct taehv_stream *s);

/* Frames emitted for F new latents: 4(F-1) on a first call, else 4F; -1 when F < 1. */
int taehv_decode_count(int first, int f);

/* Decodes LATENTS [F][16][h][w] into FRAMES [T][3][8h][8w] (T from taehv_decode_count). */
int taehv_decode(const struct taehv_model *m, struct taehv_stream *s, const float *latents, int f,
		 int h, int w, float *frames, char *err, size_t errlen);

/* FLOPs (2 per MAC) of decoding one latent at pixel size H x W (4 frames). The context mode
 * decodes up to 4 latents per new latent. */
double taehv_flops_latent(const struct taehv_config *cfg, int h, int w);

#endif
