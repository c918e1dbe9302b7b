/* vae_ops.h: fp32 CPU reference ops for the Wan VAE and TAEHV (channels-last activations).
 *
 * Activations are [T][H][W][C] (C fastest). Conv weights are repacked at load time from
 * PyTorch's [Cout][Cin][kt][kh][kw] into [kt][kh][kw][Cin][Cout], so the innermost loop is an
 * axpy over Cout on contiguous memory (vectorizes without -ffast-math). */
#ifndef HERU_WAN_VAE_OPS_H
#define HERU_WAN_VAE_OPS_H

#include <stddef.h>
#include <stdint.h>

struct vae_conv_shape {
	int cin, cout;
	int kt, kh, kw;
	int st, sh, sw;          /* strides */
	int pad_top, pad_left;   /* spatial zero padding before; the output size is given */
};

/* OUT[tout][hout][wout][cout] = BIAS + conv(IN[tin][h][w][cin]) with no time padding (the caller
 * puts cached or zero frames in front). Spatial taps outside the input read zero. BIAS may be
 * NULL. tout = (tin - kt) / st + 1. */
void vae_conv(const struct vae_conv_shape *s, const float *in, int tin, int h, int w,
	      const float *wt, const float *bias, float *out, int hout, int wout);

/* Threads for vae_conv (default: online CPUs, or $HERU_VAE_THREADS; results do not depend on
 * it). Call before any conv runs. */
void vae_set_threads(int n);

/* Repacks a PyTorch conv weight [cout][cin][kt][kh][kw] into [kt][kh][kw][cin][cout]. */
void vae_repack_conv(const float *src, float *dst, int cout, int cin, int kt, int kh, int kw);

/* x[n][c] <- F.normalize(x, dim=c) * sqrt(c) * gamma, then SiLU when SILU != 0. In place. */
void vae_rms_norm(float *x, size_t n, int c, const float *gamma, int silu);

/* OUT[t][2h][2w][c] = IN[t][h][w][c] nearest (x2: nearest and nearest-exact agree). */
void vae_upsample2x(const float *in, int t, int h, int w, int c, float *out);

/* Single-head self-attention over the H*W tokens of each of T frames, in place on X[t][hw][c]
 * (the residual is added): x += proj(softmax(q k^T / sqrt(c)) v), qkv = x_norm Wqkv + b.
 * WQKV is [c][3c] (input-major), WPROJ [c][c]. */
int vae_attention(float *x, int t, int hw, int c, const float *gamma, const float *wqkv,
		  const float *bqkv, const float *wproj, const float *bproj);

/* In-place helpers. */
void vae_silu(float *x, size_t n);
void vae_relu(float *x, size_t n);
void vae_add(float *dst, const float *src, size_t n);

/* [t][c][h][w] <-> [t][h][w][c] */
void vae_nchw_to_nhwc(const float *in, int t, int c, int h, int w, float *out);
void vae_nhwc_to_nchw(const float *in, int t, int h, int w, int c, float *out);

#endif
