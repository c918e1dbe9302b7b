/* kernels.cu: fused kernels of the CUDA DiT (see kernels.h for the contracts) and the
 * fallback attention kernel (attn_cudnn.h). One kernel per op with its launcher beside it.
 * Statistics and accumulations are fp32; stored activations are bf16. */
#include "plugins/wan/cuda/kernels.h"
#include "plugins/wan/cuda/row8.cuh"
#include "plugins/wan/cuda/attn_cudnn.h"
#include "plugins/wan/cuda/cuda_check.h"

#include <cuda_bf16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef __nv_bfloat16 bf16;

#define LAUNCH_CHECK(name) do { cudaError_t e_ = cudaGetLastError(); if (e_ != cudaSuccess) \
	return wan_cuda_fail(err, errlen, __FILE__, __LINE__, name, cudaGetErrorString(e_)); } while (0)

/* ---- programmatic dependent launch (PDL) ----
 * Every kernel of this file except the adaptive-sink statistics launches through pdl_launch:
 * with programmatic stream serialization (WAN_PDL=0 in the environment, or wan_k_pdl(0):
 * plain launches), so it may be scheduled while the kernel before it in the stream is still
 * draining, and stream capture turns that edge into a programmatic graph edge. Correctness
 * rests on one rule: a kernel's first statement is pdl_wait() (griddepcontrol.wait: returns
 * once every grid it depends on has completed and its writes are visible), before any read or
 * write of global memory and before any early return, so the stream order holds for data
 * (transitively: a kernel that waited completes only after its own predecessor did).
 * pdl_trigger() (griddepcontrol.launch_dependents) lets the next kernel in the stream be
 * scheduled: the row kernels issue it once their loads are in flight, the others at entry.
 * Without the launch attribute both instructions are no-ops. */
static int pdl_on = -1;

/* An on/off switch of the environment, read once into *V (-1: not read yet): on unless NAME
 * is set and starts with '0'. */
static int env_switch(int *v, const char *name)
{
	if (*v < 0) {
		const char *e = getenv(name);

		*v = !(e && e[0] == '0');
	}
	return *v;
}

static int pdl_enabled(void)
{
	return env_switch(&pdl_on, "WAN_PDL");
}

extern "C" int wan_k_pdl(int on)
{
	if (on == 0 || on == 1)
		pdl_on = on;
	return pdl_enabled();
}

static __device__ __forceinline__ void pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* KERN<<<GRID, BLOCK, 0, ST>>>(ARGS...), with the PDL attribute when it is on. A launch error
 * is left for cudaGetLastError (LAUNCH_CHECK), as with <<<>>>. */
template <typename... P, typename... A>
static void pdl_launch(void (*kern)(P...), dim3 grid, dim3 block, cudaStream_t st, A... args)
{
	cudaLaunchConfig_t cfg = {};
	cudaLaunchAttribute at[1];

	cfg.gridDim = grid;
	cfg.blockDim = block;
	cfg.stream = st;
	if (pdl_enabled()) {
		at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
		at[0].val.programmaticStreamSerializationAllowed = 1;
		cfg.attrs = at;
		cfg.numAttrs = 1;
	}
	cudaLaunchKernelEx(&cfg, kern, ((P)args)...);
}

static __device__ __forceinline__ float warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result. */
static __device__ float block_sum(float v, float *sh)
{
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;

	v = warp_sum(v);
	__syncthreads();
	if (lane == 0)
		sh[wid] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : 0.0f;
	return warp_sum(v);
}


/* The vectorized row kernels run one thread per 8 channels: d/8 threads, a multiple of 32.
 * WAN_K_VEC=0 in the environment keeps the plain kernels (benchmark A/B). */
static int vec8_ok(int d)
{
	static int env = -1;

	return env_switch(&env, "WAN_K_VEC") && d % 256 == 0 && d / 8 <= 1024;
}

/* Evict-first (streaming) accesses for data the row kernels read once (wan_k_hints). */
static int k_hints = -1;

static int k_hint(void)
{
	if (k_hints < 0) {
		const char *e = getenv("WAN_K_HINT");

		k_hints = e ? atoi(e) & 3 : 3;
	}
	return k_hints;
}

extern "C" int wan_k_hints(int bits)
{
	if (bits >= 0 && bits <= 3)
		k_hints = bits;
	return k_hint();
}

/* Tokens per block of the vectorized row kernels: WAN_K_ROWS = 1, 2, 4 (default) or 8
 * (benchmark A/B). wan_k_rows_per_block overrides it. */
static int k_rows;

static int rows_per_block(void)
{
	if (!k_rows) {
		const char *e = getenv("WAN_K_ROWS");
		int v = e ? atoi(e) : 4;

		k_rows = v == 1 || v == 2 || v == 8 ? v : 4;
	}
	return k_rows;
}

extern "C" int wan_k_rows_per_block(int rows)
{
	if (rows == 1 || rows == 2 || rows == 4 || rows == 8)
		k_rows = rows;
	return rows_per_block();
}

/* One warp per row (row8.cuh) for the vectorized row kernels at widths of at most
 * WR_MAXNC·256 channels: WAN_K_WARP=0 keeps the block kernels (benchmark A/B);
 * wan_k_warp_rows overrides it. */
#define WR_MAXNC 6
#define WR_WARPS 2 /* rows (warps) per block */
static int k_warp = -1;

static int warp_rows(void)
{
	return env_switch(&k_warp, "WAN_K_WARP");
}

extern "C" int wan_k_warp_rows(int on)
{
	if (on == 0 || on == 1)
		k_warp = on;
	return warp_rows();
}

/* The warp kernels serve width d (a multiple of 256, vec8_ok) when on, at most WR_MAXNC·256
 * wide, and every per-channel vector they read as float4 is 16-byte aligned. */
static int warp_ok(int d, uintptr_t vectors)
{
	return warp_rows() && d <= WR_MAXNC * 256 && !(vectors & 15);
}

/* Launches KERN<d/256, V> (one warp per row, WR_WARPS rows per block) over T rows on stream
 * ST; V is the kernel's compile-time variant; the rest are the kernel's arguments. */
#define LAUNCH_WARP(nc, V, t, st, kern, ...)                                                \
	do {                                                                                 \
		unsigned blocks_ = (unsigned)(((t) + WR_WARPS - 1) / WR_WARPS);                \
		switch (nc) {                                                                \
		case 1: pdl_launch(kern<1, V>, blocks_, WR_WARPS * 32, st, __VA_ARGS__); break;    \
		case 2: pdl_launch(kern<2, V>, blocks_, WR_WARPS * 32, st, __VA_ARGS__); break;    \
		case 3: pdl_launch(kern<3, V>, blocks_, WR_WARPS * 32, st, __VA_ARGS__); break;    \
		case 4: pdl_launch(kern<4, V>, blocks_, WR_WARPS * 32, st, __VA_ARGS__); break;    \
		case 5: pdl_launch(kern<5, V>, blocks_, WR_WARPS * 32, st, __VA_ARGS__); break;    \
		default: pdl_launch(kern<6, V>, blocks_, WR_WARPS * 32, st, __VA_ARGS__); break;   \
		}                                                                            \
	} while (0)

/* Tokens per block for a row kernel whose instances for 2, 4 and 8 tokens are kern[0..2],
 * launched with `threads` threads: the setting, lowered while an instance cannot launch that
 * many threads (its registers: 14B's 640-thread rows at 4 or 8 tokens). maxthr caches each
 * instance's limit (0: not asked yet). */
static int rows_fit(const void *const kern[3], int maxthr[3], int threads)
{
	int r = rows_per_block();

	for (int i = 2; i >= 0; i--) {
		if (r < (2 << i))
			continue;
		if (!maxthr[i]) {
			cudaFuncAttributes a;

			maxthr[i] = cudaFuncGetAttributes(&a, kern[i]) == cudaSuccess ? a.maxThreadsPerBlock : -1;
			cudaGetLastError();
		}
		if (maxthr[i] >= threads)
			return 2 << i;
		r = 1 << i;
	}
	return 1;
}

/* Launches KERN<r>, r = 1, 2, 4 or 8 tokens per block (from rows_fit), over T tokens with
 * THREADS threads per block on stream ST; the rest are the kernel's arguments. */
#define LAUNCH_ROWS(r, t, threads, st, kern, ...)                                          \
	do {                                                                                 \
		unsigned blocks_ = (unsigned)(((t) + (r)-1) / (r));                            \
		switch (r) {                                                                 \
		case 1: pdl_launch(kern<1>, blocks_, threads, st, __VA_ARGS__); break;             \
		case 2: pdl_launch(kern<2>, blocks_, threads, st, __VA_ARGS__); break;             \
		case 8: pdl_launch(kern<8>, blocks_, threads, st, __VA_ARGS__); break;             \
		default: pdl_launch(kern<4>, blocks_, threads, st, __VA_ARGS__); break;            \
		}                                                                            \
	} while (0)

/* ---- random fill ---- */

static __device__ __forceinline__ float hash_uniform(uint64_t seed, uint64_t i)
{
	uint64_t z = seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull + 0x94D049BB133111EBull;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	return (float)(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
}

__global__ void k_fill_bf16(bf16 *p, size_t n, uint64_t seed, float amp)
{
	pdl_wait();
	pdl_trigger();
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		p[i] = __float2bfloat16(amp * hash_uniform(seed, i));
}

__global__ void k_fill_f32(float *p, size_t n, uint64_t seed, float base, float amp)
{
	pdl_wait();
	pdl_trigger();
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		p[i] = base + amp * hash_uniform(seed, i);
}

static unsigned grid_for(size_t n)
{
	size_t g = (n + 255) / 256;
	return (unsigned)(g > 65536 ? 65536 : (g ? g : 1));
}

extern "C" int wan_k_fill_uniform_bf16(cudaStream_t st, void *dst, size_t n, uint64_t seed,
				       float amp, char *err, size_t errlen)
{
	pdl_launch(k_fill_bf16, grid_for(n), 256, st, (bf16 *)dst, n, seed, amp);
	LAUNCH_CHECK("k_fill_bf16");
	return 0;
}

extern "C" int wan_k_fill_uniform_f32(cudaStream_t st, float *dst, size_t n, uint64_t seed,
				      float base, float amp, char *err, size_t errlen)
{
	pdl_launch(k_fill_f32, grid_for(n), 256, st, dst, n, seed, base, amp);
	LAUNCH_CHECK("k_fill_f32");
	return 0;
}

__global__ void k_f32_to_bf16(const float *s, bf16 *d, size_t n)
{
	pdl_wait();
	pdl_trigger();
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		d[i] = __float2bfloat16(s[i]);
}

__global__ void k_bf16_to_f32(const bf16 *s, float *d, size_t n)
{
	pdl_wait();
	pdl_trigger();
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		d[i] = __bfloat162float(s[i]);
}

extern "C" int wan_k_f32_to_bf16(cudaStream_t st, const float *src, void *dst, size_t n,
				 char *err, size_t errlen)
{
	pdl_launch(k_f32_to_bf16, grid_for(n), 256, st, src, (bf16 *)dst, n);
	LAUNCH_CHECK("k_f32_to_bf16");
	return 0;
}

extern "C" int wan_k_bf16_to_f32(cudaStream_t st, const void *src, float *dst, size_t n,
				 char *err, size_t errlen)
{
	pdl_launch(k_bf16_to_f32, grid_for(n), 256, st, (const bf16 *)src, dst, n);
	LAUNCH_CHECK("k_bf16_to_f32");
	return 0;
}

/* ---- patch embedding im2col ---- */

__global__ void k_patchify(const float *z, bf16 *cols, int b, int f, int h, int w)
{
	pdl_wait();
	pdl_trigger();
	int h2 = h / 2, w2 = w / 2;
	size_t ntok = (size_t)b * f * h2 * w2;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < ntok * 64;
	     i += (size_t)gridDim.x * blockDim.x) {
		size_t tok = i / 64;
		int col = (int)(i % 64), c = col / 4, dy = (col / 2) % 2, dx = col % 2;
		int x = (int)(tok % w2), y = (int)((tok / w2) % h2);
		size_t fr = (tok / ((size_t)w2 * h2)) % f, bb = tok / ((size_t)w2 * h2 * f);
		size_t src = (((bb * 16 + c) * f + fr) * h + (2 * y + dy)) * (size_t)w + (2 * x + dx);

		cols[i] = __float2bfloat16(z[src]);
	}
}

extern "C" int wan_k_patchify(cudaStream_t st, const float *z, void *cols, int b, int f, int h,
			      int w, char *err, size_t errlen)
{
	pdl_launch(k_patchify, grid_for((size_t)b * f * (h / 2) * (w / 2) * 64), 256, st, z,
		   (bf16 *)cols, b, f, h, w);
	LAUNCH_CHECK("k_patchify");
	return 0;
}

/* ---- time embedding ---- */

__global__ void k_sin_emb(const int *t, float *out, int m)
{
	pdl_wait();
	pdl_trigger();
	int row = blockIdx.x, i = threadIdx.x; /* 128 threads */
	double tv = (double)t[row];
	double omega = pow(10000.0, -(double)i / 128.0);

	if (row >= m)
		return;
	out[(size_t)row * 256 + i] = (float)cos(tv * omega);
	out[(size_t)row * 256 + 128 + i] = (float)sin(tv * omega);
}

extern "C" int wan_k_sin_emb(cudaStream_t st, const int *t, float *out, int m, char *err, size_t errlen)
{
	pdl_launch(k_sin_emb, m, 128, st, t, out, m);
	LAUNCH_CHECK("k_sin_emb");
	return 0;
}

static __device__ __forceinline__ float silu(float v)
{
	return v / (1.0f + expf(-v));
}

/* One warp per output column n; all m rows at once (m <= 16). */
#define SMALL_M_MAX 16
__global__ void k_linear_small(const float *x, const bf16 *w, const bf16 *bias, float *y, int m,
			       int n, int k, int silu_in)
{
	pdl_wait();
	pdl_trigger();
	int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
	float acc[SMALL_M_MAX];

	if (warp >= n)
		return;
	for (int r = 0; r < SMALL_M_MAX; r++)
		acc[r] = 0.0f;
	for (int kk = lane; kk < k; kk += 32) {
		float wv = __bfloat162float(w[(size_t)warp * k + kk]);

#pragma unroll
		for (int r = 0; r < SMALL_M_MAX; r++) {
			if (r < m) {
				float xv = x[(size_t)r * k + kk];

				acc[r] += wv * (silu_in ? silu(xv) : xv);
			}
		}
	}
#pragma unroll
	for (int r = 0; r < SMALL_M_MAX; r++) {
		float v = warp_sum(acc[r]);

		if (lane == 0 && r < m)
			y[(size_t)r * n + warp] = v + (bias ? __bfloat162float(bias[warp]) : 0.0f);
	}
}

extern "C" int wan_k_linear_small(cudaStream_t st, const float *x, const void *w, const void *bias,
				  float *y, int m, int n, int k, int silu_in, char *err, size_t errlen)
{
	if (m < 1 || m > 1024) {
		snprintf(err, errlen, "time MLP batch %d outside 1..1024", m);
		return -1;
	}
	for (int r0 = 0; r0 < m; r0 += SMALL_M_MAX) {
		int mm = m - r0 < SMALL_M_MAX ? m - r0 : SMALL_M_MAX;

		pdl_launch(k_linear_small, (n * 32 + 255) / 256, 256, st, x + (size_t)r0 * k, (const bf16 *)w,
								     (const bf16 *)bias, y + (size_t)r0 * n,
								     mm, n, k, silu_in);
		LAUNCH_CHECK("k_linear_small");
	}
	return 0;
}

/* ---- LayerNorm (+ modulation) ---- */

/* One block per token; two passes over the row held in registers-by-loop (D <= 8192). */
__global__ void k_ln(const float *x, bf16 *out, int d, int n_per_slot, int l, const float *mod,
		     const float *emb, int64_t emb_row, int64_t emb_chunk, int shift_idx, int scale_idx,
		     const float *gamma, const float *beta, float eps)
{
	pdl_wait();
	pdl_trigger();
	__shared__ float sh[32];
	size_t tok = blockIdx.x;
	const float *row = x + tok * d;
	float s = 0.0f, s2 = 0.0f, mean, rstd;
	int fpslot = n_per_slot / l;
	size_t bf = (tok / n_per_slot) * fpslot + (tok % n_per_slot) / l;

	for (int i = threadIdx.x; i < d; i += blockDim.x)
		s += row[i];
	mean = block_sum(s, sh) / d;
	for (int i = threadIdx.x; i < d; i += blockDim.x) {
		float v = row[i] - mean;

		s2 += v * v;
	}
	rstd = rsqrtf(block_sum(s2, sh) / d + eps);
	for (int i = threadIdx.x; i < d; i += blockDim.x) {
		float v = (row[i] - mean) * rstd;

		if (mod) {
			const float *e = emb + bf * emb_row;
			float sc = mod[scale_idx * d + i] + e[scale_idx * emb_chunk + i];
			float shf = mod[shift_idx * d + i] + e[shift_idx * emb_chunk + i];

			v = v * (1.0f + sc) + shf;
		} else if (gamma) {
			v = v * gamma[i] + beta[i];
		}
		out[tok * d + i] = __float2bfloat16(v);
	}
}

extern "C" int wan_k_ln_mod(cudaStream_t st, const float *x, void *out, int t, int d,
			    int n_per_slot, int l, const float *mod, const float *emb, int64_t emb_row,
			    int64_t emb_chunk, int shift_idx, int scale_idx, float eps, char *err,
			    size_t errlen)
{
	pdl_launch(k_ln, t, 256, st, x, (bf16 *)out, d, n_per_slot, l, mod, emb, emb_row, emb_chunk, shift_idx,
				scale_idx, NULL, NULL, eps);
	LAUNCH_CHECK("k_ln(mod)");
	return 0;
}

extern "C" int wan_k_ln_affine(cudaStream_t st, const float *x, void *out, int t, int d,
			       const float *gamma, const float *beta, float eps, char *err, size_t errlen)
{
	pdl_launch(k_ln, t, 256, st, x, (bf16 *)out, d, 1, 1, NULL, NULL, 0, 0, 0, 0, gamma, beta, eps);
	LAUNCH_CHECK("k_ln(affine)");
	return 0;
}

/* ---- modulation vectors and the fused residual + LayerNorm ---- */

/* out[((g·M + m)·nj + j)·D + c] = mods[(g·nj + j)·D + c] + emb[m·emb_row + j·emb_chunk + c] */
__global__ void k_modvec(const float *mods, int ng, const float *emb, int m, int nj, int d,
			 int64_t emb_row, int64_t emb_chunk, float *out)
{
	pdl_wait();
	pdl_trigger();
	size_t total = (size_t)ng * m * nj * d;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x) {
		int c = (int)(i % d), j = (int)((i / d) % nj);
		int mm = (int)((i / ((size_t)d * nj)) % m), g = (int)(i / ((size_t)d * nj * m));

		out[i] = mods[((size_t)g * nj + j) * d + c] + emb[mm * emb_row + j * emb_chunk + c];
	}
}

extern "C" int wan_k_modvec(cudaStream_t st, const float *mods, int ng, const float *emb, int m,
			    int nj, int d, int64_t emb_row, int64_t emb_chunk, float *out,
			    char *err, size_t errlen)
{
	pdl_launch(k_modvec, grid_for((size_t)ng * m * nj * d), 256, st, mods, ng, emb, m, nj, d, emb_row,
								    emb_chunk, out);
	LAUNCH_CHECK("k_modvec");
	return 0;
}

#define RL_THREADS 256
#define RL_MAXV 8 /* float4 per thread: D <= 8192 */

static __device__ __forceinline__ float4 bf16x4_to_f4(uint2 raw)
{
	__nv_bfloat162 a = *reinterpret_cast<__nv_bfloat162 *>(&raw.x);
	__nv_bfloat162 b = *reinterpret_cast<__nv_bfloat162 *>(&raw.y);
	float2 fa = __bfloat1622float2(a), fb = __bfloat1622float2(b);

	return make_float4(fa.x, fa.y, fb.x, fb.y);
}

static __device__ __forceinline__ uint2 f4_to_bf16x4(float4 v)
{
	__nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
	uint2 r;

	r.x = *reinterpret_cast<uint32_t *>(&a);
	r.y = *reinterpret_cast<uint32_t *>(&b);
	return r;
}

/* One block per token, the row held in registers (one read of x). */
__global__ void __launch_bounds__(RL_THREADS)
k_res_ln(float *x, int store_x, const bf16 *y, const float *gv, int gidx, const bf16 *y2, bf16 *out,
	 const float *mv, int nj, int sh_idx, int sc_idx, const float *gamma, const float *beta, int d,
	 int n_per_slot, int l, float eps)
{
	pdl_wait();
	pdl_trigger();
	__shared__ float sh[32];
	size_t tok = blockIdx.x;
	int d4 = d / 4, fpslot = n_per_slot / l;
	size_t mi = (tok / n_per_slot) * fpslot + (tok % n_per_slot) / l;
	float4 *xr = reinterpret_cast<float4 *>(x + tok * d);
	float4 v[RL_MAXV];
	float s = 0.0f, s2 = 0.0f, mean, rstd;

#pragma unroll
	for (int r = 0; r < RL_MAXV; r++) {
		int i = threadIdx.x + r * RL_THREADS;

		if (i < d4) {
			float4 a = xr[i];

			if (y) {
				float4 yy = bf16x4_to_f4(reinterpret_cast<const uint2 *>(y + tok * d)[i]);

				if (gidx >= 0) {
					float4 g = reinterpret_cast<const float4 *>(gv + (mi * 6 + gidx) * d)[i];

					yy.x *= g.x; yy.y *= g.y; yy.z *= g.z; yy.w *= g.w;
				}
				a.x += yy.x; a.y += yy.y; a.z += yy.z; a.w += yy.w;
			}
			if (y2) {
				float4 zz = bf16x4_to_f4(reinterpret_cast<const uint2 *>(y2 + tok * d)[i]);

				a.x += zz.x; a.y += zz.y; a.z += zz.z; a.w += zz.w;
			}
			if ((y || y2) && store_x)
				xr[i] = a;
			v[r] = a;
			s += a.x + a.y + a.z + a.w;
		}
	}
	mean = block_sum(s, sh) / d;
#pragma unroll
	for (int r = 0; r < RL_MAXV; r++) {
		int i = threadIdx.x + r * RL_THREADS;

		if (i < d4) {
			float4 a = v[r];

			a.x -= mean; a.y -= mean; a.z -= mean; a.w -= mean;
			v[r] = a;
			s2 += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
		}
	}
	rstd = rsqrtf(block_sum(s2, sh) / d + eps);
#pragma unroll
	for (int r = 0; r < RL_MAXV; r++) {
		int i = threadIdx.x + r * RL_THREADS;

		if (i < d4) {
			float4 a = v[r], o;

			a.x *= rstd; a.y *= rstd; a.z *= rstd; a.w *= rstd;
			if (mv) {
				float4 sc = reinterpret_cast<const float4 *>(mv + (mi * nj + sc_idx) * d)[i];
				float4 sf = reinterpret_cast<const float4 *>(mv + (mi * nj + sh_idx) * d)[i];

				o = make_float4(a.x * (1.0f + sc.x) + sf.x, a.y * (1.0f + sc.y) + sf.y,
						a.z * (1.0f + sc.z) + sf.z, a.w * (1.0f + sc.w) + sf.w);
			} else {
				float4 g = reinterpret_cast<const float4 *>(gamma)[i];
				float4 b = reinterpret_cast<const float4 *>(beta)[i];

				o = make_float4(a.x * g.x + b.x, a.y * g.y + b.y, a.z * g.z + b.z, a.w * g.w + b.w);
			}
			reinterpret_cast<uint2 *>(out + tok * d)[i] = f4_to_bf16x4(o);
		}
	}
}

/* Same contract, vectorized: R = 1, 2, 4 or 8 consecutive tokens per block, thread i owns
 * channels [8i, 8i+8) of each (32-byte x, 16-byte y/out accesses): every load of the R rows is
 * issued before the first reduction, the R rows' sums share one pair of barriers, and the gate
 * and modulation vectors are read once per frame instead of once per token. Per row the math
 * and its order do not depend on R (bitwise equal results). */
template <int R>
__global__ void k_res_ln8r(float *x, int store_x, const bf16 *y, const float *gv, int gidx,
			   const bf16 *y2, bf16 *out, const float *mv, int nj, int sh_idx, int sc_idx,
			   const float *gamma, const float *beta, int t, int d, int n_per_slot, int l,
			   float eps)
{
	pdl_wait();
	__shared__ float sh[R][32];
	size_t tok0 = (size_t)blockIdx.x * R, mi[R], mprev = ~(size_t)0;
	int c = threadIdx.x * 8, fpslot = n_per_slot / l;
	float v[R][8], s[R], p0[8], p1[8];
	uint4 yr[R], zr[R];
	int nr = t - (int)tok0 < R ? t - (int)tok0 : R;
	/* store_x bit 1 (WAN_K_HINT=1): x, y and y2 loaded and x stored evict-first (streaming) */
	int cs = store_x & 2;

	store_x &= 1;
#pragma unroll
	for (int r = 0; r < R; r++) {
		size_t tok = tok0 + (r < nr ? r : 0); /* rows past the end repeat the first (not stored) */
		const uint4 *yp = reinterpret_cast<const uint4 *>(y + tok * d + c);
		const uint4 *zp = reinterpret_cast<const uint4 *>(y2 + tok * d + c);

		f8_load(x + tok * d + c, v[r], cs);
		mi[r] = (tok / n_per_slot) * fpslot + (tok % n_per_slot) / l;
		if (y)
			yr[r] = cs ? __ldcs(yp) : *yp;
		if (y2)
			zr[r] = cs ? __ldcs(zp) : *zp;
	}
	pdl_trigger();
#pragma unroll
	for (int r = 0; r < R; r++) {
		if (y) {
			if (gidx >= 0 && mi[r] != mprev) {
				f8_load(gv + (mi[r] * 6 + gidx) * d + c, p0);
				mprev = mi[r];
			}
			add_bf16x8(v[r], yr[r], p0, gidx >= 0);
		}
		if (y2)
			add_bf16x8(v[r], zr[r]);
		if ((y || y2) && store_x && r < nr)
			f8_store(x + (tok0 + r) * d + c, v[r], cs);
		s[r] = 0.0f;
#pragma unroll
		for (int j = 0; j < 8; j++)
			s[r] += v[r][j];
	}
	block_sum_rows<R>(s, sh);
#pragma unroll
	for (int r = 0; r < R; r++) {
		float mean = s[r] / d;

		s[r] = 0.0f;
#pragma unroll
		for (int j = 0; j < 8; j++) {
			v[r][j] -= mean;
			s[r] += v[r][j] * v[r][j];
		}
	}
	block_sum_rows<R>(s, sh);
	if (!mv) {
#pragma unroll
		for (int j = 0; j < 8; j++) {
			p0[j] = gamma[c + j];
			p1[j] = beta[c + j];
		}
	}
	mprev = ~(size_t)0;
#pragma unroll
	for (int r = 0; r < R; r++) {
		float rstd = rsqrtf(s[r] / d + eps), o[8];

		if (r >= nr)
			break;
		if (mv) {
			if (mi[r] != mprev) {
				const float *sc = mv + (mi[r] * nj + sc_idx) * d + c, *sf = mv + (mi[r] * nj + sh_idx) * d + c;

#pragma unroll
				for (int j = 0; j < 8; j++) {
					p0[j] = sc[j];
					p1[j] = sf[j];
				}
				mprev = mi[r];
			}
#pragma unroll
			for (int j = 0; j < 8; j++)
				o[j] = v[r][j] * rstd * (1.0f + p0[j]) + p1[j];
		} else {
#pragma unroll
			for (int j = 0; j < 8; j++)
				o[j] = v[r][j] * rstd * p0[j] + p1[j];
		}
		*reinterpret_cast<uint4 *>(out + (tok0 + r) * d + c) = f_to_bf16x8(o);
	}
}

/* The fused residual+LN of one row after its loads, for one warp (row8.cuh's layout: lane L
 * owns the chunks L + 32·j of 8 channels, j < NC = d/256): v holds x, yr and zr the raw y and
 * y2 (Y2 = 0: no y2) of the lane's chunks. The arithmetic per channel and the order of every
 * sum are k_res_ln8r's: bitwise the same results. */
template <int NC, int Y2>
static __device__ __forceinline__ void res_ln_row(float (*v)[8], const uint4 *yr, const uint4 *zr, float *x,
						  size_t ro, int store_x, int cs, int has_y, const float *gv,
						  int gidx, bf16 *out, const float *mv, int nj, int sh_idx,
						  int sc_idx, const float *gamma, const float *beta, int d,
						  int mi, float eps)
{
	int lane = threadIdx.x & 31;
	float s[NC], mean, rstd;

#pragma unroll
	for (int j = 0; j < NC; j++) {
		int c = 8 * (lane + 32 * j);

		if (has_y) {
			float g[8];

			if (gidx >= 0)
				f8_load(gv + ((size_t)mi * 6 + gidx) * d + c, g);
			add_bf16x8(v[j], yr[j], g, gidx >= 0);
		}
		if (Y2)
			add_bf16x8(v[j], zr[j]);
		if ((has_y || Y2) && store_x)
			f8_store(x + ro + c, v[j], cs);
		s[j] = 0.0f;
#pragma unroll
		for (int k = 0; k < 8; k++)
			s[j] += v[j][k];
	}
	mean = warp_row_sum<NC>(s) / d;
#pragma unroll
	for (int j = 0; j < NC; j++) {
		s[j] = 0.0f;
#pragma unroll
		for (int k = 0; k < 8; k++) {
			v[j][k] -= mean;
			s[j] += v[j][k] * v[j][k];
		}
	}
	rstd = rsqrtf(warp_row_sum<NC>(s) / d + eps);
#pragma unroll
	for (int j = 0; j < NC; j++) {
		int c = 8 * (lane + 32 * j);
		float o[8], p0[8], p1[8];

		if (mv) {
			f8_load(mv + ((size_t)mi * nj + sc_idx) * d + c, p0);
			f8_load(mv + ((size_t)mi * nj + sh_idx) * d + c, p1);
#pragma unroll
			for (int k = 0; k < 8; k++)
				o[k] = v[j][k] * rstd * (1.0f + p0[k]) + p1[k];
		} else {
			f8_load(gamma + c, p0);
			f8_load(beta + c, p1);
#pragma unroll
			for (int k = 0; k < 8; k++)
				o[k] = v[j][k] * rstd * p0[k] + p1[k];
		}
		*reinterpret_cast<uint4 *>(out + ro + c) = f_to_bf16x8(o);
	}
}

/* Token -> its modulation row b·F + f (32-bit: T < 2^31). */
static __device__ __forceinline__ int tok_frame(int tok, int n_per_slot, int l)
{
	int b = tok / n_per_slot;

	return b * (n_per_slot / l) + (tok - b * n_per_slot) / l;
}

/* Same contract as k_res_ln8r, one warp per row (res_ln_row), WR_WARPS rows per block, no
 * shared memory and no barriers: each warp loads its row, reduces with shuffles and stores,
 * independent of the others. Y2: y2 is read (the launcher picks the instance, so the others
 * need fewer registers). */
template <int NC, int Y2>
__global__ void __launch_bounds__(WR_WARPS * 32)
k_res_ln_w(float *x, int store_x, const bf16 *y, const float *gv, int gidx, const bf16 *y2,
	   bf16 *out, const float *mv, int nj, int sh_idx, int sc_idx, const float *gamma,
	   const float *beta, int t, int d, int n_per_slot, int l, float eps)
{
	pdl_wait();
	int lane = threadIdx.x & 31, tok = blockIdx.x * WR_WARPS + (threadIdx.x >> 5);
	/* store_x bit 1 (WAN_K_HINT=1): x, y and y2 loaded and x stored evict-first (streaming) */
	int cs = store_x & 2;
	float v[NC][8];
	uint4 yr[NC], zr[NC];
	size_t ro;

	store_x &= 1;
	if (tok >= t)
		return;
	ro = (size_t)tok * d;
#pragma unroll
	for (int j = 0; j < NC; j++) {
		int c = 8 * (lane + 32 * j);
		const uint4 *yp = reinterpret_cast<const uint4 *>(y + ro + c);
		const uint4 *zp = reinterpret_cast<const uint4 *>(y2 + ro + c);

		f8_load(x + ro + c, v[j], cs);
		if (y)
			yr[j] = cs ? __ldcs(yp) : *yp;
		if (Y2)
			zr[j] = cs ? __ldcs(zp) : *zp;
	}
	pdl_trigger();
	res_ln_row<NC, Y2>(v, yr, zr, x, ro, store_x, cs, y != NULL, gv, gidx, out, mv, nj, sh_idx, sc_idx,
			   gamma, beta, d, tok_frame(tok, n_per_slot, l), eps);
}

extern "C" int wan_k_res_ln2(cudaStream_t st, float *x, int store_x, const void *y,
			     const float *gv, int gidx, const void *y2, void *out, const float *mv,
			     int nj, int sh_idx, int sc_idx, const float *gamma, const float *beta,
			     int t, int d, int n_per_slot, int l, float eps, char *err, size_t errlen)
{
	static const void *const kern[3] = { (const void *)k_res_ln8r<2>, (const void *)k_res_ln8r<4>,
					      (const void *)k_res_ln8r<8> };
	static int maxthr[3];
	const bf16 *yb = (const bf16 *)y, *zb = (const bf16 *)y2;

	if (d % 4 || d > RL_THREADS * 4 * RL_MAXV) {
		snprintf(err, errlen, "fused LayerNorm needs a width divisible by 4 and <= %d, got %d",
			 RL_THREADS * 4 * RL_MAXV, d);
		return -1;
	}
	if (vec8_ok(d) && warp_ok(d, (uintptr_t)mv | (uintptr_t)gv | (uintptr_t)gamma | (uintptr_t)beta)) {
		int sx = (store_x ? 1 : 0) | (k_hint() & 1 ? 2 : 0), nc = d / 256;

		if (zb) {
			LAUNCH_WARP(nc, 1, t, st, k_res_ln_w, x, sx, yb, gv, gidx, zb, (bf16 *)out, mv, nj, sh_idx,
				    sc_idx, gamma, beta, t, d, n_per_slot, l, eps);
		} else {
			LAUNCH_WARP(nc, 0, t, st, k_res_ln_w, x, sx, yb, gv, gidx, zb, (bf16 *)out, mv, nj, sh_idx,
				    sc_idx, gamma, beta, t, d, n_per_slot, l, eps);
		}
	} else if (vec8_ok(d)) {
		int r = rows_fit(kern, maxthr, d / 8);

		LAUNCH_ROWS(r, t, d / 8, st, k_res_ln8r, x, (store_x ? 1 : 0) | (k_hint() & 1 ? 2 : 0), yb, gv,
			    gidx, zb, (bf16 *)out, mv, nj, sh_idx, sc_idx, gamma, beta, t, d, n_per_slot, l,
			    eps);
	} else {
		pdl_launch(k_res_ln, t, RL_THREADS, st, x, store_x, yb, gv, gidx, zb, (bf16 *)out, mv, nj, sh_idx,
						   sc_idx, gamma, beta, d, n_per_slot, l, eps);
	}
	LAUNCH_CHECK("k_res_ln");
	return 0;
}

extern "C" int wan_k_res_ln(cudaStream_t st, float *x, const void *y, const float *gv, int gidx,
			    void *out, const float *mv, int nj, int sh_idx, int sc_idx,
			    const float *gamma, const float *beta, int t, int d, int n_per_slot, int l,
			    float eps, char *err, size_t errlen)
{
	return wan_k_res_ln2(st, x, 1, y, gv, gidx, NULL, out, mv, nj, sh_idx, sc_idx, gamma, beta, t,
			     d, n_per_slot, l, eps, err, errlen);
}

/* ---- q/k RMSNorm + RoPE + KV cache write ---- */

static __device__ __forceinline__ void rope_pair(float *a, float *b, float2 cs)
{
	float x = *a, y = *b;

	*a = x * cs.x - y * cs.y;
	*b = x * cs.y + y * cs.x;
}

/* Pair j of a head (0..hd/2) uses axis t for j < ct, y for j < ct+ch, x otherwise, with the
 * table column equal to j (the host built the table that way). */
__global__ void k_qkv_rope_cache(const bf16 *qkv, bf16 *q_out, bf16 *kc, bf16 *vc,
				 int64_t kv_bstride, int d, int hd, int n_per_slot, int l, int w2,
				 const float *g_q, const float *g_k, const float2 *rope,
				 const int *start_frame, const int *write_row, float eps)
{
	pdl_wait();
	pdl_trigger();
	__shared__ float sh[32];
	size_t tok = blockIdx.x;
	int b = (int)(tok / n_per_slot), i = (int)(tok % n_per_slot);
	const bf16 *q = qkv + tok * 3 * d, *k = q + d, *v = k + d;
	int half = hd / 2, ch = hd / 6 > 0 ? (hd / 6) : 0, ct = half - 2 * ch;
	int pos_t = start_frame[b] + i / l, rem = i % l, pos_y = rem / w2, pos_x = rem % w2;
	float sq = 0.0f, sk = 0.0f, rq, rk;
	int wr = write_row[b]; /* < 0: a refused adaptive-sink write, q only */
	bf16 *krow = kc + (size_t)b * kv_bstride + (size_t)(wr + i) * d;
	bf16 *vrow = vc + (size_t)b * kv_bstride + (size_t)(wr + i) * d;

	for (int p = threadIdx.x; p < d / 2; p += blockDim.x) {
		float2 a = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162 *>(q)[p]);
		float2 c = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162 *>(k)[p]);

		sq += a.x * a.x + a.y * a.y;
		sk += c.x * c.x + c.y * c.y;
	}
	rq = rsqrtf(block_sum(sq, sh) / d + eps);
	rk = rsqrtf(block_sum(sk, sh) / d + eps);
	for (int p = threadIdx.x; p < d / 2; p += blockDim.x) {
		int pj = p % half, pos = pj < ct ? pos_t : (pj < ct + ch ? pos_y : pos_x);
		float2 cs = rope[(size_t)pos * half + pj];
		float2 qa = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162 *>(q)[p]);
		float2 ka = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162 *>(k)[p]);
		float2 gq = reinterpret_cast<const float2 *>(g_q)[p], gk = reinterpret_cast<const float2 *>(g_k)[p];
		float q0 = qa.x * rq * gq.x, q1 = qa.y * rq * gq.y;
		float k0 = ka.x * rk * gk.x, k1 = ka.y * rk * gk.y;

		rope_pair(&q0, &q1, cs);
		rope_pair(&k0, &k1, cs);
		reinterpret_cast<__nv_bfloat162 *>(q_out + tok * d)[p] = __floats2bfloat162_rn(q0, q1);
		if (wr < 0)
			continue;
		reinterpret_cast<__nv_bfloat162 *>(krow)[p] = __floats2bfloat162_rn(k0, k1);
		reinterpret_cast<__nv_bfloat162 *>(vrow)[p] = reinterpret_cast<const __nv_bfloat162 *>(v)[p];
	}
}

/* Same contract, one pass, R = 1, 2, 4 or 8 consecutive tokens per block: thread i owns
 * channels [8i, 8i+8) of q, k and v of each (16-byte accesses), kept in registers across the
 * RMS reduction (hd divisible by 8, so a thread's 4 pairs sit in one head); q, k and v of all R
 * rows loaded first, the 2R sums reduced with one pair of barriers, g_q and g_k read once. Per
 * row bitwise the same for every R. */
template <int R>
__global__ void k_qkv_rope_cache8r(const bf16 *qkv, bf16 *q_out, bf16 *kc, bf16 *vc,
				   int64_t kv_bstride, int t, int d, int hd, int n_per_slot, int l,
				   int w2, const float *g_q, const float *g_k, const float2 *rope,
				   const int *start_frame, const int *write_row, float eps, int ef)
{
	pdl_wait();
	__shared__ float sh[2 * R][32];
	size_t tok0 = (size_t)blockIdx.x * R;
	int c = threadIdx.x * 8, nr = t - (int)tok0 < R ? t - (int)tok0 : R;
	int half = hd / 2, ch = hd / 6, ct = half - 2 * ch, pj0 = (c % hd) / 2;
	uint4 rq[R], rk[R], rv[R];
	float s[2 * R], gq[8], gk[8];

#pragma unroll
	for (int r = 0; r < R; r++) {
		const uint4 *q = reinterpret_cast<const uint4 *>(qkv + (tok0 + (r < nr ? r : 0)) * 3 * d + c);

		/* ef (WAN_K_HINT bit 1): qkv is read once, evict-first */
		rq[r] = ef ? __ldcs(q) : q[0];
		rk[r] = ef ? __ldcs(q + d / 8) : q[d / 8];
		rv[r] = ef ? __ldcs(q + d / 4) : q[d / 4];
	}
	pdl_trigger();
#pragma unroll
	for (int j = 0; j < 8; j++) {
		gq[j] = g_q[c + j];
		gk[j] = g_k[c + j];
	}
#pragma unroll
	for (int r = 0; r < R; r++) {
		s[2 * r] = sq8(rq[r]);
		s[2 * r + 1] = sq8(rk[r]);
	}
	block_sum_rows<2 * R>(s, sh);
#pragma unroll
	for (int r = 0; r < R; r++) {
		size_t tok = tok0 + r, row;
		int b, i, pos_t, rem, pos_y, pos_x;

		if (r >= nr)
			break;
		b = (int)(tok / n_per_slot);
		i = (int)(tok % n_per_slot);
		pos_t = start_frame[b] + i / l;
		rem = i % l;
		pos_y = rem / w2;
		pos_x = rem % w2;
		*reinterpret_cast<uint4 *>(q_out + tok * d + c) =
			norm_rope8(rq[r], s[2 * r], gq, d, eps, pj0, half, ct, ch, rope, pos_t, pos_y, pos_x);
		if (write_row[b] < 0)
			continue; /* a refused adaptive-sink write: q only */
		row = (size_t)b * kv_bstride + (size_t)(write_row[b] + i) * d + c;
		*reinterpret_cast<uint4 *>(kc + row) =
			norm_rope8(rk[r], s[2 * r + 1], gk, d, eps, pj0, half, ct, ch, rope, pos_t, pos_y,
				   pos_x);
		*reinterpret_cast<uint4 *>(vc + row) = rv[r];
	}
}

/* q/k RMSNorm + RoPE + cache write of one row after its loads, for one warp (row8.cuh's
 * layout, NC = d/256 chunks of 8 channels per lane; rq, rk, rv the lane's raw q, k, v): v goes
 * to the cache first, the RoPE table entries of a chunk are looked up once for q and k.
 * Bitwise k_qkv_rope_cache8r's results. */
template <int NC>
static __device__ __forceinline__ void qkv_row(const uint4 *rq, const uint4 *rk, const uint4 *rv, int tok,
					       bf16 *q_out, bf16 *kc, bf16 *vc, int64_t kv_bstride, int d,
					       int hd, int n_per_slot, int l, int w2, const float *g_q,
					       const float *g_k, const float2 *rope, const int *start_frame,
					       const int *write_row, float eps)
{
	int lane = threadIdx.x & 31, half = hd / 2, ch = hd / 6, ct = half - 2 * ch;
	int b = tok / n_per_slot, i = tok - b * n_per_slot, rem = i % l;
	int pos_t = start_frame[b] + i / l, pos_y = rem / w2, pos_x = rem % w2;
	int wr = write_row[b]; /* < 0: a refused adaptive-sink write, q only */
	float sq[NC], sk[NC], sumq, sumk;
	size_t row = 0;

	if (wr >= 0) {
		row = (size_t)b * kv_bstride + (size_t)(wr + i) * d;
#pragma unroll
		for (int j = 0; j < NC; j++)
			*reinterpret_cast<uint4 *>(vc + row + 8 * (lane + 32 * j)) = rv[j];
	}
#pragma unroll
	for (int j = 0; j < NC; j++) {
		sq[j] = sq8(rq[j]);
		sk[j] = sq8(rk[j]);
	}
	sumq = warp_row_sum<NC>(sq);
	sumk = warp_row_sum<NC>(sk);
#pragma unroll
	for (int j = 0; j < NC; j++) {
		int c = 8 * (lane + 32 * j);
		float2 cs[4];
		float g[8];

		f8_load(g_q + c, g);
		rope_cs4(cs, rope, (c % hd) / 2, half, ct, ch, pos_t, pos_y, pos_x);
		*reinterpret_cast<uint4 *>(q_out + (size_t)tok * d + c) = norm_rope8_cs(rq[j], sumq, g, d, eps, cs);
		if (wr < 0)
			continue;
		f8_load(g_k + c, g);
		*reinterpret_cast<uint4 *>(kc + row + c) = norm_rope8_cs(rk[j], sumk, g, d, eps, cs);
	}
}

/* Same contract as k_qkv_rope_cache8r, one warp per row (qkv_row), WR_WARPS rows per block, no
 * barriers. */
template <int NC, int V>
__global__ void __launch_bounds__(WR_WARPS * 32)
k_qkv_rope_cache_w(const bf16 *qkv, bf16 *q_out, bf16 *kc, bf16 *vc, int64_t kv_bstride, int t,
		   int d, int hd, int n_per_slot, int l, int w2, const float *g_q, const float *g_k,
		   const float2 *rope, const int *start_frame, const int *write_row, float eps, int ef)
{
	pdl_wait();
	int lane = threadIdx.x & 31, tok = blockIdx.x * WR_WARPS + (threadIdx.x >> 5);
	uint4 rq[NC], rk[NC], rv[NC];

	if (tok >= t)
		return;
#pragma unroll
	for (int j = 0; j < NC; j++) {
		const uint4 *q = reinterpret_cast<const uint4 *>(qkv + (size_t)tok * 3 * d + 8 * (lane + 32 * j));

		/* ef (WAN_K_HINT bit 1): qkv is read once, evict-first */
		rq[j] = ef ? __ldcs(q) : q[0];
		rk[j] = ef ? __ldcs(q + d / 8) : q[d / 8];
		rv[j] = ef ? __ldcs(q + d / 4) : q[d / 4];
	}
	pdl_trigger();
	qkv_row<NC>(rq, rk, rv, tok, q_out, kc, vc, kv_bstride, d, hd, n_per_slot, l, w2, g_q, g_k, rope,
		    start_frame, write_row, eps);
}

extern "C" int wan_k_qkv_rope_cache(cudaStream_t st, const void *qkv, void *q_out, void *kcache,
				    void *vcache, int64_t kv_bstride, int t, int d, int hd,
				    int n_per_slot, int l, int w2, const float *g_q, const float *g_k,
				    const void *rope, const int *start_frame, const int *write_row,
				    float eps, char *err, size_t errlen)
{
	static const void *const kern[3] = { (const void *)k_qkv_rope_cache8r<2>,
					      (const void *)k_qkv_rope_cache8r<4>,
					      (const void *)k_qkv_rope_cache8r<8> };
	static int maxthr[3];
	int vec = vec8_ok(d) && hd % 8 == 0 && kv_bstride % 8 == 0;

	if (hd % 2 || d % hd) {
		snprintf(err, errlen, "head dim %d does not divide width %d evenly", hd, d);
		return -1;
	}
	if (vec && warp_ok(d, (uintptr_t)g_q | (uintptr_t)g_k)) {
		LAUNCH_WARP(d / 256, 0, t, st, k_qkv_rope_cache_w, (const bf16 *)qkv, (bf16 *)q_out,
			    (bf16 *)kcache, (bf16 *)vcache, kv_bstride, t, d, hd, n_per_slot, l, w2, g_q,
			    g_k, (const float2 *)rope, start_frame, write_row, eps, (k_hint() & 2) != 0);
		LAUNCH_CHECK("k_qkv_rope_cache_w");
		return 0;
	}
	if (vec) {
		int r = rows_fit(kern, maxthr, d / 8);

		LAUNCH_ROWS(r, t, d / 8, st, k_qkv_rope_cache8r, (const bf16 *)qkv, (bf16 *)q_out,
			    (bf16 *)kcache, (bf16 *)vcache, kv_bstride, t, d, hd, n_per_slot, l, w2, g_q,
			    g_k, (const float2 *)rope, start_frame, write_row, eps,
			    (k_hint() & 2) != 0);
		LAUNCH_CHECK("k_qkv_rope_cache8r");
		return 0;
	}
	pdl_launch(k_qkv_rope_cache, t, 256, st, (const bf16 *)qkv, (bf16 *)q_out, (bf16 *)kcache,
					    (bf16 *)vcache, kv_bstride, d, hd, n_per_slot, l, w2, g_q,
					    g_k, (const float2 *)rope, start_frame, write_row, eps);
	LAUNCH_CHECK("k_qkv_rope_cache");
	return 0;
}

__global__ void k_rmsnorm(const bf16 *x, int ldx, bf16 *out, int d, const float *g, float eps)
{
	pdl_wait();
	pdl_trigger();
	__shared__ float sh[32];
	size_t tok = blockIdx.x;
	const bf16 *row = x + tok * ldx;
	float s = 0.0f, r;

	for (int j = threadIdx.x; j < d; j += blockDim.x) {
		float a = __bfloat162float(row[j]);

		s += a * a;
	}
	r = rsqrtf(block_sum(s, sh) / d + eps);
	for (int j = threadIdx.x; j < d; j += blockDim.x)
		out[tok * d + j] = __float2bfloat16(__bfloat162float(row[j]) * r * g[j]);
}

/* Same contract, one thread per 8 channels (16-byte accesses, the row read once), R = 1, 2, 4
 * or 8 consecutive tokens per block, g read once; per row bitwise the same for every R. */
template <int R>
__global__ void k_rmsnorm8r(const bf16 *x, int ldx, bf16 *out, int t, int d, const float *g, float eps,
			    int cs)
{
	pdl_wait();
	__shared__ float sh[R][32];
	size_t tok0 = (size_t)blockIdx.x * R;
	int c = threadIdx.x * 8, nr = t - (int)tok0 < R ? t - (int)tok0 : R;
	uint4 raw[R];
	float s[R], gg[8];

#pragma unroll
	for (int r = 0; r < R; r++)
		raw[r] = cs ? __ldcs(reinterpret_cast<const uint4 *>(x + (tok0 + (r < nr ? r : 0)) * ldx + c))
			    : *reinterpret_cast<const uint4 *>(x + (tok0 + (r < nr ? r : 0)) * ldx + c);
	pdl_trigger();
#pragma unroll
	for (int j = 0; j < 8; j++)
		gg[j] = g[c + j];
#pragma unroll
	for (int r = 0; r < R; r++) {
		float f[8];

		bf16x8_to_f(raw[r], f);
		s[r] = 0.0f;
#pragma unroll
		for (int j = 0; j < 8; j++)
			s[r] += f[j] * f[j];
	}
	block_sum_rows<R>(s, sh);
#pragma unroll
	for (int r = 0; r < R; r++) {
		float f[8], rr = rsqrtf(s[r] / d + eps);

		if (r >= nr)
			break;
		bf16x8_to_f(raw[r], f);
#pragma unroll
		for (int j = 0; j < 8; j++)
			f[j] *= rr * gg[j];
		*reinterpret_cast<uint4 *>(out + (tok0 + r) * d + c) = f_to_bf16x8(f);
	}
}

/* Same contract, one warp per row (row8.cuh's layout), WR_WARPS rows per block, no barriers;
 * bitwise k_rmsnorm8r's results. */
template <int NC, int V>
__global__ void __launch_bounds__(WR_WARPS * 32)
k_rmsnorm_w(const bf16 *x, int ldx, bf16 *out, int t, int d, const float *g, float eps, int cs)
{
	pdl_wait();
	int lane = threadIdx.x & 31, tok = blockIdx.x * WR_WARPS + (threadIdx.x >> 5);
	uint4 raw[NC];
	float s[NC], sum;

	if (tok >= t)
		return;
#pragma unroll
	for (int j = 0; j < NC; j++) {
		const uint4 *p = reinterpret_cast<const uint4 *>(x + (size_t)tok * ldx + 8 * (lane + 32 * j));

		raw[j] = cs ? __ldcs(p) : *p;
	}
	pdl_trigger();
#pragma unroll
	for (int j = 0; j < NC; j++) {
		float f[8];

		bf16x8_to_f(raw[j], f);
		s[j] = 0.0f;
#pragma unroll
		for (int k = 0; k < 8; k++)
			s[j] += f[k] * f[k];
	}
	sum = warp_row_sum<NC>(s);
#pragma unroll
	for (int j = 0; j < NC; j++) {
		int c = 8 * (lane + 32 * j);
		float f[8], gg[8], rr = rsqrtf(sum / d + eps);

		f8_load(g + c, gg);
		bf16x8_to_f(raw[j], f);
#pragma unroll
		for (int k = 0; k < 8; k++)
			f[k] *= rr * gg[k];
		*reinterpret_cast<uint4 *>(out + (size_t)tok * d + c) = f_to_bf16x8(f);
	}
}

extern "C" int wan_k_rmsnorm(cudaStream_t st, const void *x, int ldx, void *out, int t, int d,
			     const float *g, float eps, char *err, size_t errlen)
{
	static const void *const kern[3] = { (const void *)k_rmsnorm8r<2>, (const void *)k_rmsnorm8r<4>,
					      (const void *)k_rmsnorm8r<8> };
	static int maxthr[3];
	if (vec8_ok(d) && ldx % 8 == 0 && warp_ok(d, (uintptr_t)g)) {
		LAUNCH_WARP(d / 256, 0, t, st, k_rmsnorm_w, (const bf16 *)x, ldx, (bf16 *)out, t, d, g, eps,
			    (k_hint() & 2) != 0);
	} else if (vec8_ok(d) && ldx % 8 == 0) {
		int r = rows_fit(kern, maxthr, d / 8);

		LAUNCH_ROWS(r, t, d / 8, st, k_rmsnorm8r, (const bf16 *)x, ldx, (bf16 *)out, t, d, g, eps,
			    (k_hint() & 2) != 0);
	} else {
		pdl_launch(k_rmsnorm, t, 256, st, (const bf16 *)x, ldx, (bf16 *)out, d, g, eps);
	}
	LAUNCH_CHECK("k_rmsnorm");
	return 0;
}

/* ---- gated residual ---- */

__global__ void k_residual(float *x, const bf16 *y, size_t total, int d, int n_per_slot, int l,
			   const float *mod, const float *emb, int64_t emb_row, int64_t emb_chunk,
			   int gate_idx)
{
	pdl_wait();
	pdl_trigger();
	int fpslot = n_per_slot / l;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x) {
		float v = __bfloat162float(y[i]);

		if (mod) {
			size_t tok = i / d;
			int c = (int)(i % d);
			size_t bf = (tok / n_per_slot) * fpslot + (tok % n_per_slot) / l;

			v *= mod[gate_idx * d + c] + emb[bf * emb_row + gate_idx * emb_chunk + c];
		}
		x[i] += v;
	}
}

extern "C" int wan_k_residual(cudaStream_t st, float *x, const void *y, int t, int d,
			      int n_per_slot, int l, const float *mod, const float *emb, int64_t emb_row,
			      int64_t emb_chunk, int gate_idx, char *err, size_t errlen)
{
	size_t total = (size_t)t * d;

	pdl_launch(k_residual, grid_for(total), 256, st, x, (const bf16 *)y, total, d, n_per_slot, l, mod,
						    emb, emb_row, emb_chunk, gate_idx);
	LAUNCH_CHECK("k_residual");
	return 0;
}

/* ---- head: unpatchify + flow -> x0 ---- */

__global__ void k_unpatchify_x0(const bf16 *o, const float *x_in, const float *sigma, float *flow,
				float *x0, int b, int f, int h, int w)
{
	pdl_wait();
	pdl_trigger();
	size_t total = (size_t)b * 16 * f * h * w;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x) {
		int xx = (int)(i % w), yy = (int)((i / w) % h);
		int fr = (int)((i / ((size_t)w * h)) % f), c = (int)((i / ((size_t)w * h * f)) % 16);
		int bb = (int)(i / ((size_t)w * h * f * 16));
		int w2 = w / 2, h2 = h / 2;
		size_t tok = (((size_t)bb * f + fr) * h2 + yy / 2) * w2 + xx / 2;
		float v = __bfloat162float(o[tok * 64 + ((yy % 2) * 2 + (xx % 2)) * 16 + c]);

		flow[i] = v;
		if (x0)
			x0[i] = x_in[i] - sigma[bb * f + fr] * v;
	}
}

extern "C" int wan_k_unpatchify_x0(cudaStream_t st, const void *o, const float *x_in,
				   const float *sigma, float *flow, float *x0, int b, int f, int h,
				   int w, char *err, size_t errlen)
{
	pdl_launch(k_unpatchify_x0, grid_for((size_t)b * 16 * f * h * w), 256, st, (const bf16 *)o, x_in,
									      sigma, flow, x0, b, f, h, w);
	LAUNCH_CHECK("k_unpatchify_x0");
	return 0;
}

/* ---- fallback attention ----
 * A block of FB_WARPS warps handles FB_WARPS consecutive queries of one (batch, head). Keys
 * and values go through shared memory in tiles of 32 rows, loaded once per block: lane j
 * scores key j of the tile against its warp's query (rows padded to an odd word count, so
 * the 32 lanes hit 32 banks), the warp does an online softmax over the tile, then each lane
 * accumulates its d/32 output channels. fp32 math; exact for any head dim <= 128 (multiple of
 * 2) and any key count. Used for ragged key lengths and for shapes cuDNN refuses. */
#define FB_WARPS 8
#define FB_TILE 32
#define FB_KPAD 130
__global__ void __launch_bounds__(FB_WARPS * 32)
k_attn_fallback(const bf16 *q, const bf16 *k, const bf16 *v, bf16 *o, int h, int d, int sq,
		int skv, const int *kv_len, int64_t qb, int64_t qs, int64_t kvb, int64_t kvs,
		int64_t ob, int64_t os, float scale)
{
	pdl_wait();
	pdl_trigger();
	__shared__ __align__(16) bf16 ks[FB_TILE][FB_KPAD];
	__shared__ __align__(16) bf16 vsh[FB_TILE][128];
	__shared__ float qsh[FB_WARPS][128];
	int lane = threadIdx.x & 31, wq = threadIdx.x >> 5;
	int qi = blockIdx.x * FB_WARPS + wq, hh = blockIdx.y, bb = blockIdx.z;
	int nkv = kv_len ? kv_len[bb] : skv, active = qi < sq;
	const bf16 *kbase = k + bb * kvb + hh * d, *vbase = v + bb * kvb + hh * d;
	float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, m = -INFINITY, lsum = 0.0f;

	if (active) {
		const bf16 *qrow = q + bb * qb + (int64_t)qi * qs + hh * d;

		for (int j = lane; j < d; j += 32)
			qsh[wq][j] = __bfloat162float(qrow[j]) * scale;
	}
	for (int t0 = 0; t0 < nkv; t0 += FB_TILE) {
		__syncthreads(); /* previous tile fully consumed (and qsh written) */
		for (int idx = threadIdx.x; idx < FB_TILE * d; idx += blockDim.x) {
			int r = idx / d, c = idx % d, key = t0 + r;
			bf16 z = __float2bfloat16(0.0f);

			ks[r][c] = key < nkv ? kbase[(int64_t)key * kvs + c] : z;
			vsh[r][c] = key < nkv ? vbase[(int64_t)key * kvs + c] : z;
		}
		__syncthreads();
		if (active) {
			int key = t0 + lane;
			float s = -INFINITY, mt, p, corr;

			if (key < nkv) {
				s = 0.0f;
				for (int c = 0; c < d; c += 2) {
					float2 kv2 = __bfloat1622float2(*(const __nv_bfloat162 *)&ks[lane][c]);

					s += qsh[wq][c] * kv2.x + qsh[wq][c + 1] * kv2.y;
				}
			}
			mt = fmaxf(m, warp_max(s));
			p = key < nkv ? __expf(s - mt) : 0.0f;
			corr = __expf(m - mt);
			lsum = lsum * corr + warp_sum(p);
#pragma unroll
			for (int r = 0; r < 4; r++)
				acc[r] *= corr;
			m = mt;
			for (int jj = 0; jj < FB_TILE; jj++) {
				float pj = __shfl_sync(0xffffffffu, p, jj);

#pragma unroll
				for (int r = 0; r < 4; r++) {
					int c = lane + 32 * r;

					if (c < d)
						acc[r] += pj * __bfloat162float(vsh[jj][c]);
				}
			}
		}
	}
	if (!active)
		return;
	for (int r = 0; r < 4; r++) {
		int c = lane + 32 * r;

		if (c < d)
			o[bb * ob + (int64_t)qi * os + hh * d + c] = __float2bfloat16(lsum > 0.0f ? acc[r] / lsum : 0.0f);
	}
}

extern "C" int wan_attn_fallback(cudaStream_t st, const struct wan_attn_shape *s,
				 const int *kv_len_dev, const void *q, const void *k, const void *v,
				 void *o, char *err, size_t errlen)
{
	dim3 grid((s->sq + FB_WARPS - 1) / FB_WARPS, s->h, s->b);

	if (s->d > 128 || s->d % 2) {
		snprintf(err, errlen, "fallback attention supports even head dims <= 128, got %d", s->d);
		return -1;
	}
	pdl_launch(k_attn_fallback, grid, FB_WARPS * 32, st, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
					      (bf16 *)o, s->h, s->d, s->sq, s->skv, kv_len_dev,
					      s->q_bstride, s->q_sstride, s->kv_bstride, s->kv_sstride,
					      s->o_bstride, s->o_sstride, s->scale);
	LAUNCH_CHECK("k_attn_fallback");
	return 0;
}

/* ---- split-key merge ---- */

/* One warp per (entry b, query, head); lanes own d/32 channels. */
__global__ void k_attn_combine(const bf16 *opart, const float *stats, bf16 *o, int b, int split,
			       int h, int d, int sq, int64_t ob, int64_t os)
{
	pdl_wait();
	pdl_trigger();
	int64_t w = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
	int lane = threadIdx.x & 31;
	int hh = (int)(w % h), qi = (int)((w / h) % sq), bb = (int)(w / ((int64_t)h * sq));
	float lse[4], mx = -INFINITY, wsum = 0.0f;

	if (bb >= b)
		return;
	for (int j = 0; j < split; j++) {
		lse[j] = stats[((int64_t)(bb * split + j) * h + hh) * sq + qi];
		mx = fmaxf(mx, lse[j]);
	}
	for (int j = 0; j < split; j++) {
		lse[j] = __expf(lse[j] - mx);
		wsum += lse[j];
	}
	for (int c = lane; c < d; c += 32) {
		float acc = 0.0f;

		for (int j = 0; j < split; j++)
			acc += lse[j] * __bfloat162float(opart[(((int64_t)(bb * split + j) * sq + qi) * h + hh) * d + c]);
		o[bb * ob + (int64_t)qi * os + hh * d + c] = __float2bfloat16(acc / wsum);
	}
}

extern "C" int wan_attn_combine(cudaStream_t st, const void *opart, const float *stats, void *o,
				int b, int split, int h, int d, int sq, int64_t o_bstride,
				int64_t o_sstride, char *err, size_t errlen)
{
	int64_t warps = (int64_t)b * sq * h;

	if (split < 1 || split > 4) {
		snprintf(err, errlen, "attention split %d outside 1..4", split);
		return -1;
	}
	pdl_launch(k_attn_combine, (unsigned)((warps + 7) / 8), 256, st, (const bf16 *)opart, stats, (bf16 *)o, b,
								  split, h, d, sq, o_bstride, o_sstride);
	LAUNCH_CHECK("k_attn_combine");
	return 0;
}

/* ---- a stream's x0 in double (see kernels.h) ---- */

struct sigma8 {
	double s[8];
};

__global__ void k_flow_to_x0_f64(const float *x_in, const float *flow, float *x0, struct sigma8 sg,
				 int b, size_t per)
{
	size_t total = (size_t)b * per;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x) {
		double s = sg.s[i / per];

		x0[i] = __double2float_rn(__dsub_rn((double)x_in[i], __dmul_rn(s, (double)flow[i])));
	}
}

extern "C" int wan_k_flow_to_x0_f64(cudaStream_t st, const float *x_in, const float *flow, float *x0,
				    const double *sigma, int b, size_t per, char *err, size_t errlen)
{
	struct sigma8 sg;

	if (b < 1 || b > 8) {
		snprintf(err, errlen, "x0 of %d slots (at most 8)", b);
		return -1;
	}
	for (int i = 0; i < 8; i++)
		sg.s[i] = i < b ? sigma[i] : 0.0;
	k_flow_to_x0_f64<<<grid_for((size_t)b * per), 256, 0, st>>>(x_in, flow, x0, sg, b, per);
	LAUNCH_CHECK("k_flow_to_x0_f64");
	return 0;
}
