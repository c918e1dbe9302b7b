/* vae_kernels.cu: fused elementwise kernels of the CUDA Wan VAE (see vae_kernels.h). */
#include <cuda_bf16.h>
#include <math.h>

#include "plugins/wan/cuda/cuda_check.h"
#include "plugins/wan/cuda/vae_kernels.h"

typedef __nv_bfloat16 bf16;

static unsigned blocks_for(int64_t n, int threads)
{
	int64_t b = (n + threads - 1) / threads;
	return (unsigned)(b > 2147483647 ? 2147483647 : b);
}

#define LAUNCH_RET(what) CU_LAUNCH_RET(what)

__global__ void k_frames_in(const float *src, bf16 *dst, int t, int hw)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, n = (int64_t)t * hw;
	if (i >= n)
		return;
	int64_t f = i / hw, p = i % hw;
	for (int c = 0; c < 3; c++)
		dst[i * 3 + c] = __float2bfloat16(src[(f * 3 + c) * hw + p]);
}

extern "C" int vae_k_frames_in(cudaStream_t st, const float *src, void *dst, int t, int h, int w,
			       char *err, size_t errlen)
{
	int64_t n = (int64_t)t * h * w;
	k_frames_in<<<blocks_for(n, 256), 256, 0, st>>>(src, (bf16 *)dst, t, h * w);
	LAUNCH_RET("vae_k_frames_in");
	return 0;
}

__global__ void k_latent_in(const float *src, bf16 *dst, int z, int hw, const float *mean,
			    const float *std)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= (int64_t)z * hw)
		return;
	int p = (int)(i / z), c = (int)(i % z);
	dst[i] = __float2bfloat16(src[(int64_t)c * hw + p] * std[c] + mean[c]);
}

extern "C" int vae_k_latent_in(cudaStream_t st, const float *src, void *dst, int z, int h, int w,
			       const float *mean, const float *std, char *err, size_t errlen)
{
	int64_t n = (int64_t)z * h * w;
	k_latent_in<<<blocks_for(n, 256), 256, 0, st>>>(src, (bf16 *)dst, z, h * w, mean, std);
	LAUNCH_RET("vae_k_latent_in");
	return 0;
}

__global__ void k_latent_out(const bf16 *src, int ld, float *dst, int z, int hw)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= (int64_t)z * hw)
		return;
	int c = (int)(i / hw), p = (int)(i % hw);
	dst[i] = __bfloat162float(src[(int64_t)p * ld + c]);
}

extern "C" int vae_k_latent_out(cudaStream_t st, const void *src, int ld, float *dst, int z,
				int hw, char *err, size_t errlen)
{
	k_latent_out<<<blocks_for((int64_t)z * hw, 256), 256, 0, st>>>((const bf16 *)src, ld, dst, z, hw);
	LAUNCH_RET("vae_k_latent_out");
	return 0;
}

__global__ void k_frames_out(const bf16 *src, const float *bias, float *dst, int t, int hw)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, n = (int64_t)t * hw;
	if (i >= n)
		return;
	int64_t f = i / hw, p = i % hw;
	for (int c = 0; c < 3; c++) {
		float v = __bfloat162float(src[i * 3 + c]) + bias[c];
		dst[(f * 3 + c) * hw + p] = fminf(1.0f, fmaxf(-1.0f, v));
	}
}

extern "C" int vae_k_frames_out(cudaStream_t st, const void *src, const float *bias, float *dst,
				int t, int h, int w, char *err, size_t errlen)
{
	int64_t n = (int64_t)t * h * w;
	k_frames_out<<<blocks_for(n, 256), 256, 0, st>>>((const bf16 *)src, bias, dst, t, h * w);
	LAUNCH_RET("vae_k_frames_out");
	return 0;
}

/* One warp per pixel; each lane holds up to 16 channels (C <= 512) in registers. */
#define RMS_MAXV 16
__global__ void k_rms(const bf16 *src, const float *bias, const float *gamma, bf16 *dst,
		      int64_t p, int c, int silu)
{
	int64_t pix = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
	int lane = threadIdx.x % 32;
	if (pix >= p)
		return;
	const bf16 *x = src + pix * c;
	float v[RMS_MAXV];
	float ss = 0.0f;
#pragma unroll
	for (int k = 0; k < RMS_MAXV; k++) {
		int ch = lane + 32 * k;
		v[k] = 0.0f;
		if (ch < c) {
			v[k] = __bfloat162float(x[ch]) + (bias ? bias[ch] : 0.0f);
			ss += v[k] * v[k];
		}
	}
	for (int o = 16; o > 0; o >>= 1)
		ss += __shfl_xor_sync(0xffffffffu, ss, o);
	float inv = sqrtf((float)c) / fmaxf(sqrtf(ss), 1e-12f);
	bf16 *y = dst + pix * c;
#pragma unroll
	for (int k = 0; k < RMS_MAXV; k++) {
		int ch = lane + 32 * k;
		if (ch < c) {
			float r = v[k] * inv * gamma[ch];
			if (silu)
				r = r / (1.0f + __expf(-r));
			y[ch] = __float2bfloat16(r);
		}
	}
}

extern "C" int vae_k_rms(cudaStream_t st, const void *src, const float *bias, const float *gamma,
			 void *dst, int64_t p, int c, int silu, char *err, size_t errlen)
{
	if (c > 32 * RMS_MAXV)
		return wan_cuda_fail(err, errlen, __FILE__, __LINE__, "vae_k_rms", "too many channels");
	k_rms<<<blocks_for(p, 8), 256, 0, st>>>((const bf16 *)src, bias, gamma, (bf16 *)dst, p, c, silu);
	LAUNCH_RET("vae_k_rms");
	return 0;
}

__global__ void k_bias_res(const bf16 *src, const float *bias, const bf16 *res, bf16 *dst, int t,
			   int h, int w, int c, int dh, int dw)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	int64_t n = (int64_t)t * h * w * c;
	if (i >= n)
		return;
	int ch = (int)(i % c);
	int64_t pix = i / c;
	int x = (int)(pix % w), y = (int)((pix / w) % h), f = (int)(pix / ((int64_t)w * h));
	float v = __bfloat162float(src[i]) + (bias ? bias[ch] : 0.0f);
	if (res)
		v += __bfloat162float(res[i]);
	dst[(((int64_t)f * dh + y) * dw + x) * c + ch] = __float2bfloat16(v);
}

extern "C" int vae_k_bias_res(cudaStream_t st, const void *src, const float *bias, const void *res,
			      void *dst, int t, int h, int w, int c, int dst_h, int dst_w, char *err,
			      size_t errlen)
{
	int64_t n = (int64_t)t * h * w * c;
	k_bias_res<<<blocks_for(n, 256), 256, 0, st>>>((const bf16 *)src, bias, (const bf16 *)res,
						       (bf16 *)dst, t, h, w, c, dst_h, dst_w);
	LAUNCH_RET("vae_k_bias_res");
	return 0;
}

__global__ void k_upsample(const bf16 *src, const float *bias, bf16 *dst, int t2, int h, int w,
			   int c, int interleave)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	int64_t n = (int64_t)t2 * 4 * h * w * c;
	if (i >= n)
		return;
	int ch = (int)(i % c);
	int64_t pix = i / c;
	int x = (int)(pix % (2 * w)), y = (int)((pix / (2 * w)) % (2 * h));
	int f = (int)(pix / ((int64_t)4 * w * h));
	int sf = interleave ? f / 2 : f, sc = interleave ? (f % 2) * c + ch : ch;
	int cs = interleave ? 2 * c : c;
	float v = __bfloat162float(src[(((int64_t)sf * h + y / 2) * w + x / 2) * cs + sc]);
	if (bias)
		v += bias[sc];
	dst[i] = __float2bfloat16(v);
}

extern "C" int vae_k_upsample(cudaStream_t st, const void *src, const float *bias, void *dst,
			      int t, int h, int w, int c, int interleave, char *err, size_t errlen)
{
	int t2 = interleave ? 2 * t : t;
	int64_t n = (int64_t)t2 * 4 * h * w * c;
	k_upsample<<<blocks_for(n, 256), 256, 0, st>>>((const bf16 *)src, bias, (bf16 *)dst, t2, h, w,
						       c, interleave);
	LAUNCH_RET("vae_k_upsample");
	return 0;
}

__global__ void k_softmax(bf16 *s, int n, float scale)
{
	bf16 *row = s + (int64_t)blockIdx.x * n;
	__shared__ float red[32];
	float mx = -INFINITY;
	for (int j = threadIdx.x; j < n; j += blockDim.x)
		mx = fmaxf(mx, __bfloat162float(row[j]) * scale);
	for (int o = 16; o > 0; o >>= 1)
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
	if (threadIdx.x % 32 == 0)
		red[threadIdx.x / 32] = mx;
	__syncthreads();
	if (threadIdx.x < 32) {
		float m = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : -INFINITY;
		for (int o = 16; o > 0; o >>= 1)
			m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
		if (threadIdx.x == 0)
			red[0] = m;
	}
	__syncthreads();
	mx = red[0];
	__syncthreads();
	float sum = 0.0f;
	for (int j = threadIdx.x; j < n; j += blockDim.x)
		sum += __expf(__bfloat162float(row[j]) * scale - mx);
	for (int o = 16; o > 0; o >>= 1)
		sum += __shfl_xor_sync(0xffffffffu, sum, o);
	if (threadIdx.x % 32 == 0)
		red[threadIdx.x / 32] = sum;
	__syncthreads();
	if (threadIdx.x < 32) {
		float m = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0.0f;
		for (int o = 16; o > 0; o >>= 1)
			m += __shfl_xor_sync(0xffffffffu, m, o);
		if (threadIdx.x == 0)
			red[0] = m;
	}
	__syncthreads();
	float inv = 1.0f / red[0];
	for (int j = threadIdx.x; j < n; j += blockDim.x)
		row[j] = __float2bfloat16(__expf(__bfloat162float(row[j]) * scale - mx) * inv);
}

extern "C" int vae_k_softmax(cudaStream_t st, void *s, int rows, int n, float scale, char *err,
			     size_t errlen)
{
	k_softmax<<<rows, 256, 0, st>>>((bf16 *)s, n, scale);
	LAUNCH_RET("vae_k_softmax");
	return 0;
}

__global__ void k_transpose(const bf16 *src, int ld, bf16 *dst, int n, int c)
{
	__shared__ bf16 tile[32][33];
	int x = blockIdx.x * 32 + threadIdx.x, y = blockIdx.y * 32 + threadIdx.y;
	for (int k = 0; k < 32; k += 8)
		if (x < c && y + k < n)
			tile[threadIdx.y + k][threadIdx.x] = src[(int64_t)(y + k) * ld + x];
	__syncthreads();
	x = blockIdx.y * 32 + threadIdx.x;
	y = blockIdx.x * 32 + threadIdx.y;
	for (int k = 0; k < 32; k += 8)
		if (x < n && y + k < c)
			dst[(int64_t)(y + k) * n + x] = tile[threadIdx.x][threadIdx.y + k];
}

extern "C" int vae_k_transpose(cudaStream_t st, const void *src, int ld, void *dst, int n, int c,
			       char *err, size_t errlen)
{
	dim3 grid((c + 31) / 32, (n + 31) / 32), block(32, 8);
	k_transpose<<<grid, block, 0, st>>>((const bf16 *)src, ld, (bf16 *)dst, n, c);
	LAUNCH_RET("vae_k_transpose");
	return 0;
}

__global__ void k_add(bf16 *dst, const bf16 *src, int64_t n)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i < n)
		dst[i] = __float2bfloat16(__bfloat162float(dst[i]) + __bfloat162float(src[i]));
}

extern "C" int vae_k_add(cudaStream_t st, void *dst, const void *src, int64_t n, char *err,
			 size_t errlen)
{
	k_add<<<blocks_for(n, 256), 256, 0, st>>>((bf16 *)dst, (const bf16 *)src, n);
	LAUNCH_RET("vae_k_add");
	return 0;
}

__global__ void k_taehv_in(const float *src, bf16 *dst, int z, int hw, int64_t n)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	int c = (int)(i % z);
	int64_t pix = i / z, f = pix / hw, p = pix % hw;
	dst[i] = __float2bfloat16(tanhf(src[(f * z + c) * hw + p] / 3.0f) * 3.0f);
}

extern "C" int vae_k_taehv_in(cudaStream_t st, const float *src, void *dst, int f, int h, int w,
			      char *err, size_t errlen)
{
	int64_t n = (int64_t)f * h * w * 16;
	k_taehv_in<<<blocks_for(n, 256), 256, 0, st>>>(src, (bf16 *)dst, 16, h * w, n);
	LAUNCH_RET("vae_k_taehv_in");
	return 0;
}

__global__ void k_taehv_out(const bf16 *src, const float *bias, float *dst, int t, int hw)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, n = (int64_t)t * hw;
	if (i >= n)
		return;
	int64_t f = i / hw, p = i % hw;
	for (int c = 0; c < 3; c++) {
		float v = (__bfloat162float(src[i * 3 + c]) + bias[c]) * 2.0f - 1.0f;
		dst[(f * 3 + c) * hw + p] = fminf(1.0f, fmaxf(-1.0f, v));
	}
}

extern "C" int vae_k_taehv_out(cudaStream_t st, const void *src, const float *bias, float *dst,
			       int t, int h, int w, char *err, size_t errlen)
{
	int64_t n = (int64_t)t * h * w;
	k_taehv_out<<<blocks_for(n, 256), 256, 0, st>>>((const bf16 *)src, bias, dst, t, h * w);
	LAUNCH_RET("vae_k_taehv_out");
	return 0;
}

__global__ void k_memcat(const bf16 *x, const bf16 *mem, bf16 *dst, int f, int64_t p, int c)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, n = (int64_t)f * p * 2 * c;
	if (i >= n)
		return;
	int ch = (int)(i % (2 * c));
	int64_t pix = i / (2 * c), fr = pix / p, q = pix % p;
	bf16 v;
	if (ch < c)
		v = x[pix * c + ch];
	else if (fr == 0)
		v = mem[q * c + ch - c];
	else
		v = x[(pix - p) * c + ch - c];
	dst[i] = v;
}

extern "C" int vae_k_memcat(cudaStream_t st, const void *x, const void *mem, void *dst, int f,
			    int64_t p, int c, char *err, size_t errlen)
{
	int64_t n = (int64_t)f * p * 2 * c;
	k_memcat<<<blocks_for(n, 256), 256, 0, st>>>((const bf16 *)x, (const bf16 *)mem, (bf16 *)dst, f,
						     p, c);
	LAUNCH_RET("vae_k_memcat");
	return 0;
}

__global__ void k_bias_act(const bf16 *src, const float *bias, const bf16 *res, bf16 *dst,
			   int64_t n, int c, int relu)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	float v = __bfloat162float(src[i]);
	if (bias)
		v += bias[i % c];
	if (res)
		v += __bfloat162float(res[i]);
	if (relu)
		v = fmaxf(v, 0.0f);
	dst[i] = __float2bfloat16(v);
}

extern "C" int vae_k_bias_act(cudaStream_t st, const void *src, const float *bias, const void *res,
			      void *dst, int64_t n, int c, int relu, char *err, size_t errlen)
{
	k_bias_act<<<blocks_for(n, 256), 256, 0, st>>>((const bf16 *)src, bias, (const bf16 *)res,
						       (bf16 *)dst, n, c, relu);
	LAUNCH_RET("vae_k_bias_act");
	return 0;
}
