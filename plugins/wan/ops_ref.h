/* ops_ref.h: the plain-C fp32 reference of every Wan2.1 DiT op (spec §2, §4.2).
 *
 * These functions define the math; the CUDA kernels (ops_cuda) are tested against them and CI
 * runs the whole DiT reference on them. Conventions for every function below:
 * - All tensors are dense, row-major fp32; the last listed dimension is contiguous.
 * - "tokens" are ordered frame-major, then row y, then column x (spec §2.1).
 * - Per-frame vectors (modulation shift/scale/gate) are given as a base pointer plus a stride in
 *   floats between consecutive frames, so the [frames, 6, D] modulation array of a block
 *   (stride 6*D) and the [frames, 2, D] one of the head (stride 2*D) are used in place.
 * - "frames" may span several batch slots: slot b frame f is frame b*F + f.
 * - Outputs never alias inputs unless the comment says "in place".
 * - No function allocates or fails; all pointers are borrowed; sizes must be >= 1.
 * - Where upstream computes in float64 (sinusoidal embedding, RoPE, flow->x0) so do these.
 */
#ifndef HERU_WAN_OPS_REF_H
#define HERU_WAN_OPS_REF_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[n,out] = x[n,in] · W[out,in]ᵀ + b[out]. b may be NULL (no bias). */
void ops_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out);

/* y[n,d] = (x - mean) / sqrt(var + eps) per row (biased variance, statistics in float64 over the
 * row); then, when gamma is non-NULL, y = y * gamma + beta (beta may be NULL). x == y allowed. */
void ops_layer_norm(float *y, const float *x, const float *gamma, const float *beta, int n, int d,
		    float eps);

/* Modulated no-affine LayerNorm (spec §2.5 steps 1 and 4, §2.8):
 * for frame f in [0,frames), token i in [0,tokens_per_frame):
 *   y[f*tpf+i, :] = LN(x[f*tpf+i, :]) * (1 + scale_f) + shift_f
 * with shift_f = shift + f*mod_stride, scale_f = scale + f*mod_stride (each D floats). */
void ops_modulate(float *y, const float *x, const float *shift, const float *scale,
		  size_t mod_stride, int frames, int tokens_per_frame, int d, float eps);

/* RMSNorm over the full row (WanRMSNorm; for q/k it is over all heads, D channels):
 * y = x * rsqrt(mean(x²) + eps) * w. x == y allowed. */
void ops_rms_norm(float *y, const float *x, const float *w, int n, int d, float eps);

/* The RoPE split of a head dimension into (t, y, x) complex-pair counts, as upstream rope_params
 * and causal_rope_apply do it: with c = head_dim/2, pairs = (c - 2*(c/3), c/3, c/3); for
 * head_dim 128 that is (22, 21, 21). Axis a with p_a pairs uses the frequencies
 * theta^(-2k / (2*p_a)), k = 0..p_a-1, theta = 10000. head_dim must be even. */
void ops_rope_split(int head_dim, int pairs[3]);

/* Causal 3D RoPE, in place (spec §2.6): x is [frames*gh*gw, heads, head_dim]; token (f,y,x)
 * uses temporal position start_frame + f, row y, column x. Pairs (2k, 2k+1) are the complex
 * number x[2k] + i·x[2k+1] (interleaved), rotated by the angle of their axis; computed in
 * float64, stored as fp32. The same rotation applies to every head. */
void ops_rope(float *x, int frames, int gh, int gw, int heads, int head_dim, int start_frame);

/* Non-causal multi-head attention:
 * o[i,h,:] = Σ_j softmax_j(scale · q[i,h,:]·k[j,h,:]) v[j,h,:]
 * q and o are [n, heads, head_dim]; k and v are [m, heads, head_dim] (a KV cache's first m
 * rows). head_dim <= 256. Computed blockwise with an online softmax (no scratch memory). */
void ops_attention(float *o, const float *q, const float *k, const float *v, int n, int m,
		   int heads, int head_dim, float scale);

/* In place, n values: GELU with the tanh approximation (nn.GELU(approximate='tanh')). */
void ops_gelu_tanh(float *x, size_t n);
/* In place, n values: x * sigmoid(x). */
void ops_silu(float *x, size_t n);

/* Gated residual add (spec §2.5 steps 2 and 5), in place on x:
 * x[f*tpf+i, :] += y[f*tpf+i, :] * gate_f, gate_f = gate + f*mod_stride (D floats). */
void ops_gated_add(float *x, const float *y, const float *gate, size_t mod_stride, int frames,
		   int tokens_per_frame, int d);

/* out[i] += a[i] for n values (residual add without a gate, e.g. cross-attention). */
void ops_add(float *x, const float *a, size_t n);

/* Sinusoidal timestep embedding (model.py:sinusoidal_embedding_1d), float64 inside:
 * out[i, :] = [cos(t_i·ω_0..half-1), sin(t_i·ω_0..half-1)], ω_k = 10000^(-k/half), half = dim/2.
 * out is [n, dim]; t are the raw integer timesteps (e.g. 700), not σ. dim must be even. */
void ops_sin_embedding(float *out, const int64_t *t, int n, int dim);

/* Patch embedding Conv3d(c→D, kernel (1,2,2), stride (1,2,2)) as a per-token GEMM (spec §2.2):
 * z is one batch element [c, frames, h, w] (h, w even); tokens is [frames*(h/2)*(w/2), D];
 * token(f,y,x) = W[D, c*4] · vec + b, vec[ci*4 + dy*2 + dx] = z[ci, f, 2y+dy, 2x+dx].
 * W is the conv weight [D, c, 1, 2, 2] read as [D, c*4]. c <= 64. */
void ops_patch_embed(float *tokens, const float *z, const float *w, const float *b, int c,
		     int frames, int h, int w_, int d);

/* Unpatchify (spec §2.8): o is [frames*(h/2)*(w/2), 4*c] with order (dy, dx, c), c fastest;
 * z is one batch element [c, frames, h, w]: z[ci, f, 2y+dy, 2x+dx] = o[tok, (dy*2+dx)*c + ci]. */
void ops_unpatchify(float *z, const float *o, int c, int frames, int h, int w);

/* Flow to x0 (spec §2.9), float64 inside: x0 = xt - sigma * flow, n values. x0 may alias xt. */
void ops_flow_to_x0(float *x0, const float *xt, const float *flow, size_t n, double sigma);

/* Flow-matching noising (spec §4.2 add_noise, §4.3 mixing): out = (1-sigma)*x + sigma*noise,
 * n values, float64 inside. out may alias x or noise. */
void ops_add_noise(float *out, const float *x, const float *noise, size_t n, double sigma);

/* Mean over rows: out[d] = (1/rows) Σ_r x[r*row_stride + j], j in [0,d); float64 sums. Used by
 * the adaptive-sink statistic (spec §4.7: the mean of a cache frame's keys or values). */
void ops_row_mean(float *out, const float *x, int rows, int d, size_t row_stride);

/* Cosine similarity of two d-vectors as torch.nn.functional.cosine_similarity (torch >= 2)
 * computes it: a·b / (max(|a|, 1e-8) · max(|b|, 1e-8)), float64 inside. A zero vector gives 0. */
double ops_cosine(const float *a, const float *b, int d);

/* ops_cosine's last step from the sums a·b, a·a and b·b; also the adaptive-sink decision
 * kernel's (sink_kernels.cu), so both clamp and divide alike. */
#ifdef __CUDACC__
__host__ __device__
#endif
static inline double ops_cosine_of(double ab, double aa, double bb)
{
	double na = sqrt(aa), nb = sqrt(bb);

	if (na < 1e-8)
		na = 1e-8;
	if (nb < 1e-8)
		nb = 1e-8;
	return ab / (na * nb);
}

#ifdef __cplusplus
}
#endif

#endif
