/* row8.cuh: the per-row device helpers of the DiT's row kernels, shared by kernels.cu and
 * sink_kernels.cu so that both round exactly alike (the adaptive-sink statistics must see
 * bitwise the K rows that k_qkv_rope_cache8r and k_qkv_rope_cache_w store).
 *
 * A thread owns 8 consecutive channels of a row (one 16-byte access); sums over a row are a
 * warp tree, then the warps' partials in a second tree (a block per row), or the same trees
 * inside one warp (warp_row_sum: a warp per row). */
#ifndef WAN_CUDA_ROW8_CUH
#define WAN_CUDA_ROW8_CUH

#include <cuda_bf16.h>
#include <stdint.h>

static __device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* 8 bf16 (one 16-byte access) <-> 8 floats */
static __device__ __forceinline__ void bf16x8_to_f(uint4 raw, float *f)
{
	const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&raw);

#pragma unroll
	for (int j = 0; j < 4; j++) {
		float2 v = __bfloat1622float2(h[j]);

		f[2 * j] = v.x;
		f[2 * j + 1] = v.y;
	}
}

static __device__ __forceinline__ uint4 f_to_bf16x8(const float *f)
{
	uint4 r;
	__nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&r);

#pragma unroll
	for (int j = 0; j < 4; j++)
		h[j] = __floats2bfloat162_rn(f[2 * j], f[2 * j + 1]);
	return r;
}

/* 8 floats (two 16-byte accesses, P 16-byte aligned) into registers and back; CS: the
 * evict-first (streaming) variants, for data read or written once. */
static __device__ __forceinline__ void f8_load(const float *p, float *o, int cs = 0)
{
	const float4 *q = reinterpret_cast<const float4 *>(p);
	float4 a = cs ? __ldcs(q) : q[0], b = cs ? __ldcs(q + 1) : q[1];

	o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w;
	o[4] = b.x; o[5] = b.y; o[6] = b.z; o[7] = b.w;
}

static __device__ __forceinline__ void f8_store(float *p, const float *v, int cs)
{
	float4 *q = reinterpret_cast<float4 *>(p);
	float4 a = make_float4(v[0], v[1], v[2], v[3]), b = make_float4(v[4], v[5], v[6], v[7]);

	if (cs) {
		__stcs(q, a);
		__stcs(q + 1, b);
	} else {
		q[0] = a;
		q[1] = b;
	}
}

/* v += y for the 8 bf16 of RAW, each y times G's when GATED (a gated branch). */
static __device__ __forceinline__ void add_bf16x8(float *v, uint4 raw, const float *g = nullptr,
						  bool gated = false)
{
	float y[8];

	bf16x8_to_f(raw, y);
	if (gated) {
#pragma unroll
		for (int j = 0; j < 8; j++)
			y[j] *= g[j];
	}
#pragma unroll
	for (int j = 0; j < 8; j++)
		v[j] += y[j];
}

/* R sums per thread reduced over the block at once (blockDim.x a multiple of 32): per value
 * a warp tree, then the warps' partials in a second tree, one pair of barriers for all R.
 * sh holds R x 32 floats. */
template <int R>
static __device__ __forceinline__ void block_sum_rows(float *s, float (*sh)[32])
{
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;

#pragma unroll
	for (int r = 0; r < R; r++)
		s[r] = warp_sum(s[r]);
	__syncthreads();
	if (lane == 0) {
#pragma unroll
		for (int r = 0; r < R; r++)
			sh[r][wid] = s[r];
	}
	__syncthreads();
#pragma unroll
	for (int r = 0; r < R; r++)
		s[r] = warp_sum(lane < nw ? sh[r][lane] : 0.0f);
}

/* Sum of squares of 8 channels (a thread's share of a q or k row's RMS). */
static __device__ __forceinline__ float sq8(uint4 raw)
{
	float f[8], s = 0.0f;

	bf16x8_to_f(raw, f);
#pragma unroll
	for (int j = 0; j < 8; j++)
		s += f[j] * f[j];
	return s;
}

/* RMSNorm·g (r = 1/RMS) and RoPE (table entry cs) of pair j of 8 channels f. */
static __device__ __forceinline__ void norm_rope_pair(float *f, int j, float r, const float *g,
						      float2 cs)
{
	float k0 = f[2 * j] * r * g[2 * j], k1 = f[2 * j + 1] * r * g[2 * j + 1];

	f[2 * j] = k0 * cs.x - k1 * cs.y;
	f[2 * j + 1] = k0 * cs.y + k1 * cs.x;
}

/* RMSNorm·g and 3-D RoPE of 8 channels (pairs pj0..pj0+3 of a head; half = head dim / 2, the
 * first ct pairs rotate by the frame position, the next ch by the row, the rest by the
 * column) of a row whose sum of squares over its d channels is sum; rounded to bf16. */
static __device__ __forceinline__ uint4 norm_rope8(uint4 raw, float sum, const float *g, int d,
						   float eps, int pj0, int half, int ct, int ch,
						   const float2 *rope, int pos_t, int pos_y, int pos_x)
{
	float f[8], r = rsqrtf(sum / d + eps);

	bf16x8_to_f(raw, f);
#pragma unroll
	for (int j = 0; j < 4; j++) {
		int pj = pj0 + j, pos = pj < ct ? pos_t : (pj < ct + ch ? pos_y : pos_x);

		norm_rope_pair(f, j, r, g, rope[(size_t)pos * half + pj]);
	}
	return f_to_bf16x8(f);
}

/* The table entries of norm_rope8's 8 channels, looked up once for q and k (norm_rope8_cs). */
static __device__ __forceinline__ void rope_cs4(float2 *cs, const float2 *rope, int pj0, int half,
						int ct, int ch, int pos_t, int pos_y, int pos_x)
{
#pragma unroll
	for (int j = 0; j < 4; j++) {
		int pj = pj0 + j, pos = pj < ct ? pos_t : (pj < ct + ch ? pos_y : pos_x);

		cs[j] = rope[(size_t)pos * half + pj];
	}
}

/* norm_rope8 with the table entries given (rope_cs4): the same arithmetic. */
static __device__ __forceinline__ uint4 norm_rope8_cs(uint4 raw, float sum, const float *g, int d,
						      float eps, const float2 *cs)
{
	float f[8], r = rsqrtf(sum / d + eps);

	bf16x8_to_f(raw, f);
#pragma unroll
	for (int j = 0; j < 4; j++)
		norm_rope_pair(f, j, r, g, cs[j]);
	return f_to_bf16x8(f);
}

/* ---- one warp per row ----
 * The block kernels give a row to d/8 threads: thread i owns the 8 channels [8i, 8i+8), lane
 * i % 32 of warp i / 32. The warp kernels give a row to one warp whose lane L owns the chunks
 * L + 32·j, j < NC = d/256: slot j of the warp holds exactly what warp j of a block holds, lane
 * for lane. So the row sum below is bitwise block_sum_rows's: per slot the same butterfly over
 * the same lanes (every lane ends with the same bits: the additions are commutative), then
 * the NC partials in the block's second tree (lane j holds partial j, the other lanes 0). */
template <int NC>
static __device__ __forceinline__ float warp_row_sum(const float *s)
{
	int lane = threadIdx.x & 31;
	float v = 0.0f;

#pragma unroll
	for (int j = 0; j < NC; j++) {
		float w = warp_sum(s[j]);

		if (lane == j)
			v = w;
	}
	return warp_sum(v);
}

#endif
