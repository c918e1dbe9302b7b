/* sink_kernels.cu: the adaptive-sink statistics, decision and the cache write it steers (see
 * sink_kernels.h). The ring update is dit_kv.c's kv_plan + kv_commit, line for line, written
 * once for host and device (ring_advance); the host copy exists for tests.
 *
 * DESIGN: a token mean is a sum over a frame's rows; every such sum here has one order, so the
 * mean of the same bf16 rows is bitwise the same whichever kernel computes it (the new tokens
 * before they are written, or the same rows re-read from the cache): chunks of
 * wan_sink_chunk() rows, each summed sequentially from its first row (fp32), then the chunks
 * of a column added by 4 lanes (lane q takes chunks q, q+4, ...) and the 4 lanes in order.
 * The fused pass (k_sink_fresh_parts) computes the new keys exactly as kernels.cu's
 * k_qkv_rope_cache8r stores them (the per-row code of row8.cuh: RMS sum of 8 channels per
 * thread, block_sum_rows, RMSNorm·g, RoPE, bf16 rounding), so its means are those of the rows
 * wan_k_qkv_rope_cache writes to the decided row afterwards; gpu_dit_stream checks it bitwise. The decision kernel spreads the sums and dot products over
 * D/64 blocks per slot; the last block to finish (an arrival counter per slot, reset by it)
 * adds the blocks' dot products in block order and runs the ring update: deterministic. */
#include "plugins/wan/cuda/sink_kernels.h"
#include "plugins/wan/cuda/cuda_check.h"
#include "plugins/wan/cuda/row8.cuh"
#include "plugins/wan/ops_ref.h"

#include <cuda_bf16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef __nv_bfloat16 bf16;

#define LAUNCH_CHECK(name) do { cudaError_t e_ = cudaGetLastError(); if (e_ != cudaSuccess) \
	return wan_cuda_fail(err, errlen, __FILE__, __LINE__, name, cudaGetErrorString(e_)); } while (0)

/* ---- the ring update (host and device) ---- */

/* dit_kv.c list_insert_front: the pending run is the front entries <= sink rows; past
 * pending_max the oldest pending refresh (the last of the run) is forgotten. The caller
 * checked that the list has room. */
static __host__ __device__ void ring_insert_front(struct wan_sink_ring *r, int v, int sink_rows,
						  int pending_max)
{
	int pending = 0;

	while (pending < r->n && r->list[pending] <= sink_rows)
		pending++;
	if (pending >= pending_max) {
		for (int i = pending - 1; i + 1 < r->n; i++)
			r->list[i] = r->list[i + 1];
		r->n--;
	}
	for (int i = r->n; i > 0; i--)
		r->list[i] = r->list[i - 1];
	r->list[0] = v;
	r->n++;
}

/* dit_kv_advance for one layer and slot: plan (nothing changes on refusal), then commit.
 * Returns a WAN_SINK_* status. */
static __host__ __device__ int ring_advance(struct wan_sink_ring *r, const struct wan_sink_params *p,
					    int l, int rows, int nsink, int c_start, int n_new,
					    int pick, int *write_row, int *attn_len)
{
	int sink_rows = nsink * l, c_end = c_start + n_new, write_end, local_end;
	int full = c_end > rows || r->local_end >= rows;

	if (c_start < 0 || n_new < 1 || n_new > rows || pick >= nsink)
		return WAN_SINK_ERANGE;
	if (full) {
		write_end = pick >= 0 ? (pick + 1) * l : (r->n ? r->list[0] : -1);
		local_end = rows;
		if (write_end - n_new < 0 || write_end > rows)
			return WAN_SINK_ENOROOM;
	} else {
		local_end = r->local_end + c_end - r->global_end;
		write_end = local_end;
		if (local_end - n_new < 0 || local_end > rows)
			return WAN_SINK_ERANGE;
	}
	if (r->n < 0 || r->n > WAN_SINK_LIST_MAX || (pick >= 0 && r->n >= WAN_SINK_LIST_MAX))
		return WAN_SINK_EFULL;
	/* commit */
	if (pick >= 0)
		ring_insert_front(r, (pick + 1) * l, sink_rows, p->pending_max);
	if (full) {
		if (p->kv_slots == 1 && r->current_step > 1) {
			r->current_step--; /* no-batch: every step of a chunk reuses the slot */
		} else {
			int e = r->list[0];

			for (int i = 0; i + 1 < r->n; i++)
				r->list[i] = r->list[i + 1];
			r->n--;
			if (e > sink_rows)
				r->list[r->n++] = e;
			r->current_step = p->total_steps;
		}
	} else {
		int rolling = c_end + n_new;

		if (rolling > sink_rows && rolling <= rows && (r->n == 0 || r->list[r->n - 1] != rolling) &&
		    r->n < p->list_cap && r->n < WAN_SINK_LIST_MAX)
			r->list[r->n++] = rolling;
	}
	r->global_end = c_end;
	r->local_end = local_end;
	*write_row = write_end - n_new;
	*attn_len = local_end;
	return WAN_SINK_OK;
}

extern "C" int wan_sink_ring_advance_host(struct wan_sink_ring *r, const struct wan_sink_params *p,
					  int l, int rows, int nsink, int c_start, int n_new, int pick,
					  int *write_row, int *attn_len)
{
	return ring_advance(r, p, l, rows, nsink, c_start, n_new, pick, write_row, attn_len);
}

/* ---- settings ---- */

static int chunk_rows;

extern "C" int wan_sink_chunk(void)
{
	if (!chunk_rows) {
		const char *e = getenv("WAN_SINK_CHUNK");
		int v = e ? atoi(e) : 16;

		chunk_rows = v == 8 || v == 32 || v == 64 ? v : 16;
	}
	return chunk_rows;
}

/* The environment and the shape allow the fused kernels (wan_sink_fused_ok also asks whether
 * they launch). */
static int fused_shape_ok(int d, int hd)
{
	const char *e = getenv("WAN_SINK_FUSED"), *v = getenv("WAN_K_VEC");

	/* kernels.cu keeps its plain (differently rounded) kernel under WAN_K_VEC=0 */
	if ((e && e[0] == '0') || (v && v[0] == '0'))
		return 0;
	return d % 256 == 0 && d / 8 <= 1024 && hd % 8 == 0 && d % hd == 0;
}

/* ---- per-row helpers (the shared ones are in row8.cuh) ---- */

static __device__ __forceinline__ double warp_sum_d(double v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* ---- partial sums of rows already in memory ---- */

/* Block (chunk c, set): set = (b·2 + kv)·nsets + j. Thread i sums columns [8i, 8i+8) (VEC)
 * or columns i, i + blockDim, ... of rows [c·chunk, ...) of its set, in row order. */
template <bool VEC>
__global__ void k_sink_row_parts(const bf16 *kc, const bf16 *vc, int64_t slot_stride,
				 int64_t set_stride, int nsets, int count, int d, int chunk, int nch,
				 float *part)
{
	int set = blockIdx.y, j = set % nsets, kv = (set / nsets) & 1, b = set / nsets / 2;
	int r0 = blockIdx.x * chunk, nr = count - r0 < chunk ? count - r0 : chunk;
	const bf16 *base = (kv ? vc : kc) + b * slot_stride + j * set_stride + (size_t)r0 * d;
	float *out = part + ((size_t)set * nch + blockIdx.x) * d;

	if (VEC) {
		for (int c = threadIdx.x * 8; c < d; c += blockDim.x * 8) {
			float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
			uint4 raw[8];

			for (int r = 0; r < nr; r += 8) {
				int m = nr - r < 8 ? nr - r : 8;

#pragma unroll
				for (int q = 0; q < 8; q++)
					if (q < m)
						raw[q] = *reinterpret_cast<const uint4 *>(base + (size_t)(r + q) * d + c);
#pragma unroll
				for (int q = 0; q < 8; q++)
					if (q < m)
						add_bf16x8(acc, raw[q]);
			}
			f8_store(out + c, acc, 0);
		}
	} else {
		for (int c = threadIdx.x; c < d; c += blockDim.x) {
			float acc = 0.0f;

			for (int r = 0; r < nr; r++)
				acc += __bfloat162float(base[(size_t)r * d + c]);
			out[c] = acc;
		}
	}
}

static int row_threads(int d, int vec)
{
	int t = vec ? (d / 8 + 31) / 32 * 32 : (d + 31) / 32 * 32;

	return t > 256 ? 256 : t;
}

extern "C" int wan_k_sink_row_parts(cudaStream_t st, const void *kc, const void *vc,
				    int64_t slot_stride, int64_t set_stride, int b, int nsets, int count,
				    int d, float *part, char *err, size_t errlen)
{
	int chunk = wan_sink_chunk(), nch = (count + chunk - 1) / chunk;
	int vec = d % 8 == 0 && slot_stride % 8 == 0 && set_stride % 8 == 0 &&
		  !(((uintptr_t)kc | (uintptr_t)vc) & 15);

	if (b < 1 || b > 8 || nsets < 1 || count < 1 || d < 1) {
		snprintf(err, errlen, "sink statistics: bad shape (%d slots, %d row sets of %d rows, width %d)",
			 b, nsets, count, d);
		return -1;
	}
	if (vec)
		k_sink_row_parts<true><<<dim3(nch, b * 2 * nsets), row_threads(d, 1), 0, st>>>(
			(const bf16 *)kc, (const bf16 *)vc, slot_stride, set_stride, nsets, count, d, chunk, nch, part);
	else
		k_sink_row_parts<false><<<dim3(nch, b * 2 * nsets), row_threads(d, 0), 0, st>>>(
			(const bf16 *)kc, (const bf16 *)vc, slot_stride, set_stride, nsets, count, d, chunk, nch, part);
	LAUNCH_CHECK("k_sink_row_parts");
	return 0;
}

/* ---- the fused pass: partial sums of the new keys and values before they are written ---- */

/* Block (chunk c, slot b), d/8 threads: the chunk's rows of the slot in rounds of R, each
 * round's keys normalized, roped and rounded exactly as the write kernel stores them. */
template <int R>
__global__ void k_sink_fresh_parts(const bf16 *qkv, int n, int d, int hd, int l, int w2,
				   const float *g_k, const float2 *rope, const int *start_frame,
				   float eps, int chunk, int nch, float *part)
{
	__shared__ float sh[R][32];
	int b = blockIdx.y, i0 = blockIdx.x * chunk, nr = n - i0 < chunk ? n - i0 : chunk;
	int c = threadIdx.x * 8, half = hd / 2, ch = hd / 6, ct = half - 2 * ch, pj0 = (c % hd) / 2;
	float acck[8] = {0, 0, 0, 0, 0, 0, 0, 0}, accv[8] = {0, 0, 0, 0, 0, 0, 0, 0}, gk[8];
	float *ok = part + ((size_t)(b * 2) * nch + blockIdx.x) * d, *ov = ok + (size_t)nch * d;

#pragma unroll
	for (int j = 0; j < 8; j++)
		gk[j] = g_k[c + j];
	for (int r0 = 0; r0 < nr; r0 += R) {
		uint4 rk[R], rv[R];
		float s[R];

#pragma unroll
		for (int r = 0; r < R; r++) {
			int i = i0 + r0 + (r0 + r < nr ? r : 0);
			const bf16 *row = qkv + ((size_t)b * n + i) * 3 * d;

			rk[r] = *reinterpret_cast<const uint4 *>(row + d + c);
			rv[r] = *reinterpret_cast<const uint4 *>(row + 2 * d + c);
			s[r] = sq8(rk[r]);
		}
		block_sum_rows<R>(s, sh);
#pragma unroll
		for (int r = 0; r < R; r++) {
			int i = i0 + r0 + r, rem = i % l;

			if (r0 + r >= nr)
				break;
			add_bf16x8(acck, norm_rope8(rk[r], s[r], gk, d, eps, pj0, half, ct, ch, rope,
					      start_frame[b] + i / l, rem / w2, rem % w2));
			add_bf16x8(accv, rv[r]);
		}
	}
	f8_store(ok + c, acck, 0);
	f8_store(ov + c, accv, 0);
}

/* The largest of 8, 4, 2, 1 rows per round whose instance launches THREADS threads (its
 * registers); maxthr caches each instance's limit. */
static int rounds_fit(const void *const kern[4], int maxthr[4], int threads)
{
	for (int i = 0; i < 4; i++) {
		if (!maxthr[i]) {
			cudaFuncAttributes a;

			maxthr[i] = cudaFuncGetAttributes(&a, kern[i]) == cudaSuccess ? a.maxThreadsPerBlock : -1;
			cudaGetLastError();
		}
		if (maxthr[i] >= threads)
			return 8 >> i;
	}
	return 0;
}

static const void *const fresh_kern[4] = { (const void *)k_sink_fresh_parts<8>,
					   (const void *)k_sink_fresh_parts<4>,
					   (const void *)k_sink_fresh_parts<2>,
					   (const void *)k_sink_fresh_parts<1> };
static int fresh_maxthr[4];

extern "C" int wan_k_sink_fresh_parts(cudaStream_t st, const void *qkv, int b, int n, int d, int hd,
				      int l, int w2, const float *g_k, const void *rope,
				      const int *start_frame, float eps, float *part, char *err,
				      size_t errlen)
{
	int chunk = wan_sink_chunk(), nch = (n + chunk - 1) / chunk, r;
	dim3 grid(nch, b);

	if (!fused_shape_ok(d, hd) || b < 1 || b > 8 || n < 1 || l < 1 || w2 < 1) {
		snprintf(err, errlen, "sink statistics: the fused pass does not take width %d, head %d", d, hd);
		return -1;
	}
	r = rounds_fit(fresh_kern, fresh_maxthr, d / 8);
	{
		/* WAN_SINK_ROUNDS = 1, 2, 4 or 8 caps the rows per round (benchmark A/B; same sums) */
		const char *e = getenv("WAN_SINK_ROUNDS");
		int cap = e ? atoi(e) : 8;

		while (r > 1 && r > cap)
			r /= 2;
	}
	switch (r) {
	case 8: k_sink_fresh_parts<8><<<grid, d / 8, 0, st>>>((const bf16 *)qkv, n, d, hd, l, w2, g_k,
			(const float2 *)rope, start_frame, eps, chunk, nch, part); break;
	case 4: k_sink_fresh_parts<4><<<grid, d / 8, 0, st>>>((const bf16 *)qkv, n, d, hd, l, w2, g_k,
			(const float2 *)rope, start_frame, eps, chunk, nch, part); break;
	case 2: k_sink_fresh_parts<2><<<grid, d / 8, 0, st>>>((const bf16 *)qkv, n, d, hd, l, w2, g_k,
			(const float2 *)rope, start_frame, eps, chunk, nch, part); break;
	case 1: k_sink_fresh_parts<1><<<grid, d / 8, 0, st>>>((const bf16 *)qkv, n, d, hd, l, w2, g_k,
			(const float2 *)rope, start_frame, eps, chunk, nch, part); break;
	default:
		snprintf(err, errlen, "sink statistics: no fused kernel launches %d threads", d / 8);
		return -1;
	}
	LAUNCH_CHECK("k_sink_fresh_parts");
	return 0;
}

/* ---- the write after the decision ---- */

extern "C" int wan_sink_fused_ok(int d, int hd)
{
	return fused_shape_ok(d, hd) && rounds_fit(fresh_kern, fresh_maxthr, d / 8) > 0;
}

/* ---- means, cosines and the decision ---- */

#define DEC_THREADS 256
#define DEC_COLS 64
#define DEC_LANES (DEC_THREADS / DEC_COLS)
#define DEC_SETS 8                      /* row sets reduced per pass */
#define DEC_VALS (2 + 4 * 64)           /* dot products per column block at 64 sink frames */

/* The decision kernel's arguments. Means rows per slot: K sink 0..ns-1, K new, V sink
 * 0..ns-1, V new. */
struct dec_args {
	struct wan_sink_reduce r;
	int d, ncb;
	struct wan_sink_ring *rings;
	const struct wan_sink_params *params;
	int rows;
	int *write_row;
	struct wan_sink_rec *rec;
};

/* Block (column block cb, slot b): sums the partials of its 64 columns into means (fixed
 * order, see DESIGN), the dot products of those columns (double), and with rings set, the
 * last block of the slot the decision. */
__global__ void __launch_bounds__(DEC_THREADS) k_sink_decide(struct dec_args a)
{
	__shared__ float lanes[DEC_SETS][DEC_LANES][DEC_COLS];
	__shared__ float mean[2 * 65][DEC_COLS];
	__shared__ double wsum[DEC_VALS][2];
	__shared__ double tot[DEC_VALS];
	__shared__ struct wan_sink_ring ring;
	__shared__ int last, replaced;
	const struct wan_sink_reduce *r = &a.r;
	int b = blockIdx.y, cb = blockIdx.x, t = threadIdx.x, col = t % DEC_COLS, q = t / DEC_COLS;
	int ns = r->ns, d = a.d, c = cb * DEC_COLS + col, rows_per_slot = 2 * (ns + 1);
	int nvals = 2 + 4 * ns, nsets = r->sink_part ? rows_per_slot : 2;
	int nchs = (r->l + r->chunk - 1) / r->chunk, nchf = (r->n + r->chunk - 1) / r->chunk;
	int *rs = (int *)&ring;
	const int *rg = a.rings ? (const int *)&a.rings[b] : NULL;

	/* the ring, for the last block (loaded early, off the critical path) */
	if (rg)
		for (int i = t; i < (int)(sizeof(ring) / sizeof(int)); i += DEC_THREADS)
			rs[i] = rg[i];
	/* means of the sets this call sums: the new K and V, and in a full call every sink frame */
	for (int s0 = 0; s0 < nsets; s0 += DEC_SETS) {
		for (int k = 0; k < DEC_SETS && s0 + k < nsets; k++) {
			int s = s0 + k, kv, j, nch;
			const float *p;
			float acc = 0.0f;

			if (nsets == 2) {
				kv = s;
				j = ns;
			} else {
				kv = s / (ns + 1);
				j = s % (ns + 1);
			}
			if (j < ns) {
				nch = nchs;
				p = r->sink_part + ((size_t)(b * 2 + kv) * ns + j) * nchs * d;
			} else {
				nch = nchf;
				p = r->fresh_part + (size_t)(b * 2 + kv) * nchf * d;
			}
			if (c < d) {
#pragma unroll 8
				for (int ci = q; ci < nch; ci += DEC_LANES)
					acc += p[(size_t)ci * d + c];
			}
			lanes[k][q][col] = acc;
		}
		__syncthreads();
		for (int k = t / DEC_COLS; k < DEC_SETS && s0 + k < nsets; k += DEC_LANES) {
			int s = s0 + k, kv = nsets == 2 ? s : s / (ns + 1), j = nsets == 2 ? ns : s % (ns + 1);
			float v = lanes[k][0][col];

			for (int i = 1; i < DEC_LANES; i++)
				v += lanes[k][i][col];
			v /= (float)(j < ns ? r->l : r->n);
			mean[kv * (ns + 1) + j][col] = v;
			if (c < d) {
				r->means[((size_t)b * rows_per_slot + kv * (ns + 1) + j) * d + c] = v;
				if (j < ns && r->keep)
					r->keep[b * r->keep_slot + kv * r->keep_kv + (size_t)j * d + c] = v;
			}
		}
		__syncthreads();
	}
	if (!rg)
		return; /* means only */
	if (nsets == 2) {
		/* the sink frames' kept means */
		for (int s = t / DEC_COLS; s < 2 * ns; s += DEC_LANES) {
			int kv = s / ns, j = s % ns;

			mean[kv * (ns + 1) + j][col] = c < d ? r->keep[b * r->keep_slot + kv * r->keep_kv +
								 (size_t)j * d + c] : 0.0f;
		}
		__syncthreads();
	}
	/* dot products of this block's columns: value v, half h (32 columns) per warp task */
	for (int task = t / 32; task < 2 * nvals; task += DEC_THREADS / 32) {
		int v = task / 2, h = task % 2, cc = h * 32 + (t & 31), x, y;
		double p;

		if (v < 2) {
			x = y = v * (ns + 1) + ns;
		} else {
			int j = (v - 2) / 4, w = (v - 2) % 4, kv = w / 2;

			x = kv * (ns + 1) + j;
			y = w % 2 ? x : kv * (ns + 1) + ns;
		}
		p = cb * DEC_COLS + cc < d ? (double)mean[x][cc] * (double)mean[y][cc] : 0.0;
		p = warp_sum_d(p);
		if ((t & 31) == 0)
			wsum[v][h] = p;
	}
	__syncthreads();
	for (int v = t; v < nvals; v += DEC_THREADS)
		r->dots[((size_t)b * a.ncb + cb) * nvals + v] = wsum[v][0] + wsum[v][1];
	__threadfence();
	__syncthreads();
	if (t == 0)
		last = atomicAdd(&r->count[b], 1) == a.ncb - 1;
	__syncthreads();
	if (!last)
		return;
	__threadfence();
	for (int v = t; v < nvals; v += DEC_THREADS) {
		double s = 0.0;

#pragma unroll 8
		for (int k = 0; k < a.ncb; k++)
			s += __ldcg(&r->dots[((size_t)b * a.ncb + k) * nvals + v]);
		tot[v] = s;
	}
	__syncthreads();
	if (t == 0) {
		const struct wan_sink_params *p = a.params;
		int best = 0, pick, wr = -1, al = 0, status;
		double amin = 0.0;

		/* a_j = (cos K + cos V) / 2; dit_kv_sink_pick: first argmin, refreshed below the threshold */
		for (int j = 0; j < ns; j++) {
			double aj = (ops_cosine_of(tot[2 + 4 * j], tot[3 + 4 * j], tot[0]) +
				     ops_cosine_of(tot[4 + 4 * j], tot[5 + 4 * j], tot[1])) / 2.0;

			if (j == 0 || aj < amin) {
				amin = aj;
				best = j;
			}
		}
		pick = amin < p->threshold ? best : -1;
		status = ring_advance(&ring, p, r->l, a.rows, ns, p->c_start[b], r->n, pick, &wr, &al);
		a.write_row[b] = status ? -1 : wr;
		a.rec[b].pick = pick;
		a.rec[b].write_row = status ? -1 : wr;
		a.rec[b].attn_len = status ? 0 : al;
		a.rec[b].status = status;
		replaced = !status && r->n == r->l && wr % r->l == 0 && wr < ns * r->l ? wr / r->l : -1;
		r->count[b] = 0;
	}
	__syncthreads();
	for (int i = t; i < (int)(sizeof(ring) / sizeof(int)); i += DEC_THREADS)
		((int *)&a.rings[b])[i] = rs[i];
	/* a write that lands on a sink frame: its kept means become the new tokens' */
	if (r->keep && replaced >= 0)
		for (int i = t; i < 2 * d; i += DEC_THREADS) {
			int kv = i / d, cc = i % d;

			r->keep[b * r->keep_slot + kv * r->keep_kv + (size_t)replaced * d + cc] =
				__ldcg(&r->means[((size_t)b * rows_per_slot + kv * (ns + 1) + ns) * d + cc]);
		}
}

static int decide_launch(cudaStream_t st, const struct wan_sink_reduce *r, int b, int d,
			 struct wan_sink_ring *rings, const struct wan_sink_params *params, int rows,
			 int *write_row, struct wan_sink_rec *rec, char *err, size_t errlen)
{
	struct dec_args a = {.r = *r, .d = d, .ncb = (d + DEC_COLS - 1) / DEC_COLS, .rings = rings,
			     .params = params, .rows = rows, .write_row = write_row, .rec = rec};

	if (b < 1 || b > 8 || r->ns < 0 || r->ns > 64 || d < 1 || r->l < 1 || r->n < 1 || !r->means ||
	    !r->fresh_part || (r->ns && !r->sink_part && !(rings && r->keep)) || r->chunk != wan_sink_chunk()) {
		snprintf(err, errlen, "sink decision: bad shape (%d slots, %d sink frames, width %d)", b, r->ns, d);
		return -1;
	}
	k_sink_decide<<<dim3(a.ncb, b), DEC_THREADS, 0, st>>>(a);
	LAUNCH_CHECK("k_sink_decide");
	return 0;
}

extern "C" int wan_k_sink_reduce_means(cudaStream_t st, const struct wan_sink_reduce *r, int b, int d,
				char *err, size_t errlen)
{
	return decide_launch(st, r, b, d, NULL, NULL, 0, NULL, NULL, err, errlen);
}

extern "C" int wan_k_sink_decide(cudaStream_t st, const struct wan_sink_reduce *r, int b, int d,
				 struct wan_sink_ring *rings, const struct wan_sink_params *params,
				 int rows, int *write_row, struct wan_sink_rec *rec, char *err,
				 size_t errlen)
{
	if (r->ns < 1 || !r->dots || !r->count || !rings || !params || !write_row || !rec || rows < r->n) {
		snprintf(err, errlen, "sink decision: %d sink frames, %d cache rows for %d new", r->ns, rows, r->n);
		return -1;
	}
	return decide_launch(st, r, b, d, rings, params, rows, write_row, rec, err, errlen);
}

/* ---- the staged copy (the unfused path) ---- */

__global__ void k_kv_write_rows(const uint4 *kn, const uint4 *vn, uint4 *kc, uint4 *vc,
				int64_t slot_stride8, int64_t count8, int d8, const int *write_row)
{
	int b = blockIdx.y, wr = write_row[b];
	const uint4 *ks = kn + b * count8, *vs = vn + b * count8;
	uint4 *kd, *vd;

	if (wr < 0)
		return;
	kd = kc + b * slot_stride8 + (int64_t)wr * d8;
	vd = vc + b * slot_stride8 + (int64_t)wr * d8;
	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count8;
	     i += (int64_t)gridDim.x * blockDim.x) {
		kd[i] = ks[i];
		vd[i] = vs[i];
	}
}

__global__ void k_kv_write_rows_1(const bf16 *kn, const bf16 *vn, bf16 *kc, bf16 *vc,
				  int64_t slot_stride, int64_t count, int d, const int *write_row)
{
	int b = blockIdx.y, wr = write_row[b];

	if (wr < 0)
		return;
	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
	     i += (int64_t)gridDim.x * blockDim.x) {
		kc[b * slot_stride + (int64_t)wr * d + i] = kn[b * count + i];
		vc[b * slot_stride + (int64_t)wr * d + i] = vn[b * count + i];
	}
}

extern "C" int wan_k_kv_write_rows(cudaStream_t st, const void *knew, const void *vnew, void *kc,
				   void *vc, int64_t slot_stride, int b, int n, int d,
				   const int *write_row, char *err, size_t errlen)
{
	int64_t count = (int64_t)n * d;
	int vec = d % 8 == 0 && slot_stride % 8 == 0 &&
		  !(((uintptr_t)knew | (uintptr_t)vnew | (uintptr_t)kc | (uintptr_t)vc) & 15);
	int64_t blocks = ((vec ? count / 8 : count) + 255) / 256;

	if (b < 1 || n < 1 || d < 1) {
		snprintf(err, errlen, "cache write: bad shape (%d slots, %d rows of %d)", b, n, d);
		return -1;
	}
	if (blocks > 1024)
		blocks = 1024;
	if (vec)
		k_kv_write_rows<<<dim3((unsigned)blocks, b), 256, 0, st>>>((const uint4 *)knew, (const uint4 *)vnew,
									  (uint4 *)kc, (uint4 *)vc, slot_stride / 8,
									  count / 8, d / 8, write_row);
	else
		k_kv_write_rows_1<<<dim3((unsigned)blocks, b), 256, 0, st>>>((const bf16 *)knew, (const bf16 *)vnew,
									    (bf16 *)kc, (bf16 *)vc, slot_stride,
									    count, d, write_row);
	LAUNCH_CHECK("k_kv_write_rows");
	return 0;
}
