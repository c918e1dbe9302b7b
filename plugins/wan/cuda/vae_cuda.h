/* vae_cuda.h: the Wan2.1 causal 3D VAE on one GPU (16-bit NDHWC activations: fp16 in the
 * encoder, bf16 in the decoder; cuDNN convs, cuBLASLt 1x1 convs and middle attention with fp32
 * scores, fused kernels, one CUDA graph per steady chunk).
 *
 * DESIGN
 * Built once per resolution from a loaded CPU model (vae_model.h, whose fp32 weights it
 * uploads as 16-bit). Every causal k_t=3 conv owns an input buffer [2 + T][H][W][C] whose first
 * 2 frames are its feature cache: the producer of the conv's input writes at frame 2, the conv
 * reads the whole buffer with zero time padding (causal padding without copies), and after the
 * conv the last 2 input frames move to the front (two frame copies). downsample3d keeps 1
 * frame in front of its time_conv the same way. Streaming semantics are those of vae_model.h:
 * the first encode runs frame 0 alone and then groups of 4 frames, the first decode latent 0
 * alone and then one latent per call (decoding latents 1.. one at a time is identical to one
 * call: see tests/gpu_vae.c). Two op lists ("plans") per coder share the cache buffers: the
 * first call's (downsample3d skips time_conv, upsample3d does not upsample time) and the steady
 * one, which is captured into a CUDA graph on its second run. No allocation after build.
 * Each conv runs the fastest cuDNN engine config timed on its own shape and buffers at build
 * (backend graph API, vae_conv_be.h; the legacy API when the backend refuses a shape). */
#ifndef WAN_CUDA_VAE_CUDA_H
#define WAN_CUDA_VAE_CUDA_H

#include <stddef.h>

#include "plugins/wan/taehv_model.h"
#include "plugins/wan/vae_model.h"

#ifdef __cplusplus
extern "C" {
#endif

struct vae_cuda;

/* Uploads the parts of M in WHAT (VAE_LOAD_*) for frames of H x W pixels. FIND: benchmark the
 * cuDNN algorithms of every conv (slower build, faster runs). new */
struct vae_cuda *vae_cuda_new(const struct vae_model *m, int what, int h, int w, int find,
			      char *err, size_t errlen);
void vae_cuda_free(struct vae_cuda *v);
/* Starts a new stream (zeroes every cache; the next calls are first calls). */
int vae_cuda_reset(struct vae_cuda *v, char *err, size_t errlen);
int vae_cuda_first_encode(const struct vae_cuda *v);
int vae_cuda_first_decode(const struct vae_cuda *v);
/* Host f32 in and out, shapes as vae_encode / vae_decode (counts from vae_encode_count /
 * vae_decode_count). Synchronous. */
int vae_cuda_encode(struct vae_cuda *v, const float *frames, int t, float *latents, char *err,
		    size_t errlen);
int vae_cuda_decode(struct vae_cuda *v, const float *latents, int f, float *frames, char *err,
		    size_t errlen);
/* Device bytes allocated for weights and for activations + caches + workspaces. */
size_t vae_cuda_weight_bytes(const struct vae_cuda *v);
/* 1 when the encoder (decoder) runs in fp16, 0 for bf16. The encoder's default is fp16: bf16
 * rounding alone puts its latents 1.2-1.6e-2 (relative L2) off the fp32 reference, fp16's 3
 * more mantissa bits bring that under the 1e-2 target; its inputs are frames in [-1,1] and
 * every stored value saturates at +-65504. The decoder stays bf16 (wider range for
 * unbounded real-weight activations; 47-50 dB already). Environment variables
 * HERU_VAE_ENC_DTYPE / HERU_VAE_DEC_DTYPE (bf16 or fp16) override both at vae_cuda_new. */
int vae_cuda_encoder_fp16(const struct vae_cuda *v);
int vae_cuda_decoder_fp16(const struct vae_cuda *v);
size_t vae_cuda_act_bytes(const struct vae_cuda *v);
/* GPU time (ms, CUDA events around the plans, without the host copies) of the last
 * vae_cuda_encode / vae_cuda_decode. */
double vae_cuda_last_gpu_ms(const struct vae_cuda *v);

/* Runs the steady encode (DECODE 0) or decode plan once op by op (eagerly, events between
 * ops) and adds the GPU ms and FLOPs per op class into MS / FLOPS [VAE_PROF_N]. Advances the
 * stream's caches like a real call (for benchmarks). */
/* TAEHV on the GPU: same streaming semantics and frame counts as taehv_decode (context or
 * incremental mode), for latents of H x W (frames 8H x 8W). Each run decodes up to 4 latents
 * batched over time (a MemBlock's past for frame j is frame j-1 of the batch, the first frame's
 * its memory); Upsample+TGrow run as TGrow's 1x1 GEMM at low resolution then one
 * interleave-and-upsample kernel. new */
struct taehv_cuda;
struct taehv_cuda *taehv_cuda_new(const struct taehv_model *m, int incremental, int h, int w,
				  char *err, size_t errlen);
void taehv_cuda_free(struct taehv_cuda *t);
int taehv_cuda_reset(struct taehv_cuda *t, char *err, size_t errlen);
int taehv_cuda_decode(struct taehv_cuda *t, const float *latents, int f, float *frames, char *err,
		      size_t errlen);
double taehv_cuda_last_gpu_ms(const struct taehv_cuda *t);

enum { VAE_PROF_CONV, VAE_PROF_GEMM, VAE_PROF_NORM, VAE_PROF_ELEM, VAE_PROF_COPY, VAE_PROF_N };
int vae_cuda_profile(struct vae_cuda *v, int decode, double *ms, double *flops, char *err,
		     size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
