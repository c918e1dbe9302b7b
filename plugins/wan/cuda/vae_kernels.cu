/* vae_kernels.cu: fused elementwise kernels of the CUDA Wan VAE (see vae_kernels.h).
 * Activation kernels are templates over the 16-bit storage type (bf16 or fp16, the launcher's
 * DT picks one at run time); the fast paths move 8 channels (16 bytes) per thread when the
 * channel count is a multiple of 8 and the pointers are 16-byte aligned, else a scalar path. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "plugins/wan/cuda/cuda_check.h"
#include "plugins/wan/cuda/vae_kernels.h"

typedef __nv_bfloat16 bf16;
typedef __half f16;

static unsigned blocks_for(int64_t n, int threads)
{
	int64_t b = (n + threads - 1) / threads;
	return (unsigned)(b > 2147483647 ? 2147483647 : b);
}

#define LAUNCH_RET(what) CU_LAUNCH_RET(what)

static __device__ __forceinline__ float tf(bf16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ float tf(f16 x) { return __half2float(x); }
template <typename T> static __device__ __forceinline__ T ft(float x);
template <> __device__ __forceinline__ bf16 ft<bf16>(float x) { return __float2bfloat16(x); }
/* fp16 saturates at its largest finite value (NaN stays NaN) */
template <> __device__ __forceinline__ f16 ft<f16>(float x)
{
	return __float2half_rn(x != x ? x : fminf(65504.0f, fmaxf(-65504.0f, x)));
}

/* 8 values of T in 16 bytes */
template <typename T> struct v8 {
	uint4 u;
	__device__ __forceinline__ float get(int k) const { return tf(((const T *)&u)[k]); }
	__device__ __forceinline__ void set(int k, float v) { ((T *)&u)[k] = ft<T>(v); }
};

static int al16(const void *p)
{
	return ((uintptr_t)p & 15) == 0;
}

/* launches KERN<f16> or KERN<bf16> */
#define DT_LAUNCH(dt, kern, grid, block, ...) do { \
	if ((dt) == VAE_DT_F16) \
		kern<f16><<<(grid), (block), 0, st>>>(__VA_ARGS__); \
	else \
		kern<bf16><<<(grid), (block), 0, st>>>(__VA_ARGS__); \
} while (0)

__global__ void k_f32_to(const float *src, void *dst, int64_t n, int dt)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	if (dt == VAE_DT_F16)
		((f16 *)dst)[i] = ft<f16>(src[i]);
	else
		((bf16 *)dst)[i] = ft<bf16>(src[i]);
}

extern "C" int vae_k_f32_to(cudaStream_t st, int dt, const float *src, void *dst, int64_t n,
			    char *err, size_t errlen)
{
	k_f32_to<<<blocks_for(n, 256), 256, 0, st>>>(src, dst, n, dt);
	LAUNCH_RET("vae_k_f32_to");
	return 0;
}

template <typename T> __global__ void k_frames_in(const float *src, void *dv, int t, int hw)
{
	T *dst = (T *)dv;
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, n = (int64_t)t * hw;
	if (i >= n)
		return;
	int64_t f = i / hw, p = i % hw;
	for (int c = 0; c < 3; c++)
		dst[i * 3 + c] = ft<T>(src[(f * 3 + c) * hw + p]);
}

extern "C" int vae_k_frames_in(cudaStream_t st, int dt, const float *src, void *dst, int t, int h,
			       int w, char *err, size_t errlen)
{
	int64_t n = (int64_t)t * h * w;
	DT_LAUNCH(dt, k_frames_in, blocks_for(n, 256), 256, src, dst, t, h * w);
	LAUNCH_RET("vae_k_frames_in");
	return 0;
}

template <typename T> __global__ void k_latent_in(const float *src, void *dv, int z, int hw,
						  const float *mean, const float *std)
{
	T *dst = (T *)dv;
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= (int64_t)z * hw)
		return;
	int p = (int)(i / z), c = (int)(i % z);
	dst[i] = ft<T>(src[(int64_t)c * hw + p] * std[c] + mean[c]);
}

extern "C" int vae_k_latent_in(cudaStream_t st, int dt, const float *src, void *dst, int z, int h,
			       int w, const float *mean, const float *std, char *err, size_t errlen)
{
	int64_t n = (int64_t)z * h * w;
	DT_LAUNCH(dt, k_latent_in, blocks_for(n, 256), 256, src, dst, z, h * w, mean, std);
	LAUNCH_RET("vae_k_latent_in");
	return 0;
}

template <typename T> __global__ void k_latent_out(const void *sv, int ld, float *dst, int z, int hw)
{
	const T *src = (const T *)sv;
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= (int64_t)z * hw)
		return;
	int c = (int)(i / hw), p = (int)(i % hw);
	dst[i] = tf(src[(int64_t)p * ld + c]);
}

extern "C" int vae_k_latent_out(cudaStream_t st, int dt, const void *src, int ld, float *dst,
				int z, int hw, char *err, size_t errlen)
{
	DT_LAUNCH(dt, k_latent_out, blocks_for((int64_t)z * hw, 256), 256, src, ld, dst, z, hw);
	LAUNCH_RET("vae_k_latent_out");
	return 0;
}

template <typename T> __global__ void k_frames_out(const void *sv, const float *bias, float *dst,
						   int t, int hw)
{
	const T *src = (const T *)sv;
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, n = (int64_t)t * hw;
	if (i >= n)
		return;
	int64_t f = i / hw, p = i % hw;
	for (int c = 0; c < 3; c++) {
		float v = tf(src[i * 3 + c]) + bias[c];
		dst[(f * 3 + c) * hw + p] = fminf(1.0f, fmaxf(-1.0f, v));
	}
}

extern "C" int vae_k_frames_out(cudaStream_t st, int dt, const void *src, const float *bias,
				float *dst, int t, int h, int w, char *err, size_t errlen)
{
	int64_t n = (int64_t)t * h * w;
	DT_LAUNCH(dt, k_frames_out, blocks_for(n, 256), 256, src, bias, dst, t, h * w);
	LAUNCH_RET("vae_k_frames_out");
	return 0;
}

/* Scalar RMS: one warp per pixel; each lane holds up to 16 channels (C <= 512). */
#define RMS_MAXV 16
template <typename T> __global__ void k_rms(const void *sv, const float *bias, const float *gamma,
					    void *dv, int64_t p, int c, int silu)
{
	int64_t pix = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
	int lane = threadIdx.x % 32;
	if (pix >= p)
		return;
	const T *x = (const T *)sv + pix * c;
	float v[RMS_MAXV];
	float ss = 0.0f;
#pragma unroll
	for (int k = 0; k < RMS_MAXV; k++) {
		int ch = lane + 32 * k;
		v[k] = 0.0f;
		if (ch < c) {
			v[k] = tf(x[ch]) + (bias ? bias[ch] : 0.0f);
			ss += v[k] * v[k];
		}
	}
	for (int o = 16; o > 0; o >>= 1)
		ss += __shfl_xor_sync(0xffffffffu, ss, o);
	float inv = sqrtf((float)c) / fmaxf(sqrtf(ss), 1e-12f);
	T *y = (T *)dv + pix * c;
#pragma unroll
	for (int k = 0; k < RMS_MAXV; k++) {
		int ch = lane + 32 * k;
		if (ch < c) {
			float r = v[k] * inv * gamma[ch];
			if (silu)
				r = r / (1.0f + __expf(-r));
			y[ch] = ft<T>(r);
		}
	}
}

/* Vector RMS: a group of G lanes (a power of two) per pixel, each lane up to RMS8_K chunks of 8
 * channels (C <= 8 RMS8_K G, C % 8 == 0). G is the smallest power of two with 8 RMS8_K G >= C,
 * so for C = 96, 192, 384 (12, 24, 48 chunks) every lane of the warp holds 3 chunks: no idle
 * lanes and 3 independent 16-byte loads in flight per thread (the previous mapping of 1-2
 * chunks per lane left a quarter of the lanes idle and reached ~50% of bandwidth). Gamma and
 * bias are read as float4 (the launchers check their alignment). With RV: the input is
 * src + bias + res, stored rounded to SUMV (the residual stream) and normalized from that
 * rounded value (RV may be NULL). */
#define RMS8_K 4
template <typename T> __global__ void __launch_bounds__(256)
k_rms8(const void *sv, const float *bias, const float *gamma, void *dv, int64_t p, int c,
       int silu, int g, const void *rv, void *sumv)
{
	int64_t gid = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / g;
	int lane = threadIdx.x % g, nch = c / 8;
	int64_t pix = gid < p ? gid : p - 1; /* every lane takes part in the shuffles */
	const uint4 *x = (const uint4 *)((const T *)sv + pix * c);
	const uint4 *r = rv ? (const uint4 *)((const T *)rv + pix * c) : NULL;
	const float4 *b4 = (const float4 *)bias, *g4 = (const float4 *)gamma;
	v8<T> in[RMS8_K], rs[RMS8_K];
	/* all loads first (independent, in flight together) */
#pragma unroll
	for (int k = 0; k < RMS8_K; k++) {
		int ck = lane + g * k;
		if (ck < nch) {
			in[k].u = x[ck];
			if (r)
				rs[k].u = r[ck];
		}
	}
	float v[RMS8_K][8];
	float ss = 0.0f;
#pragma unroll
	for (int k = 0; k < RMS8_K; k++) {
		int ck = lane + g * k;
		if (ck < nch) {
			float bb[8];
			if (bias) {
				float4 b0 = b4[2 * ck], b1 = b4[2 * ck + 1];
				bb[0] = b0.x; bb[1] = b0.y; bb[2] = b0.z; bb[3] = b0.w;
				bb[4] = b1.x; bb[5] = b1.y; bb[6] = b1.z; bb[7] = b1.w;
			} else {
#pragma unroll
				for (int j = 0; j < 8; j++)
					bb[j] = 0.0f;
			}
			if (sumv) {
#pragma unroll
				for (int j = 0; j < 8; j++)
					in[k].set(j, in[k].get(j) + bb[j] + (r ? rs[k].get(j) : 0.0f));
				if (gid < p)
					((uint4 *)((T *)sumv + pix * c))[ck] = in[k].u;
			}
#pragma unroll
			for (int j = 0; j < 8; j++) {
				v[k][j] = in[k].get(j) + (sumv ? 0.0f : bb[j]);
				ss += v[k][j] * v[k][j];
			}
		}
	}
	for (int o = g / 2; o > 0; o >>= 1)
		ss += __shfl_xor_sync(0xffffffffu, ss, o);
	if (gid >= p)
		return;
	float inv = sqrtf((float)c) / fmaxf(sqrtf(ss), 1e-12f);
	uint4 *y = (uint4 *)((T *)dv + pix * c);
#pragma unroll
	for (int k = 0; k < RMS8_K; k++) {
		int ck = lane + g * k;
		if (ck < nch) {
			float4 g0 = g4[2 * ck], g1 = g4[2 * ck + 1];
			float gg[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
			v8<T> out;
#pragma unroll
			for (int j = 0; j < 8; j++) {
				float o = v[k][j] * inv * gg[j];
				if (silu)
					o = __fdividef(o, 1.0f + __expf(-o));
				out.set(j, o);
			}
			y[ck] = out.u;
		}
	}
}

/* lanes per pixel of k_rms8 */
static int rms8_group(int c)
{
	int g = 1;
	while (g < 32 && 8 * RMS8_K * g < c)
		g *= 2;
	return g;
}

extern "C" int vae_k_rms(cudaStream_t st, int dt, const void *src, const float *bias,
			 const float *gamma, void *dst, int64_t p, int c, int silu, char *err,
			 size_t errlen)
{
	if (c > 32 * RMS_MAXV)
		return wan_cuda_fail(err, errlen, __FILE__, __LINE__, "vae_k_rms", "too many channels");
	if (c % 8 == 0 && al16(src) && al16(dst) && al16(gamma) && (!bias || al16(bias)) &&
	    c <= 8 * RMS8_K * 32) {
		int g = rms8_group(c);
		int64_t threads = p * g;
		DT_LAUNCH(dt, k_rms8, blocks_for(threads, 256), 256, src, bias, gamma, dst, p, c, silu, g,
			  (const void *)NULL, (void *)NULL);
	} else {
		DT_LAUNCH(dt, k_rms, blocks_for(p, 8), 256, src, bias, gamma, dst, p, c, silu);
	}
	LAUNCH_RET("vae_k_rms");
	return 0;
}

template <typename T> __global__ void k_bias_res(const void *sv, const float *bias, const void *rv,
						 void *dv, int t, int h, int w, int c, int dh, int dw)
{
	const T *src = (const T *)sv, *res = (const T *)rv;
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	int64_t n = (int64_t)t * h * w * c;
	if (i >= n)
		return;
	int ch = (int)(i % c);
	int64_t pix = i / c;
	int x = (int)(pix % w), y = (int)((pix / w) % h), f = (int)(pix / ((int64_t)w * h));
	float v = tf(src[i]) + (bias ? bias[ch] : 0.0f);
	if (res)
		v += tf(res[i]);
	((T *)dv)[(((int64_t)f * dh + y) * dw + x) * c + ch] = ft<T>(v);
}

/* 8 channels per thread */
template <typename T> __global__ void k_bias_res8(const void *sv, const float *bias,
						  const void *rv, void *dv, int64_t n8, int h, int w,
						  int c, int dh, int dw)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= n8)
		return;
	int c8 = c / 8;
	int ch = (int)(i % c8) * 8;
	v8<T> a, r;
	a.u = ((const uint4 *)sv)[i];
	if (rv)
		r.u = ((const uint4 *)rv)[i];
#pragma unroll
	for (int j = 0; j < 8; j++) {
		float v = a.get(j) + (bias ? bias[ch + j] : 0.0f);
		if (rv)
			v += r.get(j);
		a.set(j, v);
	}
	int64_t o = i;
	if (dh != h || dw != w) {
		int64_t pix = i / c8;
		int x = (int)(pix % w), y = (int)((pix / w) % h);
		int64_t f = pix / ((int64_t)w * h);
		o = ((f * dh + y) * dw + x) * c8 + ch / 8;
	}
	((uint4 *)dv)[o] = a.u;
}

extern "C" int vae_k_rms_res(cudaStream_t st, int dt, const void *src, const float *bias,
			     const void *res, void *sum, const float *gamma, void *dst, int64_t p,
			     int c, int silu, char *err, size_t errlen)
{
	if (c % 8 || c > 8 * RMS8_K * 32 || !al16(src) || (res && !al16(res)) || !al16(sum) ||
	    !al16(dst) || !al16(gamma) || (bias && !al16(bias)))
		return wan_cuda_fail(err, errlen, __FILE__, __LINE__, "vae_k_rms_res", "unsupported shape");
	int g = rms8_group(c);
	DT_LAUNCH(dt, k_rms8, blocks_for(p * g, 256), 256, src, bias, gamma, dst, p, c, silu, g, res,
		  sum);
	LAUNCH_RET("vae_k_rms_res");
	return 0;
}

extern "C" int vae_k_bias_res(cudaStream_t st, int dt, const void *src, const float *bias,
			      const void *res, void *dst, int t, int h, int w, int c, int dst_h,
			      int dst_w, char *err, size_t errlen)
{
	int64_t n = (int64_t)t * h * w * c;
	if (c % 8 == 0 && al16(src) && al16(dst) && (!res || al16(res)))
		DT_LAUNCH(dt, k_bias_res8, blocks_for(n / 8, 256), 256, src, bias, res, dst, n / 8, h, w,
			  c, dst_h, dst_w);
	else
		DT_LAUNCH(dt, k_bias_res, blocks_for(n, 256), 256, src, bias, res, dst, t, h, w, c,
			  dst_h, dst_w);
	LAUNCH_RET("vae_k_bias_res");
	return 0;
}

template <typename T> __global__ void k_upsample(const void *sv, const float *bias, void *dv,
						 int t2, int h, int w, int c, int interleave)
{
	const T *src = (const T *)sv;
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
	float v = tf(src[(((int64_t)sf * h + y / 2) * w + x / 2) * cs + sc]);
	if (bias)
		v += bias[sc];
	((T *)dv)[i] = ft<T>(v);
}

/* 8 channels per thread */
template <typename T> __global__ void k_upsample8(const void *sv, const float *bias, void *dv,
						  int64_t n8, int h, int w, int c, int interleave)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= n8)
		return;
	int c8 = c / 8;
	int ch = (int)(i % c8) * 8;
	int64_t pix = i / c8;
	int x = (int)(pix % (2 * w)), y = (int)((pix / (2 * w)) % (2 * h));
	int f = (int)(pix / ((int64_t)4 * w * h));
	int sf = interleave ? f / 2 : f, sc = interleave ? (f % 2) * c + ch : ch;
	int cs = interleave ? 2 * c : c;
	v8<T> a;
	a.u = *(const uint4 *)((const T *)sv + (((int64_t)sf * h + y / 2) * w + x / 2) * cs + sc);
	if (bias) {
#pragma unroll
		for (int j = 0; j < 8; j++)
			a.set(j, a.get(j) + bias[sc + j]);
	}
	((uint4 *)dv)[i] = a.u;
}

extern "C" int vae_k_upsample(cudaStream_t st, int dt, const void *src, const float *bias,
			      void *dst, int t, int h, int w, int c, int interleave, char *err,
			      size_t errlen)
{
	int t2 = interleave ? 2 * t : t;
	int64_t n = (int64_t)t2 * 4 * h * w * c;
	if (c % 8 == 0 && al16(src) && al16(dst))
		DT_LAUNCH(dt, k_upsample8, blocks_for(n / 8, 256), 256, src, bias, dst, n / 8, h, w, c,
			  interleave);
	else
		DT_LAUNCH(dt, k_upsample, blocks_for(n, 256), 256, src, bias, dst, t2, h, w, c,
			  interleave);
	LAUNCH_RET("vae_k_upsample");
	return 0;
}

/* Row softmax of f32 scores s [rows][n] (times SCALE) into p [rows][n] of type T. */
template <typename T> __global__ void k_softmax(const float *s, void *pv, int n, float scale)
{
	const float *row = s + (int64_t)blockIdx.x * n;
	T *out = (T *)pv + (int64_t)blockIdx.x * n;
	__shared__ float red[32];
	float mx = -INFINITY;
	for (int j = threadIdx.x; j < n; j += blockDim.x)
		mx = fmaxf(mx, row[j] * scale);
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
		sum += __expf(row[j] * scale - mx);
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
		out[j] = ft<T>(__expf(row[j] * scale - mx) * inv);
}

extern "C" int vae_k_softmax(cudaStream_t st, int dt, const float *s, void *p, int rows, int n,
			     float scale, char *err, size_t errlen)
{
	DT_LAUNCH(dt, k_softmax, rows, 256, s, p, n, scale);
	LAUNCH_RET("vae_k_softmax");
	return 0;
}

/* a bit copy: the same for bf16 and fp16 */
__global__ void k_transpose(const uint16_t *src, int ld, uint16_t *dst, int n, int c)
{
	__shared__ uint16_t tile[32][33];
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
	k_transpose<<<grid, block, 0, st>>>((const uint16_t *)src, ld, (uint16_t *)dst, n, c);
	LAUNCH_RET("vae_k_transpose");
	return 0;
}

template <typename T> __global__ void k_add(void *dv, const void *sv, int64_t n)
{
	T *dst = (T *)dv;
	const T *src = (const T *)sv;
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i < n)
		dst[i] = ft<T>(tf(dst[i]) + tf(src[i]));
}

extern "C" int vae_k_add(cudaStream_t st, int dt, void *dst, const void *src, int64_t n, char *err,
			 size_t errlen)
{
	DT_LAUNCH(dt, k_add, blocks_for(n, 256), 256, dst, src, n);
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

/* One element E per thread: a bf16 channel, or 8 of them as a uint4 (C % 8 == 0; C counts Es). */
template <typename E> __global__ void k_memcat(const E *x, const E *mem, E *dst, int f, int64_t p,
					       int c)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, n = (int64_t)f * p * 2 * c;
	if (i >= n)
		return;
	int ch = (int)(i % (2 * c));
	int64_t pix = i / (2 * c), fr = pix / p, q = pix % p;
	E v;
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
	if (c % 8 == 0 && al16(x) && al16(mem) && al16(dst))
		k_memcat<uint4><<<blocks_for(n / 8, 256), 256, 0, st>>>((const uint4 *)x,
									 (const uint4 *)mem, (uint4 *)dst,
									 f, p, c / 8);
	else
		k_memcat<bf16><<<blocks_for(n, 256), 256, 0, st>>>((const bf16 *)x, (const bf16 *)mem,
								    (bf16 *)dst, f, p, c);
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

/* 8 elements per thread (C % 8 == 0) */
__global__ void k_bias_act8(const uint4 *src, const float *bias, const uint4 *res, uint4 *dst,
			    int64_t n8, int c, int relu)
{
	int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= n8)
		return;
	int ch = (int)((i * 8) % c);
	v8<bf16> a, r;
	a.u = src[i];
	if (res)
		r.u = res[i];
#pragma unroll
	for (int j = 0; j < 8; j++) {
		float v = a.get(j);
		if (bias)
			v += bias[ch + j];
		if (res)
			v += r.get(j);
		if (relu)
			v = fmaxf(v, 0.0f);
		a.set(j, v);
	}
	dst[i] = a.u;
}

extern "C" int vae_k_bias_act(cudaStream_t st, const void *src, const float *bias, const void *res,
			      void *dst, int64_t n, int c, int relu, char *err, size_t errlen)
{
	if (c % 8 == 0 && al16(src) && al16(dst) && (!res || al16(res)))
		k_bias_act8<<<blocks_for(n / 8, 256), 256, 0, st>>>((const uint4 *)src, bias,
								     (const uint4 *)res, (uint4 *)dst,
								     n / 8, c, relu);
	else
		k_bias_act<<<blocks_for(n, 256), 256, 0, st>>>((const bf16 *)src, bias, (const bf16 *)res,
							       (bf16 *)dst, n, c, relu);
	LAUNCH_RET("vae_k_bias_act");
	return 0;
}
