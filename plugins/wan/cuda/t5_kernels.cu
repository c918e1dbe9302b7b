/* t5_kernels.cu: the elementwise and normalization kernels of the CUDA umT5 encoder (one
 * launcher per kernel; the GEMMs are cuBLASLt/cuBLAS, see t5_cuda.c). fp32 statistics, bf16
 * storage for GEMM operands, an fp32 residual stream. */
#include <stdint.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "plugins/wan/cuda/cuda_check.h"
#include "plugins/wan/cuda/t5_kernels.h"

typedef __nv_bfloat16 bf16;

struct op_sum {
	__device__ float operator()(float a, float b) const { return a + b; }
};
struct op_max {
	__device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

/* Reduces v over the block with OP, whose identity is IDENT (blockDim.x a multiple of 32,
 * <= 1024); every thread gets the result. */
template <typename Op> __device__ float block_reduce(float v, float *sh, float ident)
{
	Op op;
	for (int o = 16; o > 0; o >>= 1)
		v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
	int w = threadIdx.x >> 5, l = threadIdx.x & 31;
	__syncthreads();
	if (l == 0)
		sh[w] = v;
	__syncthreads();
	int nw = blockDim.x >> 5;
	v = l < nw ? sh[l] : ident;
	if (w == 0)
		for (int o = 16; o > 0; o >>= 1)
			v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
	if (threadIdx.x == 0)
		sh[0] = v;
	__syncthreads();
	v = sh[0];
	__syncthreads();
	return v;
}

__device__ float block_sum(float v, float *sh)
{
	return block_reduce<op_sum>(v, sh, 0.f);
}

__device__ float block_max(float v, float *sh)
{
	return block_reduce<op_max>(v, sh, -3.4e38f);
}

__global__ void k_embed(const int *ids, const bf16 *table, float *x, int d)
{
	const bf16 *row = table + (size_t)ids[blockIdx.x] * d;
	float *xr = x + (size_t)blockIdx.x * d;
	for (int i = threadIdx.x; i < d; i += blockDim.x)
		xr[i] = __bfloat162float(row[i]);
}

extern "C" int t5_k_embed(cudaStream_t st, const int *ids, const void *table, float *x, int rows, int d,
			  char *err, size_t errlen)
{
	k_embed<<<rows, 256, 0, st>>>(ids, (const bf16 *)table, x, d);
	CU_LAUNCH_RET("t5_k_embed");
	return 0;
}

/* x += y (when y); out = x·rsqrt(mean(x²)+eps)·g, as bf16 (out_bf16) or f32 (out_f32). */
__global__ void k_add_rms(float *x, const bf16 *y, const float *g, bf16 *out_bf16, float *out_f32, int d, float eps)
{
	__shared__ float sh[32];
	float *xr = x + (size_t)blockIdx.x * d;
	const bf16 *yr = y ? y + (size_t)blockIdx.x * d : NULL;
	float ss = 0.f;
	for (int i = threadIdx.x; i < d; i += blockDim.x) {
		float v = xr[i];
		if (yr) {
			v += __bfloat162float(yr[i]);
			xr[i] = v;
		}
		ss += v * v;
	}
	ss = block_sum(ss, sh);
	float inv = rsqrtf(ss / (float)d + eps);
	for (int i = threadIdx.x; i < d; i += blockDim.x) {
		float v = g[i] * (xr[i] * inv);
		if (out_bf16)
			out_bf16[(size_t)blockIdx.x * d + i] = __float2bfloat16(v);
		else
			out_f32[(size_t)blockIdx.x * d + i] = v;
	}
}

extern "C" int t5_k_add_rmsnorm(cudaStream_t st, float *x, const void *y, const float *g, void *out_bf16,
				float *out_f32, int rows, int d, float eps, char *err, size_t errlen)
{
	k_add_rms<<<rows, 512, 0, st>>>(x, (const bf16 *)y, g, (bf16 *)out_bf16, out_f32, d, eps);
	CU_LAUNCH_RET("t5_k_add_rmsnorm");
	return 0;
}

/* One block per (query row i, head h): p = softmax(s + bias[bucket(j - i)][h]) over the
 * unmasked keys j < nk (keymask[j] != 0), written as bf16; masked keys get exactly 0. */
__global__ void k_softmax_bias(const float *s, bf16 *p, const float *pos, const int *bucket, const int *keymask,
			       int rows, int nk, int ld, int heads, int len)
{
	__shared__ float sh[32];
	int i = blockIdx.x, h = blockIdx.y;
	const float *sr = s + ((size_t)h * rows + i) * ld;
	bf16 *pr = p + ((size_t)h * rows + i) * ld;
	float mx = -3.4e38f;
	for (int j = threadIdx.x; j < nk; j += blockDim.x)
		if (keymask[j])
			mx = fmaxf(mx, sr[j] + pos[bucket[j - i + len - 1] * heads + h]);
	mx = block_max(mx, sh);
	float sum = 0.f;
	for (int j = threadIdx.x; j < nk; j += blockDim.x)
		if (keymask[j])
			sum += __expf(sr[j] + pos[bucket[j - i + len - 1] * heads + h] - mx);
	sum = block_sum(sum, sh);
	float inv = 1.f / sum;
	for (int j = threadIdx.x; j < ld; j += blockDim.x) {
		float v = 0.f;
		if (j < nk && keymask[j])
			v = __expf(sr[j] + pos[bucket[j - i + len - 1] * heads + h] - mx) * inv;
		pr[j] = __float2bfloat16(v);
	}
}

extern "C" int t5_k_softmax_bias(cudaStream_t st, const float *s, void *p, const float *pos, const int *bucket,
				 const int *keymask, int rows, int nk, int ld, int heads, int len, char *err,
				 size_t errlen)
{
	dim3 grid(rows, heads);
	k_softmax_bias<<<grid, 128, 0, st>>>(s, (bf16 *)p, pos, bucket, keymask, rows, nk, ld, heads, len);
	CU_LAUNCH_RET("t5_k_softmax_bias");
	return 0;
}

/* gf bf16 [rows, 2F] = (gate | fc1) -> a bf16 [rows, F] = fc1 · gelu_tanh(gate). */
__global__ void k_geglu(const bf16 *gf, bf16 *a, size_t total, int f)
{
	size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (idx >= total)
		return;
	size_t r = idx / f, c = idx % f;
	float g = __bfloat162float(gf[r * 2 * f + c]);
	float u = __bfloat162float(gf[r * 2 * f + f + c]);
	float ge = 0.5f * g * (1.f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
	a[idx] = __float2bfloat16(u * ge);
}

extern "C" int t5_k_geglu(cudaStream_t st, const void *gf, void *a, int rows, int f, char *err, size_t errlen)
{
	size_t total = (size_t)rows * f;
	k_geglu<<<(unsigned)((total + 255) / 256), 256, 0, st>>>((const bf16 *)gf, (bf16 *)a, total, f);
	CU_LAUNCH_RET("t5_k_geglu");
	return 0;
}
