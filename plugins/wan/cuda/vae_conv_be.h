/* vae_conv_be.h: one NDHWC 16-bit 3D convolution through the cuDNN backend graph API, its
 * engine picked by timing every engine config the heuristics offer on the real buffers
 * (autotuning once per shape at build). An alternative to the legacy cudnnConvolutionForward
 * path of vae_cuda.c, which reaches only the legacy algorithms. */
#ifndef WAN_CUDA_VAE_CONV_BE_H
#define WAN_CUDA_VAE_CONV_BE_H

#include <stddef.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vae_conv_be_shape {
	int half;                       /* 1: fp16, 0: bf16 */
	int cin, cout;
	int t, h, w;                    /* input */
	int to, ho, wo;                 /* output */
	int kt, kh, kw, st, sh, sw, pt, ph, pw; /* kernel, stride, symmetric padding */
};

struct vae_conv_be; /* opaque */

/* Plans Y = conv(X, W) for the device buffers given (they stay the plan's buffers), times the
 * engine configs (at most MAXCFG) and keeps the fastest whose workspace fits WS_MAX bytes.
 * *MS gets its time. NULL with err set when no engine runs the shape. */
struct vae_conv_be *vae_conv_be_new(cudnnHandle_t dnn, cudaStream_t st,
				    const struct vae_conv_be_shape *s, const void *x,
				    const void *w, void *y, void *ws, size_t ws_max, int maxcfg,
				    float *ms, char *err, size_t errlen);
/* As vae_conv_be_new for Y = ReLU?(conv(X, W) + BIAS + Z) in one kernel: BIAS f32 [cout] and
 * Z (a residual of Y's shape and type) may be NULL, RELU 0 or 1. */
struct vae_conv_be *vae_conv_be_new_fused(cudnnHandle_t dnn, cudaStream_t st,
					  const struct vae_conv_be_shape *s, const void *x,
					  const void *w, const float *bias, const void *z, int relu,
					  void *y, void *ws, size_t ws_max, int maxcfg, float *ms,
					  char *err, size_t errlen);
/* Runs the plan on its buffers (graph capturable). */
int vae_conv_be_run(struct vae_conv_be *c, cudnnHandle_t dnn, char *err, size_t errlen);
void vae_conv_be_free(struct vae_conv_be *c);

#ifdef __cplusplus
}
#endif
#endif
