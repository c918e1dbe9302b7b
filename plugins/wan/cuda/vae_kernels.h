/* vae_kernels.h: fused elementwise kernels of the CUDA Wan VAE (vae_kernels.cu). Activations
 * are 16-bit channels-last [frames][H][W][C], bf16 or fp16 as the launcher's DT (a
 * VAE_DT_* value) says (TAEHV kernels: bf16); 16-bit pointers are void * so this stays plain C.
 * Every launcher returns 0 or -1 with err set when the launch failed. */
#ifndef WAN_CUDA_VAE_KERNELS_H
#define WAN_CUDA_VAE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { VAE_DT_BF16 = 0, VAE_DT_F16 = 1 };

/* dst[i] = src[i] (f32, device) as DT; fp16 saturates at +-65504 */
int vae_k_f32_to(cudaStream_t st, int dt, const float *src, void *dst, int64_t n, char *err,
		 size_t errlen);

/* frames f32 [T][3][H][W] -> dst bf16 [T][H][W][3] */
int vae_k_frames_in(cudaStream_t st, int dt, const float *src, void *dst, int t, int h, int w,
		    char *err, size_t errlen);
/* latents f32 [z][h][w] -> dst bf16 [h][w][z] as z*std[c] + mean[c] (std/mean f32 device) */
int vae_k_latent_in(cudaStream_t st, int dt, const float *src, void *dst, int z, int h, int w,
		    const float *mean, const float *std, char *err, size_t errlen);
/* src bf16 [hw][ld] first z channels -> dst f32 [z][hw] */
int vae_k_latent_out(cudaStream_t st, int dt, const void *src, int ld, float *dst, int z, int hw,
		     char *err, size_t errlen);
/* src bf16 [T][H][W][3] + bias -> clamp(-1,1) -> dst f32 [T][3][H][W] */
int vae_k_frames_out(cudaStream_t st, int dt, const void *src, const float *bias, float *dst, int t,
		     int h, int w, char *err, size_t errlen);
/* dst[p] = silu?(normalize(src[p] + bias) * sqrt(C) * gamma) over C channels, P pixels. */
int vae_k_rms(cudaStream_t st, int dt, const void *src, const float *bias, const float *gamma,
	      void *dst, int64_t p, int c, int silu, char *err, size_t errlen);
/* sum = src + bias + res (res may be NULL; 16-bit, P pixels of C channels), then dst = vae_k_rms of sum (no
 * further bias): a bias+residual pass and the next norm in one (C % 8 == 0, 16-byte aligned). */
int vae_k_rms_res(cudaStream_t st, int dt, const void *src, const float *bias, const void *res,
		  void *sum, const float *gamma, void *dst, int64_t p, int c, int silu, char *err,
		  size_t errlen);
/* dst = src + bias + res (res may be NULL) for [T][H][W][C]; dst rows have pitch dst_w
 * pixels and frames dst_h rows (for the zero-padded downsample input; = W, H otherwise). */
int vae_k_bias_res(cudaStream_t st, int dt, const void *src, const float *bias, const void *res,
		   void *dst, int t, int h, int w, int c, int dst_h, int dst_w, char *err,
		   size_t errlen);
/* Nearest x2 upsampling of src (+bias over src channels) [T][h][w][Cs] into dst
 * [T'][2h][2w][C]. interleave: Cs = 2C and frame t gives frames 2t (channels [0,C)) and 2t+1
 * ([C,2C)), T' = 2T; else Cs = C, T' = T. */
int vae_k_upsample(cudaStream_t st, int dt, const void *src, const float *bias, void *dst, int t, int h,
		   int w, int c, int interleave, char *err, size_t errlen);
/* p [rows][n] (DT) = row softmax of s f32 [rows][n] times SCALE. */
int vae_k_softmax(cudaStream_t st, int dt, const float *s, void *p, int rows, int n, float scale,
		  char *err, size_t errlen);
/* dst [c][n] = src [n][ld] (16-bit values) columns [0,c) transposed. */
int vae_k_transpose(cudaStream_t st, const void *src, int ld, void *dst, int n, int c,
		    char *err, size_t errlen);
/* dst += src (bf16, n elements) */
int vae_k_add(cudaStream_t st, int dt, void *dst, const void *src, int64_t n, char *err, size_t errlen);

/* TAEHV: latents f32 [F][16][h][w] -> dst bf16 [F][h][w][16] as tanh(x/3)*3 */
int vae_k_taehv_in(cudaStream_t st, const float *src, void *dst, int f, int h, int w,
		   char *err, size_t errlen);
/* TAEHV: src bf16 [T][H][W][3] + bias -> clamp(2v-1, -1, 1) -> dst f32 [T][3][H][W] */
int vae_k_taehv_out(cudaStream_t st, const void *src, const float *bias, float *dst, int t,
		    int h, int w, char *err, size_t errlen);
/* MemBlock input: dst [F][P][2C] = [x_f, past_f] with past_0 = mem [P][C], past_f = x_{f-1}. */
int vae_k_memcat(cudaStream_t st, const void *x, const void *mem, void *dst, int f, int64_t p,
		 int c, char *err, size_t errlen);
/* dst[i] = act(src[i] + bias[i % c] + res[i]) over n elements (bias, res may be NULL; act =
 * ReLU when relu). */
int vae_k_bias_act(cudaStream_t st, const void *src, const float *bias, const void *res,
		   void *dst, int64_t n, int c, int relu, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
