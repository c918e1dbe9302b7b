/* vae_model.h: the Wan2.1 causal 3D VAE (fp32 CPU reference) with exact streaming semantics.
 *
 * DESIGN
 * The model (weights, immutable after load) is separate from a stream (the per-conv feature
 * caches and the first-call flags), so one model can serve several streams. Upstream
 * (`wan_base/modules/vae.py` as vendored by StreamDiffusionV2) keeps, per causal 3x3x3 conv, the
 * last 2 frames of that conv's input; concatenated in front of the next call's input they make
 * the streamed result identical to one causal conv over the whole stream. Two resample blocks
 * break that identity and are reproduced exactly:
 *  - downsample3d: on its first call it only remembers its (post spatial conv) input and skips
 *    time_conv (1 frame stays 1 frame); later it runs time_conv (k 3, stride 2, no padding) over
 *    [previous last frame, input] and remembers the input's last frame;
 *  - upsample3d: the first call does no time upsampling ('Rep'); the second runs time_conv with
 *    2 zero frames in front (its cache becomes [0, x]); later calls are normal. time_conv's 2C
 *    outputs of input frame t become frames 2t (channels [0,C)) and 2t+1 ([C,2C)).
 * Call pattern (stream_encode / stream_decode): the first encode runs the encoder on frame 0,
 * then on frames 1.. in one call; later encodes run it per group of 4 frames. The first decode
 * runs the decoder on latent 0, then on latents 1.. in one call; later decodes per latent.
 *
 * Tensors at this API are channel-first per frame: frames [T][3][H][W] in [-1,1], latents
 * [F][z_dim][H/8][W/8]. The encoder returns raw mu; the decoder applies z*std + mean first and
 * clamps its output to [-1,1] (spec §5.5). */
#ifndef HERU_WAN_VAE_MODEL_H
#define HERU_WAN_VAE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "vae_config.h"
#include "vae_source.h"

struct vae_model;
struct vae_stream;

enum { VAE_LOAD_ENCODER = 1, VAE_LOAD_DECODER = 2 };

/* Builds the architecture of CFG and loads the parts in WHAT from SRC. new */
struct vae_model *vae_model_load(const struct vae_config *cfg, const struct vae_source *src,
				 int what, char *err, size_t errlen);
void vae_model_free(struct vae_model *m);
const struct vae_config *vae_model_config(const struct vae_model *m);

/* The tensor names and shapes of the model (for random weights and fixtures). Calls FN once per
 * tensor; shapes are PyTorch's. */
void vae_model_each_tensor(const struct vae_config *cfg, int what,
			   void (*fn)(void *ctx, const char *name, int ndim, const int64_t *shape),
			   void *ctx);

/* A stream for M: the encoder's and the decoder's caches and first-call flags (like upstream's
 * module state; encode and decode of one stream are independent). new */
struct vae_stream *vae_stream_new(const struct vae_model *m);
void vae_stream_free(struct vae_stream *s);
/* Starts a new stream (clears the caches; the next call is a first call). */
void vae_stream_reset(struct vae_stream *s);
/* Whether the next encode / decode on S is a first call. */
int vae_stream_first_encode(const struct vae_stream *s);
int vae_stream_first_decode(const struct vae_stream *s);

/* Output counts for a call of T frames / F latents, or -1 when the count is not allowed: a first
 * encode needs T = 1 + 4k (k >= 0), a later one T = 4k (k >= 1); a first decode gives
 * 1 + 4(F-1) frames, a later one 4F. */
int vae_encode_count(const struct vae_model *m, int first, int t);
int vae_decode_count(const struct vae_model *m, int first, int f);

/* Encodes FRAMES [T][3][H][W] into LATENTS [F][z][H/8][W/8] (F from vae_encode_count).
 * H and W must be multiples of 8 and constant over a stream. */
int vae_encode(const struct vae_model *m, struct vae_stream *s, const float *frames, int t,
	       int h, int w, float *latents, char *err, size_t errlen);
/* Decodes LATENTS [F][z][h][w] into FRAMES [T][3][8h][8w] (T from vae_decode_count). */
int vae_decode(const struct vae_model *m, struct vae_stream *s, const float *latents, int f,
	       int h, int w, float *frames, char *err, size_t errlen);

/* Exact FLOPs (2 per MAC; all convs and the middle attention) of a steady-state call at pixel
 * size H x W: encoding 4 frames, decoding 1 latent. */
double vae_flops_encode(const struct vae_config *cfg, int h, int w);
double vae_flops_decode(const struct vae_config *cfg, int h, int w);

/* Latent normalization constants of Wan2.1 (16 channels). */
extern const float vae_latent_mean[16];
extern const float vae_latent_std[16];

#endif
