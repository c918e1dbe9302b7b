/* sink_kernels.cu: the adaptive-sink decision and the cache write it steers (see
 * sink_kernels.h). The ring update is dit_kv.c's kv_plan + kv_commit, line for line, written
 * once for host and device (ring_advance); the host copy exists for tests. */
#include "plugins/wan/cuda/sink_kernels.h"
#include "plugins/wan/cuda/cuda_check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SINK_THREADS 256

#define LAUNCH_CHECK(name) do { cudaError_t e_ = cudaGetLastError(); if (e_ != cudaSuccess) \
	return wan_cuda_fail(err, errlen, __FILE__, __LINE__, name, cudaGetErrorString(e_)); } while (0)

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

/* Four block-wide double sums in a fixed order (deterministic: each warp's butterfly as seen
 * by lane 0, then the warps in order); every thread gets them. */
static __device__ void block_sum4(double v[4], double (*sh)[SINK_THREADS / 32])
{
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5;

	for (int q = 0; q < 4; q++)
		for (int o = 16; o > 0; o >>= 1)
			v[q] += __shfl_xor_sync(0xffffffffu, v[q], o);
	if (lane == 0)
		for (int q = 0; q < 4; q++)
			sh[q][w] = v[q];
	__syncthreads();
	for (int q = 0; q < 4; q++) {
		double s = 0.0;

		for (int i = 0; i < SINK_THREADS / 32; i++)
			s += sh[q][i];
		v[q] = s;
	}
	__syncthreads();
}

/* ops_cosine's clamp and division. */
static __device__ double cosine_of(double ab, double aa, double bb)
{
	double na = sqrt(aa), nb = sqrt(bb);

	if (na < 1e-8)
		na = 1e-8;
	if (nb < 1e-8)
		nb = 1e-8;
	return ab / (na * nb);
}

__global__ void __launch_bounds__(SINK_THREADS)
k_sink_decide(struct wan_sink_means ms, int ns, int d, struct wan_sink_ring *rings,
	      const struct wan_sink_params *p, int l, int rows, int n_new, int *write_row,
	      struct wan_sink_rec *rec)
{
	__shared__ double red[4][SINK_THREADS / 32];
	__shared__ double a[64];
	__shared__ struct wan_sink_ring r;
	__shared__ int replaced;
	int b = blockIdx.x, t = threadIdx.x;
	const float *sk = ms.sink + b * ms.sink_slot, *sv = sk + ms.sink_kv;
	const float *kn = ms.fresh + b * ms.fresh_slot, *vn = kn + ms.fresh_kv;
	int *rs = (int *)&r, *rg = (int *)&rings[b], words = (int)(sizeof(r) / sizeof(int));
	double v[4] = {0, 0, 0, 0}, bk, bv;

	for (int i = t; i < words; i += SINK_THREADS)
		rs[i] = rg[i];
	for (int c = t; c < d; c += SINK_THREADS) {
		v[0] += (double)kn[c] * kn[c];
		v[1] += (double)vn[c] * vn[c];
	}
	block_sum4(v, red);
	bk = v[0];
	bv = v[1];
	for (int j = 0; j < ns; j++) {
		const float *kj = sk + (size_t)j * d, *vj = sv + (size_t)j * d;

		v[0] = v[1] = v[2] = v[3] = 0.0;
		for (int c = t; c < d; c += SINK_THREADS) {
			v[0] += (double)kj[c] * kn[c];
			v[1] += (double)kj[c] * kj[c];
			v[2] += (double)vj[c] * vn[c];
			v[3] += (double)vj[c] * vj[c];
		}
		block_sum4(v, red);
		if (t == 0)
			a[j] = (cosine_of(v[0], v[1], bk) + cosine_of(v[2], v[3], bv)) / 2.0;
	}
	__syncthreads();
	if (t == 0) {
		int best = 0, pick, wr = -1, al = 0, status;

		/* dit_kv_sink_pick: first argmin, refreshed when below the threshold */
		for (int j = 1; j < ns; j++)
			if (a[j] < a[best])
				best = j;
		pick = a[best] < p->threshold ? best : -1;
		status = ring_advance(&r, p, l, rows, ns, p->c_start[b], n_new, pick, &wr, &al);
		write_row[b] = status ? -1 : wr;
		rec[b].pick = pick;
		rec[b].write_row = status ? -1 : wr;
		rec[b].attn_len = status ? 0 : al;
		rec[b].status = status;
		replaced = !status && n_new == l && wr % l == 0 && wr < ns * l ? wr / l : -1;
	}
	__syncthreads();
	for (int i = t; i < words; i += SINK_THREADS)
		rg[i] = rs[i];
	if (ms.keep) {
		float *kk = ms.keep + b * ms.keep_slot, *kv = kk + ms.keep_kv;

		if (ms.keep != ms.sink)
			for (int i = t; i < ns * d; i += SINK_THREADS) {
				kk[i] = sk[i];
				kv[i] = sv[i];
			}
		__syncthreads();
		if (replaced >= 0)
			for (int c = t; c < d; c += SINK_THREADS) {
				kk[(size_t)replaced * d + c] = kn[c];
				kv[(size_t)replaced * d + c] = vn[c];
			}
	}
}

extern "C" int wan_k_sink_decide(cudaStream_t st, struct wan_sink_means ms, int b, int ns, int d,
				 struct wan_sink_ring *rings, const struct wan_sink_params *params,
				 int l, int rows, int n_new, int *write_row, struct wan_sink_rec *rec,
				 char *err, size_t errlen)
{
	if (b < 1 || b > 8 || ns < 1 || ns > 64 || d < 1 || l < 1 || rows < l || n_new < 1 || !ms.sink ||
	    !ms.fresh) {
		snprintf(err, errlen, "sink decision: bad shape (%d slots, %d sink frames, width %d)", b, ns, d);
		return -1;
	}
	k_sink_decide<<<b, SINK_THREADS, 0, st>>>(ms, ns, d, rings, params, l, rows, n_new, write_row, rec);
	LAUNCH_CHECK("k_sink_decide");
	return 0;
}

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

extern "C" int wan_k_kv_write_rows(cudaStream_t st, const void *knew, const void *vnew, void *kc,
				   void *vc, int64_t slot_stride, int b, int n, int d,
				   const int *write_row, char *err, size_t errlen)
{
	int64_t count8 = (int64_t)n * d / 8, blocks = (count8 + 255) / 256;

	if (d % 8 || slot_stride % 8 || b < 1 || n < 1 ||
	    (((uintptr_t)knew | (uintptr_t)vnew | (uintptr_t)kc | (uintptr_t)vc) & 15)) {
		snprintf(err, errlen, "cache write: width %d and slot stride must be multiples of 8, buffers 16-byte aligned", d);
		return -1;
	}
	if (blocks > 1024)
		blocks = 1024;
	k_kv_write_rows<<<dim3((unsigned)blocks, b), 256, 0, st>>>((const uint4 *)knew, (const uint4 *)vnew,
								  (uint4 *)kc, (uint4 *)vc, slot_stride / 8,
								  count8, d / 8, write_row);
	LAUNCH_CHECK("k_kv_write_rows");
	return 0;
}
