/* kernels.h: the fused elementwise/normalisation kernels of the CUDA DiT, one launcher per
 * kernel (kernels.cu). Every launcher returns 0 or -1 with err set when the launch failed.
 * bf16 tensors are passed as void * so this header stays plain C.
 *
 * Token layout: the T = B·n tokens of a call are B slots of n = F·L tokens each (F latent
 * frames of L = (h/2)·(w/2) tokens, frame-major, then row, then column). Per-frame vectors
 * (modulation, gates, timestep embeddings) are indexed by b·F + f. */
#ifndef WAN_CUDA_KERNELS_H
#define WAN_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Uniform random values in [-amp, amp) from a counter hash (seed, index): deterministic. */
int wan_k_fill_uniform_bf16(cudaStream_t st, void *dst, size_t n, uint64_t seed, float amp,
			    char *err, size_t errlen);
/* f32 variant: base + uniform [-amp, amp). */
int wan_k_fill_uniform_f32(cudaStream_t st, float *dst, size_t n, uint64_t seed, float base,
			   float amp, char *err, size_t errlen);
int wan_k_f32_to_bf16(cudaStream_t st, const float *src, void *dst, size_t n, char *err, size_t errlen);
int wan_k_bf16_to_f32(cudaStream_t st, const void *src, float *dst, size_t n, char *err, size_t errlen);

/* z f32 [B,16,F,h,w] -> cols bf16 [B·F·(h/2)·(w/2), 64], column c*4 + dy*2 + dx (spec §2.2). */
int wan_k_patchify(cudaStream_t st, const float *z, void *cols, int b, int f, int h, int w,
		   char *err, size_t errlen);

/* Sinusoidal timestep embedding (fp64 math): t int [m] -> out f32 [m, 256], cos first. */
int wan_k_sin_emb(cudaStream_t st, const int *t, float *out, int m, char *err, size_t errlen);

/* Small-M linear layer for the time MLP: y[m,n] = W[n,k]·act(x[m,k]) + b[n], act = SiLU when
 * silu_in, else identity. x, y f32; W, b bf16. */
int wan_k_linear_small(cudaStream_t st, const float *x, const void *w, const void *bias,
		       float *y, int m, int n, int k, int silu_in, char *err, size_t errlen);

/* out bf16 [T,D] = LN(x)·(1 + scale) + shift, LN without affine (eps), with
 * shift = mod[shift_idx·D + c] + emb[(b·F+f)·emb_row + shift_idx·emb_chunk + c], scale
 * likewise (mod f32 [k, D]; emb f32; emb_chunk 0 broadcasts one vector to every chunk, as the
 * head does with e). */
int wan_k_ln_mod(cudaStream_t st, const float *x, void *out, int t, int d, int n_per_slot,
		 int l, const float *mod, const float *emb, int64_t emb_row, int64_t emb_chunk,
		 int shift_idx, int scale_idx, float eps, char *err, size_t errlen);
/* out bf16 [T,D] = LN(x)·gamma + beta (gamma/beta f32 [D]). */
int wan_k_ln_affine(cudaStream_t st, const float *x, void *out, int t, int d,
		    const float *gamma, const float *beta, float eps, char *err, size_t errlen);

/* Modulation vectors: out[((g·M + m)·nj + j)·D + c] = mods[(g·nj + j)·D + c] +
 * emb[m·emb_row + j·emb_chunk + c] for g < ng groups (layers), m < M rows (slot frames). */
int wan_k_modvec(cudaStream_t st, const float *mods, int ng, const float *emb, int m, int nj,
		 int d, int64_t emb_row, int64_t emb_chunk, float *out, char *err, size_t errlen);
/* Fused residual + LayerNorm, one read of the residual row:
 *   y != NULL: x += y · gate, gate = gv[(m·6 + gidx)·D + c] (gidx < 0: no gate);
 *   out = LN(x)·(1 + mv[(m·nj+sc_idx)·D]) + mv[(m·nj+sh_idx)·D]   when mv != NULL,
 *   out = LN(x)·gamma + beta                                        otherwise,
 * m = b·F + f of the token. D divisible by 4, <= 8192. */
int wan_k_res_ln(cudaStream_t st, float *x, const void *y, const float *gv, int gidx, void *out,
		 const float *mv, int nj, int sh_idx, int sc_idx, const float *gamma,
		 const float *beta, int t, int d, int n_per_slot, int l, float eps, char *err,
		 size_t errlen);
/* The same with a second, ungated residual input and the store optional:
 *   v = x + y·gate (y != NULL) + y2 (y2 != NULL), in that order (so bitwise the x that two
 *   wan_k_res_ln calls, y then y2, would leave); x = v when store_x; out = LN(v)·... as above.
 * store_x = 0 lets a caller normalise x + y·gate without writing it back and add y to x later
 * together with y2 (one write and one read of the fp32 row fewer). out may be y or y2. */
int wan_k_res_ln2(cudaStream_t st, float *x, int store_x, const void *y, const float *gv,
		  int gidx, const void *y2, void *out, const float *mv, int nj, int sh_idx,
		  int sc_idx, const float *gamma, const float *beta, int t, int d, int n_per_slot,
		  int l, float eps, char *err, size_t errlen);

/* Self-attention input stage (one or a few tokens per block). From qkv bf16 [T, 3D] (q | k | v):
 *  q_out bf16 [T, D]  = RoPE(RMSNorm(q)·g_q)
 *  k cache row        = RoPE(RMSNorm(k)·g_k), v cache row = v,
 * where slot b's token i goes to cache row write_row[b] + i (kcache/vcache base of slot b at
 * b·kv_bstride elements, rows of D). RoPE position: frame start_frame[b] + i / L, row and
 * column of i % L in a grid of width w2 (spec §2.6). rope: float2 (cos, sin) [1024][hd/2].
 * start_frame and write_row are device int arrays [B]; a slot whose write_row is negative (a
 * write the adaptive sink refused) gets its q only and its cache is left alone. */
int wan_k_qkv_rope_cache(cudaStream_t st, const void *qkv, void *q_out, void *kcache,
			 void *vcache, int64_t kv_bstride, int t, int d, int hd, int n_per_slot,
			 int l, int w2, const float *g_q, const float *g_k, const void *rope,
			 const int *start_frame, const int *write_row, float eps,
			 char *err, size_t errlen);
/* Tokens per block of the vectorized row kernels (res_ln, qkv_rope_cache, rmsnorm at widths
 * divisible by 256, where wan_k_warp_rows does not apply): 1, 2, 4 or 8, bitwise the same
 * results. The environment variable WAN_K_ROWS sets the first value (default 4; 1 = one token
 * per block); rows 1, 2, 4 or 8 sets it (tests and benchmarks), any other value only asks.
 * Returns the value in force. Not thread-safe against launches in flight on other threads. */
int wan_k_rows_per_block(int rows);
/* One warp per token in the same row kernels (res_ln, qkv_rope_cache, rmsnorm at widths
 * divisible by 256 and at most 1536, per-channel vectors 16-byte aligned; wider rows keep the
 * block kernels of wan_k_rows_per_block): no shared memory and no barriers, bitwise the same
 * results. WAN_K_WARP=0 in the environment sets the first value to off (default on); on = 0 or 1
 * sets it (tests, benchmarks), any other value only asks. Returns the value in force. */
int wan_k_warp_rows(int on);

/* Programmatic dependent launch of this file's kernels (every one but the sink statistics):
 * 1 (the default) launches them with programmatic stream serialization, each waiting for its
 * predecessor's completion (griddepcontrol.wait) before touching memory, so a kernel's launch
 * overlaps the previous kernel's tail and graphs capture programmatic edges; 0 plain launches
 * (bitwise the same results). WAN_PDL=0 in the environment sets the first value; on = 0 or 1
 * sets it (tests, benchmarks), any other value only asks. Returns the value in force. */
int wan_k_pdl(int on);

/* Cache hints of the vectorized row kernels, bits: 1 the fused residual+LN loads x, y, y2 and
 * stores x evict-first (streaming: each is read once before the next GEMMs push it out of L2
 * anyway, so L2 keeps the LN output the next GEMM reads), 2 the q/k RMSNorm+RoPE loads qkv
 * and RMSNorm its input evict-first. Values only, never results, change. WAN_K_HINT sets the
 * first value (default 3); bits 0..3 sets it (tests, benchmarks), any other value only asks.
 * Returns the value in force. */
int wan_k_hints(int bits);

/* out bf16 [T,D] = RMSNorm(x)·g, x bf16 rows of stride ldx. */
int wan_k_rmsnorm(cudaStream_t st, const void *x, int ldx, void *out, int t, int d,
		  const float *g, float eps, char *err, size_t errlen);

/* x f32 [T,D] += y bf16 [T,D] · gate, gate indexed like ln_mod's shift; mod == NULL: plain
 * residual add. */
int wan_k_residual(cudaStream_t st, float *x, const void *y, int t, int d, int n_per_slot,
		   int l, const float *mod, const float *emb, int64_t emb_row, int64_t emb_chunk,
		   int gate_idx, char *err, size_t errlen);

/* Head output: o bf16 [T, 64] -> flow f32 [B,16,F,h,w] (unpatchify, spec §2.8) and, when x0
 * is non-NULL, x0 = x_in - sigma[b·F+f]·flow (spec §2.9). */
int wan_k_unpatchify_x0(cudaStream_t st, const void *o, const float *x_in, const float *sigma,
			float *flow, float *x0, int b, int f, int h, int w, char *err, size_t errlen);

/* A stream's x0 on the device: x0 = x_in - sigma[slot]·flow over B slots of PER floats each,
 * in double with one rounding to float per element (__dmul_rn, __dsub_rn, __double2float_rn:
 * no contraction), so bitwise ops_flow_to_x0 on the host. SIGMA is a host array [b], b at
 * most 8. A plain launch (no PDL): it may follow a graph replay. */
int wan_k_flow_to_x0_f64(cudaStream_t st, const float *x_in, const float *flow, float *x0,
			 const double *sigma, int b, size_t per, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
