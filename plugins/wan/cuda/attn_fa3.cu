/* attn_fa3.cu: see attn_fa3.h.
 *
 * DESIGN. One CTA of 384 threads per work unit (128-query tile, head, batch entry; or a key
 * part of one, see below), three warpgroups:
 *  - warpgroup 0, the producer, gives its registers away (setmaxnreg.dec) and one thread
 *    issues the TMA copies: the Q tile once, then K and V tiles of BN keys into a two-stage
 *    ring (full/empty mbarriers per stage, K and V separately so K can be released first);
 *  - warpgroups 1 and 2, the consumers, own 64 query rows each (setmaxnreg.inc to 240):
 *    S = Q·Kᵀ with wgmma (A and B from shared memory), online softmax in registers (exp2 with
 *    the scale folded in), then O += P·V with P straight from the S accumulators converted to
 *    bf16: the m64nBN accumulator layout of S is the register-A layout of the next wgmma.
 *    Each iteration issues the next tile's Q·Kᵀ before this tile's P·V and computes the
 *    softmax while the P·V runs (intra-warpgroup overlap); the two consumers take turns
 *    issuing (named barriers 1 and 2), so one's softmax overlaps the other's wgmmas.
 * Small grids: the keys of every unit in 2 or 4 parts (3-D grid, z = slot x part), or only
 * the units of a partial last wave (1-D grid, "tail mode"); parts write their normalised
 * output and log-sum-exp, a merge kernel combines them. attn_cudnn.c times the variants.
 * Shared memory: every tile is rows x 128 bf16 = two 64-column panels (128-byte rows,
 * 128-byte TMA swizzle, 1024-byte aligned): Q 32 KB, then two stages of K and V tiles of BN
 * keys (BN = 128, 176 or 192: 160, 208 or 224 KB in all; m64nBNk16 for Q·Kᵀ).
 *
 * Tensor maps are 3-D (columns h·128, rows, batch) with the caller's strides, so a tile that
 * runs past the last query or key of a batch entry is zero-filled by TMA and never reads the
 * next entry; keys past skv are masked to -inf by index in the last key tile, query rows past
 * sq are never stored.
 *
 * wgmma descriptors (PTX ISA, matrix descriptor): start address >> 4 in bits 0-13, leading
 * byte offset >> 4 in 16-29, stride byte offset >> 4 in 32-45, swizzle mode in 62-63
 * (1 = 128B). Q and K are K-major (d contiguous): SBO = 1024 (8 rows of 128 B), LBO unused;
 * a k-step of 16 advances 32 B inside a panel, k-steps 4..7 use the second panel. V is the B
 * operand of P·V with its N dimension (d) contiguous, i.e. MN-major (transpose bit set): LBO
 * = BN·128 B (from the d 0..63 panel to the d 64..127 panel), SBO = 1024 (8 keys), a k-step of
 * 16 keys advances 2 KB.
 *
 * The wgmma/setmaxnreg code exists only in the sm_90a build (__CUDA_ARCH_FEAT_SM90_ALL); in
 * the compute_90 PTX the kernel body is empty and the host never selects it (it requires a
 * compute capability 9.0 device, which loads the sm_90a cubin). */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "plugins/wan/cuda/attn_fa3.h"
#include "plugins/wan/cuda/cuda_check.h"

#define FA3_BM 128                       /* queries per CTA (2 consumers x 64) */
#define FA3_D 128
#define FA3_QTILE (FA3_BM * FA3_D * 2)   /* bytes of the Q tile */
#define FA3_QPANEL (FA3_QTILE / 2)       /* one 64-column panel of it */
/* keys per tile BN: 128, 176 or 192 (three kernels, timed per shape); K, V tiles BN x 128 */
#define FA3_KTILE(bn) ((bn) * FA3_D * 2)
#define FA3_SMEM(bn) (FA3_QTILE + 4 * FA3_KTILE(bn) + 1024) /* Q, K x2, V x2, alignment */
#define FA3_THREADS 384

struct fa3_args {
	__nv_bfloat16 *o;                /* borrowed */
	int64_t o_bstride, o_sstride;
	int sq, skv;
	float scale_log2;                /* softmax scale * log2(e) */
	int pingpong;                    /* consumers take turns issuing their wgmmas */
	int rescale_always;              /* A/B: rescale O every tile even when no maximum moved */
	int split, chunk;                /* grid.z = b·split; part j attends keys [j·chunk, +chunk) */
	float *lse;                      /* borrowed, split > 1: [b·split][h][sq] log-sum-exp */
	/* tail mode (tparts > 0, 1-D grid): units (query tile, head, slot; tile fastest) below
	 * nfull run whole, each later one in tparts parts of tchunk keys (the last wave's units
	 * spread over every SM) writing tile-sized partial outputs to `to` [part][128][128] and
	 * their log-sum-exp to tlse [part][128], merged by k_fa3_tail_combine */
	int h, qtiles, nfull, tparts, tchunk;
	__nv_bfloat16 *to;               /* borrowed */
	float *tlse;                     /* borrowed */
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

static __device__ __forceinline__ uint32_t smem_addr(const void *p)
{
	return (uint32_t)__cvta_generic_to_shared(p);
}

static __device__ __forceinline__ void mbar_init(uint32_t bar, int count)
{
	asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}

static __device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes)
{
	asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

static __device__ __forceinline__ void mbar_arrive(uint32_t bar)
{
	asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

static __device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity)
{
	uint32_t done;

	do {
		asm volatile("{\n\t.reg .pred p;\n\t"
			     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
			     "selp.u32 %0, 1, 0, p;\n\t}"
			     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
	} while (!done);
}

/* One box (64 columns x 128 rows of one batch entry) into dst, completing on bar. */
static __device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap *map, uint32_t bar,
						int col, int row, int batch)
{
	asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
		     " [%0], [%1, {%3, %4, %5}], [%2];"
		     ::"r"(dst), "l"((uint64_t)map), "r"(bar), "r"(col), "r"(row), "r"(batch) : "memory");
}

/* A tile of `rows` rows (the map's box): both 64-column panels of head hh from `row` on. */
static __device__ __forceinline__ void tma_tile(uint32_t dst, const CUtensorMap *map, uint32_t bar,
						int hh, int row, int batch, int rows)
{
	mbar_expect_tx(bar, rows * FA3_D * 2);
	tma_load(dst, map, bar, hh * FA3_D, row, batch);
	tma_load(dst + rows * 128, map, bar, hh * FA3_D + 64, row, batch);
}

static __device__ __forceinline__ uint64_t desc_sw128(uint32_t addr, uint32_t lbo, uint32_t sbo)
{
	return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) |
	       ((uint64_t)(sbo >> 4) << 32) | (1ull << 62);
}

static __device__ __forceinline__ void wg_fence(void)
{
	asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}

static __device__ __forceinline__ void wg_commit(void)
{
	asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}

template <int N> static __device__ __forceinline__ void wg_wait(void)
{
	asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

/* keeps the accumulators in registers across the asynchronous wgmma (no reordering) */
template <int N> static __device__ __forceinline__ void fence_acc(float (&d)[N])
{
#pragma unroll
	for (int i = 0; i < N; i++)
		asm volatile("" : "+f"(d[i])::"memory");
}

template <int N> static __device__ __forceinline__ void fence_frag(uint32_t (&p)[N])
{
#pragma unroll
	for (int i = 0; i < N; i++)
		asm volatile("" : "+r"(p[i])::"memory");
}

#define FA3_ACC_REGS \
	"{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
	"%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
	"%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
	"%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define FA3_ACC176_REGS \
	"{" \
	"%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
	"%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
	"%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
	"%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
	"%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
	"%80, %81, %82, %83, %84, %85, %86, %87}"
#define FA3_ACC192_REGS \
	"{" \
	"%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
	"%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
	"%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
	"%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
	"%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
	"%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}"
#define FA3_R8(b) "+f"(d[b]), "+f"(d[b + 1]), "+f"(d[b + 2]), "+f"(d[b + 3]), "+f"(d[b + 4]), \
	"+f"(d[b + 5]), "+f"(d[b + 6]), "+f"(d[b + 7])
#define FA3_ACC_OPS FA3_R8(0), FA3_R8(8), FA3_R8(16), FA3_R8(24), FA3_R8(32), FA3_R8(40), \
	FA3_R8(48), FA3_R8(56)
#define FA3_ACC176_OPS FA3_ACC_OPS, FA3_R8(64), FA3_R8(72), FA3_R8(80)
#define FA3_ACC192_OPS FA3_ACC176_OPS, FA3_R8(88)

/* d (+)= A·B, m64n176k16, A and B K-major from shared memory; accumulate = 0 overwrites d. */
static __device__ __forceinline__ void wgmma_ss(float (&d)[88], uint64_t da, uint64_t db, int accumulate)
{
	asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %90, 0;\n\t"
		     "wgmma.mma_async.sync.aligned.m64n176k16.f32.bf16.bf16 " FA3_ACC176_REGS
		     ", %88, %89, p, 1, 1, 0, 0;\n\t}"
		     : FA3_ACC176_OPS
		     : "l"(da), "l"(db), "r"(accumulate));
}

/* the same, m64n192k16 */
static __device__ __forceinline__ void wgmma_ss(float (&d)[96], uint64_t da, uint64_t db, int accumulate)
{
	asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %98, 0;\n\t"
		     "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 " FA3_ACC192_REGS
		     ", %96, %97, p, 1, 1, 0, 0;\n\t}"
		     : FA3_ACC192_OPS
		     : "l"(da), "l"(db), "r"(accumulate));
}

/* the same, m64n128k16 */
static __device__ __forceinline__ void wgmma_ss(float (&d)[64], uint64_t da, uint64_t db, int accumulate)
{
	asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %66, 0;\n\t"
		     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " FA3_ACC_REGS
		     ", %64, %65, p, 1, 1, 0, 0;\n\t}"
		     : FA3_ACC_OPS
		     : "l"(da), "l"(db), "r"(accumulate));
}

/* d += A·B, m64n128k16, A (bf16 pairs) in registers, B MN-major from shared memory. */
static __device__ __forceinline__ void wgmma_rs(float (&d)[64], uint32_t a0, uint32_t a1, uint32_t a2,
						uint32_t a3, uint64_t db)
{
	asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, 1, 0;\n\t"
		     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " FA3_ACC_REGS
		     ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n\t}"
		     : FA3_ACC_OPS
		     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(db));
}

/* Ping-pong: named barrier 1 + c means "consumer c may issue". A turn ends by letting the
 * other consumer go, so one warpgroup's softmax runs while the other's wgmmas use the tensor
 * cores. */
static __device__ __forceinline__ void turn_begin(int on, int c)
{
	if (on)
		asm volatile("bar.sync %0, 256;" ::"r"(1 + c) : "memory");
}

static __device__ __forceinline__ void turn_end(int on, int c)
{
	if (on)
		asm volatile("bar.arrive %0, 256;" ::"r"(2 - c) : "memory");
}

static __device__ __forceinline__ float ex2(float x)
{
	float y;

	asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
	return y;
}

static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
	__nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);

	return *(uint32_t *)&v;
}

/* S = Q·Kᵀ for this consumer's 64 rows against one BN-key tile (issued, not waited). */
template <int BN> static __device__ __forceinline__ void issue_qk(float (&s)[BN / 2], uint32_t q, uint32_t k)
{
#pragma unroll
	for (int kk = 0; kk < 8; kk++) {
		uint32_t qo = (kk >> 2) * FA3_QPANEL + (kk & 3) * 32, ko = (kk >> 2) * (FA3_KTILE(BN) / 2) + (kk & 3) * 32;

		wgmma_ss(s, desc_sw128(q + qo, 16, 1024), desc_sw128(k + ko, 16, 1024), kk > 0);
	}
}

/* O += P·V for one BN-key tile; p holds P as bf16 pairs in the register-A layout. */
template <int BN>
static __device__ __forceinline__ void issue_pv(float (&o)[64], const uint32_t (&p)[BN / 4], uint32_t v)
{
#pragma unroll
	for (int kk = 0; kk < BN / 16; kk++)
		wgmma_rs(o, p[4 * kk], p[4 * kk + 1], p[4 * kk + 2], p[4 * kk + 3],
			 desc_sw128(v + kk * 2048, FA3_KTILE(BN) / 2, 1024));
}

/* Online softmax of one S tile in place (S becomes P, fp32): rows r (regs i%4 < 2) and r+8
 * (i%4 >= 2) of this thread; keys from `valid` on are masked. Returns the factors by which
 * the previous O and row sums must be scaled. */
template <int BN>
static __device__ __forceinline__ void softmax_tile(float (&s)[BN / 2], float &m0, float &m1, float &l0,
						    float &l1, float &alpha0, float &alpha1, int valid,
						    float sl2)
{
	float mx0 = -INFINITY, mx1 = -INFINITY, sum0 = 0.0f, sum1 = 0.0f;
	int c0 = 2 * (threadIdx.x & 3);

	if (valid < BN) {
#pragma unroll
		for (int i = 0; i < BN / 2; i++)
			if (8 * (i >> 2) + c0 + (i & 1) >= valid)
				s[i] = -INFINITY;
	}
#pragma unroll
	for (int i = 0; i < BN / 2; i += 4) {
		mx0 = fmaxf(mx0, fmaxf(s[i], s[i + 1]));
		mx1 = fmaxf(mx1, fmaxf(s[i + 2], s[i + 3]));
	}
	mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
	mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
	mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
	mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
	mx0 = fmaxf(m0, mx0 * sl2);
	mx1 = fmaxf(m1, mx1 * sl2);
	alpha0 = ex2(m0 - mx0);
	alpha1 = ex2(m1 - mx1);
	m0 = mx0;
	m1 = mx1;
#pragma unroll
	for (int i = 0; i < BN / 2; i += 4) {
		s[i] = ex2(fmaf(s[i], sl2, -mx0));
		s[i + 1] = ex2(fmaf(s[i + 1], sl2, -mx0));
		s[i + 2] = ex2(fmaf(s[i + 2], sl2, -mx1));
		s[i + 3] = ex2(fmaf(s[i + 3], sl2, -mx1));
		sum0 += s[i] + s[i + 1];
		sum1 += s[i + 2] + s[i + 3];
	}
	l0 = l0 * alpha0 + sum0;
	l1 = l1 * alpha1 + sum1;
}

template <int BN>
static __device__ __forceinline__ void to_bf16_frag(const float (&s)[BN / 2], uint32_t (&p)[BN / 4])
{
#pragma unroll
	for (int i = 0; i < BN / 4; i++)
		p[i] = pack_bf16(s[2 * i], s[2 * i + 1]);
}

#endif /* sm_90a */

template <int BN>
__global__ void __launch_bounds__(FA3_THREADS, 1)
k_attn_fa3(const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
	   const __grid_constant__ CUtensorMap tv, const struct fa3_args a)
{
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
	extern __shared__ uint8_t fa3_smem[];
	/* 0: Q full; 1-2: K full; 3-4: K empty; 5-6: V full; 7-8: V empty */
	__shared__ __align__(8) uint64_t bars[9];
	uint32_t base = (smem_addr(fa3_smem) + 1023u) & ~1023u;
	uint32_t sq_tile = base, sk = base + FA3_QTILE, sv = sk + 2 * FA3_KTILE(BN);
	uint32_t bar0 = smem_addr(bars);
	int wg = threadIdx.x >> 7, qt = blockIdx.x, hh = blockIdx.y, z = blockIdx.z;
	int bb = z / a.split, kbeg = (z - bb * a.split) * a.chunk, klen = a.chunk, tidx = -1, nkt;

	if (a.tparts) {
		int u = blockIdx.x;

		if (u >= a.nfull) {
			int t = (u - a.nfull) / a.tparts, part = u - a.nfull - t * a.tparts;

			u = a.nfull + t;
			tidx = t * a.tparts + part;
			kbeg = part * a.tchunk;
			klen = a.tchunk;
		} else {
			kbeg = 0;
		}
		qt = u % a.qtiles;
		hh = (u / a.qtiles) % a.h;
		bb = z = u / (a.qtiles * a.h);
	}
	klen = min(a.skv - kbeg, klen);
	nkt = (klen + BN - 1) / BN;

#define BAR_Q bar0
#define BAR_KF(st) (bar0 + 8u * (1 + (st)))
#define BAR_KE(st) (bar0 + 8u * (3 + (st)))
#define BAR_VF(st) (bar0 + 8u * (5 + (st)))
#define BAR_VE(st) (bar0 + 8u * (7 + (st)))
	if (threadIdx.x == 0) {
		mbar_init(BAR_Q, 1);
		for (int st = 0; st < 2; st++) {
			mbar_init(BAR_KF(st), 1);
			mbar_init(BAR_VF(st), 1);
			mbar_init(BAR_KE(st), 8); /* lane 0 of each consumer warp */
			mbar_init(BAR_VE(st), 8);
		}
		asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
	}
	__syncthreads();

	if (wg == 0) {
		asm volatile("setmaxnreg.dec.sync.aligned.u32 24;");
		if (threadIdx.x == 0) {
			asm volatile("prefetch.tensormap [%0];" ::"l"((uint64_t)&tk) : "memory");
			asm volatile("prefetch.tensormap [%0];" ::"l"((uint64_t)&tv) : "memory");
			tma_tile(sq_tile, &tq, BAR_Q, hh, qt * FA3_BM, bb, FA3_BM);
			for (int j = 0; j < nkt; j++) {
				int st = j & 1;
				uint32_t ph = (j >> 1) & 1;

				if (j >= 2)
					mbar_wait(BAR_KE(st), ph ^ 1);
				tma_tile(sk + st * FA3_KTILE(BN), &tk, BAR_KF(st), hh, kbeg + j * BN, bb, BN);
				if (j >= 2)
					mbar_wait(BAR_VE(st), ph ^ 1);
				tma_tile(sv + st * FA3_KTILE(BN), &tv, BAR_VF(st), hh, kbeg + j * BN, bb, BN);
			}
		}
	} else {
		float o[64], s[BN / 2];
		uint32_t p[BN / 4];
		float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f, al0, al1;
		int c = wg - 1, tid = threadIdx.x & 127, lane = threadIdx.x & 31;
		uint32_t qc = sq_tile + c * (FA3_QPANEL / 2); /* this consumer's 64 rows */
		float sl2 = a.scale_log2;

		asm volatile("setmaxnreg.inc.sync.aligned.u32 240;");
#pragma unroll
		for (int i = 0; i < 64; i++)
			o[i] = 0.0f;
		/* nkt + 1 turns each: tile 0's Q·Kᵀ, one per loop iteration, the last P·V. Consumer
		 * 1 opens consumer 0's first turn and skips its own last hand-over, so every
		 * barrier phase gets exactly 128 arrivals from each side. */
		if (c == 1)
			turn_end(a.pingpong, c);
		mbar_wait(BAR_Q, 0);
		/* tile 0 */
		mbar_wait(BAR_KF(0), 0);
		turn_begin(a.pingpong, c);
		wg_fence();
		issue_qk<BN>(s, qc, sk);
		wg_commit();
		turn_end(a.pingpong, c);
		wg_wait<0>();
		fence_acc(s);
		if (lane == 0)
			mbar_arrive(BAR_KE(0));
		softmax_tile<BN>(s, m0, m1, l0, l1, al0, al1, klen < BN ? klen : BN, sl2);
		to_bf16_frag<BN>(s, p);
		for (int j = 1; j < nkt; j++) {
			int st = j & 1, pst = st ^ 1, valid = klen - j * BN;
			uint32_t ph = (j >> 1) & 1, pph = ((j - 1) >> 1) & 1;

			mbar_wait(BAR_KF(st), ph);
			mbar_wait(BAR_VF(pst), pph);
			fence_acc(o);
			fence_frag(p);
			turn_begin(a.pingpong, c);
			wg_fence();
			issue_qk<BN>(s, qc, sk + st * FA3_KTILE(BN));
			wg_commit();
			wg_fence();
			issue_pv<BN>(o, p, sv + pst * FA3_KTILE(BN));
			wg_commit();
			turn_end(a.pingpong, c);
			wg_wait<1>();
			fence_acc(s);
			if (lane == 0)
				mbar_arrive(BAR_KE(st));
			softmax_tile<BN>(s, m0, m1, l0, l1, al0, al1, valid < BN ? valid : BN, sl2);
			wg_wait<0>();
			fence_acc(o);
			if (lane == 0)
				mbar_arrive(BAR_VE(pst));
			/* once the row maxima settle most tiles leave them unchanged (factor exactly 1):
			 * the warp skips the rescale then (same result, fewer multiplies) */
			if (!a.rescale_always && !__any_sync(0xffffffffu, al0 != 1.0f || al1 != 1.0f)) {
				/* nothing to scale */
			} else {
#pragma unroll
				for (int i = 0; i < 64; i += 4) {
					o[i] *= al0;
					o[i + 1] *= al0;
					o[i + 2] *= al1;
					o[i + 3] *= al1;
				}
			}
			to_bf16_frag<BN>(s, p);
		}
		{
			int st = (nkt - 1) & 1;

			mbar_wait(BAR_VF(st), ((nkt - 1) >> 1) & 1);
			fence_acc(o);
			fence_frag(p);
			turn_begin(a.pingpong, c);
			wg_fence();
			issue_pv<BN>(o, p, sv + st * FA3_KTILE(BN));
			wg_commit();
			if (c == 0)
				turn_end(a.pingpong, c);
			wg_wait<0>();
			fence_acc(o);
		}
		/* epilogue: row sums across the quad, O / l, bf16 pairs to global */
		l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
		l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
		l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
		l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
		{
			int rl = c * 64 + (tid >> 5) * 16 + (lane >> 2), r = qt * FA3_BM + rl;
			float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
			__nv_bfloat16 *row0 = NULL, *row1 = NULL;
			float *ls0 = NULL, *ls1 = NULL;

			if (tidx >= 0) {
				row0 = a.to + ((int64_t)tidx * FA3_BM + rl) * FA3_D + 2 * (lane & 3);
				row1 = row0 + 8 * FA3_D;
				if ((lane & 3) == 0) {
					ls0 = a.tlse + tidx * FA3_BM + rl;
					ls1 = ls0 + 8;
				}
			} else {
				__nv_bfloat16 *ob = a.o + z * a.o_bstride + hh * FA3_D + 2 * (lane & 3);
				float *lse = a.lse ? a.lse + ((int64_t)z * a.h + hh) * a.sq : NULL;

				if (r < a.sq) {
					row0 = ob + r * a.o_sstride;
					ls0 = lse && (lane & 3) == 0 ? lse + r : NULL;
				}
				if (r + 8 < a.sq) {
					row1 = ob + (r + 8) * a.o_sstride;
					ls1 = lse && (lane & 3) == 0 ? lse + r + 8 : NULL;
				}
			}
			if (ls0)
				*ls0 = (m0 + __log2f(l0)) * 0.6931471805599453f;
			if (ls1)
				*ls1 = (m1 + __log2f(l1)) * 0.6931471805599453f;
			if (row0) {
#pragma unroll
				for (int i = 0; i < 64; i += 4)
					*(__nv_bfloat162 *)(row0 + 8 * (i >> 2)) =
						__floats2bfloat162_rn(o[i] * inv0, o[i + 1] * inv0);
			}
			if (row1) {
#pragma unroll
				for (int i = 0; i < 64; i += 4)
					*(__nv_bfloat162 *)(row1 + 8 * (i >> 2)) =
						__floats2bfloat162_rn(o[i + 2] * inv1, o[i + 3] * inv1);
			}
		}
	}
#undef BAR_Q
#undef BAR_KF
#undef BAR_KE
#undef BAR_VF
#undef BAR_VE
#endif
}

/* Tail mode: merges the parts of each split unit by their log-sum-exp. One warp per (tail
 * unit, row); lanes own 4 channels. */
__global__ void k_fa3_tail_combine(const struct fa3_args a, int ntail)
{
	int w = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
	int t = w / FA3_BM, rl = w % FA3_BM, u = a.nfull + t, qt, hh, bb, r;
	float lse[4], mx = -INFINITY, wsum = 0.0f, acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};

	if (t >= ntail)
		return;
	qt = u % a.qtiles;
	hh = (u / a.qtiles) % a.h;
	bb = u / (a.qtiles * a.h);
	r = qt * FA3_BM + rl;
	if (r >= a.sq)
		return;
	for (int j = 0; j < a.tparts; j++) {
		lse[j] = a.tlse[(t * a.tparts + j) * FA3_BM + rl];
		mx = fmaxf(mx, lse[j]);
	}
	for (int j = 0; j < a.tparts; j++) {
		const __nv_bfloat16 *src = a.to + ((int64_t)(t * a.tparts + j) * FA3_BM + rl) * FA3_D + 4 * lane;
		float wj = __expf(lse[j] - mx);

		wsum += wj;
		for (int c = 0; c < 4; c++)
			acc[c] += wj * __bfloat162float(src[c]);
	}
	{
		__nv_bfloat16 *dst = a.o + bb * a.o_bstride + (int64_t)r * a.o_sstride + hh * FA3_D + 4 * lane;

		*(__nv_bfloat162 *)dst = __floats2bfloat162_rn(acc[0] / wsum, acc[1] / wsum);
		*(__nv_bfloat162 *)(dst + 2) = __floats2bfloat162_rn(acc[2] / wsum, acc[3] / wsum);
	}
}

/* ---- host ---- */

static PFN_cuTensorMapEncodeTiled_v12000 encode_tiled(void)
{
	static PFN_cuTensorMapEncodeTiled_v12000 fn; /* resolved once; every thread stores the same */
	PFN_cuTensorMapEncodeTiled_v12000 f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);
	enum cudaDriverEntryPointQueryResult q;
	void *p = NULL;

	if (f)
		return f;
	if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) !=
	    cudaSuccess || q != cudaDriverEntryPointSuccess || !p) {
		cudaGetLastError();
		return NULL;
	}
	f = (PFN_cuTensorMapEncodeTiled_v12000)p;
	__atomic_store_n(&fn, f, __ATOMIC_RELEASE);
	return f;
}

/* 16-byte multiples, columns inside the row. */
static int stride_ok(int64_t bstride, int64_t sstride, int h, int rows, int b)
{
	return sstride % 8 == 0 && sstride >= (int64_t)h * FA3_D && bstride % 8 == 0 &&
	       (b == 1 || bstride >= (int64_t)rows * sstride) && sstride < ((int64_t)1 << 38) &&
	       bstride < ((int64_t)1 << 38);
}

extern "C" int wan_attn_fa3_supported(const struct wan_attn_shape *s, char *why, size_t whylen)
{
	static int smem_set[16]; /* per device: dynamic shared memory limit raised */
	int dev = 0, major = 0, minor = 0, optin = 0;
	const char *no = NULL;

	if (cudaGetDevice(&dev) != cudaSuccess ||
	    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
	    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess ||
	    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
		cudaGetLastError();
		no = "cannot query the device";
	} else if (major != 9 || minor != 0) {
		no = "needs a compute capability 9.0 (Hopper) GPU";
	} else if (optin < FA3_SMEM(192) + 1024) {
		no = "not enough shared memory per block";
	} else if (s->d != FA3_D) {
		no = "head dim is not 128";
	} else if (s->b <= 0 || s->h <= 0 || s->sq <= 0 || s->skv <= 0 || s->b > 65535 || s->h > 65535 ||
		   (int64_t)s->h * FA3_D > INT32_MAX) {
		no = "bad attention shape";
	} else if (!stride_ok(s->q_bstride, s->q_sstride, s->h, s->sq, s->b) ||
		   !stride_ok(s->kv_bstride, s->kv_sstride, s->h, s->skv, s->b) ||
		   s->o_sstride < (int64_t)s->h * FA3_D || s->o_sstride % 2 || s->o_bstride % 2 ||
		   (s->b > 1 && s->o_bstride < (int64_t)s->sq * s->o_sstride)) {
		no = "strides are not 16-byte multiples or rows overlap";
	} else if (!encode_tiled()) {
		no = "the driver has no cuTensorMapEncodeTiled";
	} else if (dev >= 0 && dev < 16 && !smem_set[dev]) {
		if (cudaFuncSetAttribute(k_attn_fa3<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
					 FA3_SMEM(128)) != cudaSuccess ||
		    cudaFuncSetAttribute(k_attn_fa3<176>, cudaFuncAttributeMaxDynamicSharedMemorySize,
					 FA3_SMEM(176)) != cudaSuccess ||
		    cudaFuncSetAttribute(k_attn_fa3<192>, cudaFuncAttributeMaxDynamicSharedMemorySize,
					 FA3_SMEM(192)) != cudaSuccess) {
			cudaGetLastError();
			no = "cannot raise the kernel's shared memory limit";
		} else {
			smem_set[dev] = 1;
		}
	}
	if (no && why)
		snprintf(why, whylen, "fa3 attention: %s", no);
	return no == NULL;
}

/* A 3-D map over (columns, rows, batch) with 64 x box_rows x 1 boxes, 128-byte swizzle. */
static int make_map(CUtensorMap *m, const void *ptr, int h, int rows, int b, int64_t sstride,
		    int64_t bstride, int box_rows)
{
	cuuint64_t dim[3] = {(cuuint64_t)h * FA3_D, (cuuint64_t)rows, (cuuint64_t)b};
	cuuint64_t str[2] = {(cuuint64_t)sstride * 2,
			     (cuuint64_t)(b == 1 ? (int64_t)rows * sstride : bstride) * 2};
	cuuint32_t box[3] = {64, (cuuint32_t)box_rows, 1}, es[3] = {1, 1, 1};

	return encode_tiled()(m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void *)ptr, dim, str, box, es,
			      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
			      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) ==
	       CUDA_SUCCESS ? 0 : -1;
}

static int launch(cudaStream_t st, const struct wan_attn_shape *s, const void *q, const void *k,
		  const void *v, void *o, int64_t o_bstride, int64_t o_sstride, int split, int bn,
		  float *lse, int tparts, void *tscratch, float *tlse, char *err, size_t errlen)
{
	CUtensorMap tq, tk, tv;
	struct fa3_args a = {};
	int chunk = ((s->skv + split - 1) / split + bn - 1) / bn * bn, dev = 0, sms = 0, ntail = 0;
	int qtiles = (s->sq + FA3_BM - 1) / FA3_BM;
	int64_t units = (int64_t)s->b * s->h * qtiles;
	dim3 grid(qtiles, s->h, s->b * split);

	if (!wan_attn_fa3_supported(s, err, errlen))
		return -1;
	if (bn != 128 && bn != 176 && bn != 192) {
		snprintf(err, errlen, "fa3 attention: key tile %d is not 128, 176 or 192", bn);
		return -1;
	}
	if (split < 1 || split > 4 || (int64_t)s->b * split > 65535 || (split - 1) * chunk >= s->skv) {
		snprintf(err, errlen, "fa3 attention: cannot split %d keys in %d parts", s->skv, split);
		return -1;
	}
	if (tparts) {
		int tchunk = ((s->skv + tparts - 1) / tparts + bn - 1) / bn * bn;

		if (cudaGetDevice(&dev) != cudaSuccess ||
		    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0) {
			cudaGetLastError();
			snprintf(err, errlen, "fa3 attention: cannot query the multiprocessor count");
			return -1;
		}
		if (split != 1 || tparts < 2 || tparts > 4 || (tparts - 1) * tchunk >= s->skv ||
		    units + (int64_t)sms * tparts > INT32_MAX || !tscratch || !tlse) {
			snprintf(err, errlen, "fa3 attention: cannot run the last wave's %d keys in %d parts",
				 s->skv, tparts);
			return -1;
		}
		ntail = (int)(units % sms);
		a.tchunk = tchunk;
	}
	if (((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)o) & 15) {
		snprintf(err, errlen, "fa3 attention: operands must be 16-byte aligned");
		return -1;
	}
	if (make_map(&tq, q, s->h, s->sq, s->b, s->q_sstride, s->q_bstride, FA3_BM) ||
	    make_map(&tk, k, s->h, s->skv, s->b, s->kv_sstride, s->kv_bstride, bn) ||
	    make_map(&tv, v, s->h, s->skv, s->b, s->kv_sstride, s->kv_bstride, bn)) {
		snprintf(err, errlen, "fa3 attention: cuTensorMapEncodeTiled refused the operands");
		return -1;
	}
	a.o = (__nv_bfloat16 *)o;
	a.o_bstride = o_bstride;
	a.o_sstride = o_sstride;
	a.split = split;
	a.chunk = split > 1 ? chunk : s->skv;
	a.lse = lse;
	a.h = s->h;
	a.qtiles = qtiles;
	a.nfull = (int)(units - ntail);
	a.tparts = ntail ? tparts : 0;
	a.to = (__nv_bfloat16 *)tscratch;
	a.tlse = tlse;
	if (a.tparts)
		grid = dim3((unsigned)(a.nfull + ntail * tparts), 1, 1);
	a.sq = s->sq;
	a.skv = s->skv;
	a.scale_log2 = s->scale * 1.4426950408889634f;
	{
		const char *e = getenv("WAN_FA3_PINGPONG");

		a.pingpong = !(e && e[0] == '0');
		e = getenv("WAN_FA3_SKIP_RESCALE");
		a.rescale_always = e && e[0] == '0';
	}
	if (bn == 192)
		k_attn_fa3<192><<<grid, FA3_THREADS, FA3_SMEM(192), st>>>(tq, tk, tv, a);
	else if (bn == 176)
		k_attn_fa3<176><<<grid, FA3_THREADS, FA3_SMEM(176), st>>>(tq, tk, tv, a);
	else
		k_attn_fa3<128><<<grid, FA3_THREADS, FA3_SMEM(128), st>>>(tq, tk, tv, a);
	CU_LAUNCH_RET("k_attn_fa3");
	if (a.tparts) {
		k_fa3_tail_combine<<<(ntail * FA3_BM + 7) / 8, 256, 0, st>>>(a, ntail);
		CU_LAUNCH_RET("k_fa3_tail_combine");
	}
	return 0;
}

extern "C" int wan_attn_fa3(cudaStream_t st, const struct wan_attn_shape *s, const void *q,
			    const void *k, const void *v, void *o, char *err, size_t errlen)
{
	return launch(st, s, q, k, v, o, s->o_bstride, s->o_sstride, 1, WAN_FA3_BN_DEFAULT, NULL, 0, NULL,
		      NULL, err, errlen);
}

extern "C" int wan_attn_fa3_split(cudaStream_t st, const struct wan_attn_shape *s, int split, int bn,
				  const void *q, const void *k, const void *v, void *opart,
				  float *lse, void *o, char *err, size_t errlen)
{
	int64_t ps = (int64_t)s->h * FA3_D;

	if (bn == 0)
		bn = WAN_FA3_BN_DEFAULT;
	if (split == 1)
		return launch(st, s, q, k, v, o, s->o_bstride, s->o_sstride, 1, bn, NULL, 0, NULL, NULL, err,
			      errlen);
	if (launch(st, s, q, k, v, opart, (int64_t)s->sq * ps, ps, split, bn, lse, 0, NULL, NULL, err,
		   errlen))
		return -1;
	return wan_attn_combine(st, opart, lse, o, s->b, split, s->h, FA3_D, s->sq, s->o_bstride,
				s->o_sstride, err, errlen);
}

extern "C" int wan_attn_fa3_tail(cudaStream_t st, const struct wan_attn_shape *s, int parts, int bn,
				 const void *q, const void *k, const void *v, void *scratch,
				 float *scratch_lse, void *o, char *err, size_t errlen)
{
	if (bn == 0)
		bn = WAN_FA3_BN_DEFAULT;
	return launch(st, s, q, k, v, o, s->o_bstride, s->o_sstride, 1, bn, NULL, parts, scratch,
		      scratch_lse, err, errlen);
}

extern "C" size_t wan_attn_fa3_tail_scratch(int sms, size_t *lse_bytes)
{
	*lse_bytes = (size_t)sms * 4 * FA3_BM * sizeof(float);
	return (size_t)sms * 4 * FA3_BM * FA3_D * 2;
}
