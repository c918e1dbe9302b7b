/* t5_ref.c: umT5 encoder forward pass, fp32 C reference (spec §6).
 *
 * DESIGN
 *   x = token_embedding[ids]                                  (no scaling)
 *   per layer:  h = RMS(x)·norm1;  q,k,v = h·Wᵀ
 *               logits = q·kᵀ + bias[bucket(j-i)][head]        (no 1/sqrt(d)); padded keys masked
 *               x += softmax(logits)·v · Woᵀ
 *               h = RMS(x)·norm2;  x += (h·fc1ᵀ ⊙ gelu_tanh(h·gateᵀ)) · fc2ᵀ
 *   out = RMS(x)·norm, rows past the real tokens zeroed.
 * RMS statistics and softmax sums are taken in double (upstream: fp32), which only makes the
 * reference closer to exact. A masked key gets logit -FLT_MAX upstream, whose exp underflows
 * to exactly 0 next to any real key, so masked keys are skipped here. GEMMs are split over
 * output columns and attention over heads, across THREADS pthreads. */
#include "t5_ref.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wan_err.h"

/* ---- a tiny parallel-for ---- */

struct par {
	void (*fn)(void *ctx, int lo, int hi);
	void *ctx;
	int lo, hi;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	p->fn(p->ctx, p->lo, p->hi);
	return NULL;
}

/* Runs FN over [0, N) in THREADS contiguous slices (inline when one thread or a start fails). */
static void parallel_for(int n, int threads, void (*fn)(void *, int, int), void *ctx)
{
	struct par jobs[64];
	pthread_t tid[64];
	bool started[64] = {false};
	if (threads > 64)
		threads = 64;
	if (threads > n)
		threads = n;
	if (threads <= 1) {
		fn(ctx, 0, n);
		return;
	}
	for (int t = 0; t < threads; t++) {
		jobs[t] = (struct par){fn, ctx, (int)((int64_t)n * t / threads), (int)((int64_t)n * (t + 1) / threads)};
		if (t > 0)
			started[t] = pthread_create(&tid[t], NULL, par_main, &jobs[t]) == 0;
	}
	fn(ctx, jobs[0].lo, jobs[0].hi);
	for (int t = 1; t < threads; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		else
			fn(ctx, jobs[t].lo, jobs[t].hi);
	}
}

/* ---- GEMM: y[R,N] = x[R,K] · w[N,K]ᵀ ---- */

struct mm {
	const float *x, *w;
	float *y;
	int R, K, N;
};

static float dot(const float *a, const float *b, int k)
{
	float s[8] = {0};
	int i = 0;
	for (; i + 8 <= k; i += 8)
		for (int j = 0; j < 8; j++)
			s[j] += a[i + j] * b[i + j];
	for (; i < k; i++)
		s[0] += a[i] * b[i];
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static void mm_slice(void *ctx, int lo, int hi)
{
	const struct mm *m = ctx;
	for (int r0 = 0; r0 < m->R; r0 += 16) { /* 16 rows of x stay in cache across columns */
		int r1 = r0 + 16 < m->R ? r0 + 16 : m->R;
		for (int n = lo; n < hi; n++) {
			const float *wn = m->w + (size_t)n * m->K;
			for (int r = r0; r < r1; r++)
				m->y[(size_t)r * m->N + n] = dot(m->x + (size_t)r * m->K, wn, m->K);
		}
	}
}

static void matmul(const float *x, int R, int K, const float *w, int N, float *y, int threads)
{
	struct mm m = {x, w, y, R, K, N};
	parallel_for(N, threads, mm_slice, &m);
}

/* ---- pieces ---- */

static void rms_norm(const float *x, int R, int d, const float *wt, double eps, float *y)
{
	for (int r = 0; r < R; r++) {
		const float *xr = x + (size_t)r * d;
		double ss = 0;
		for (int i = 0; i < d; i++)
			ss += (double)xr[i] * xr[i];
		float inv = (float)(1.0 / sqrt(ss / d + eps));
		for (int i = 0; i < d; i++)
			y[(size_t)r * d + i] = wt[i] * (xr[i] * inv);
	}
}

static float gelu_tanh(float x)
{
	return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

struct attn {
	const float *q, *k, *v; /* [R, da] (k, v: [nk, da]) */
	float *o;               /* [R, da] */
	const float *pos;       /* [num_buckets, heads] */
	const int *keys;        /* the unmasked key positions */
	int nkeys, R, da, hd, heads, num_buckets, max_dist;
	const int *bucket;      /* [2*len-1] bucket of rel = j - i, offset len-1 */
	int len;
	float *scratch;         /* [heads, len] */
};

static void attn_slice(void *ctx, int lo, int hi)
{
	const struct attn *a = ctx;
	for (int h = lo; h < hi; h++) {
		float *p = a->scratch + (size_t)h * a->len;
		for (int i = 0; i < a->R; i++) {
			const float *qi = a->q + (size_t)i * a->da + h * a->hd;
			float mx = -FLT_MAX;
			for (int t = 0; t < a->nkeys; t++) {
				int j = a->keys[t];
				float l = dot(qi, a->k + (size_t)j * a->da + h * a->hd, a->hd) +
					  a->pos[a->bucket[j - i + a->len - 1] * a->heads + h];
				p[t] = l;
				mx = l > mx ? l : mx;
			}
			double sum = 0;
			for (int t = 0; t < a->nkeys; t++) {
				p[t] = expf(p[t] - mx);
				sum += p[t];
			}
			float inv = (float)(1.0 / sum);
			float *oi = a->o + (size_t)i * a->da + h * a->hd;
			for (int c = 0; c < a->hd; c++)
				oi[c] = 0;
			for (int t = 0; t < a->nkeys; t++) {
				const float *vj = a->v + (size_t)a->keys[t] * a->da + h * a->hd;
				float wgt = p[t] * inv;
				for (int c = 0; c < a->hd; c++)
					oi[c] += wgt * vj[c];
			}
		}
	}
}

static int to_f32(const struct wt_tensor *t, float *dst, char *err, size_t errlen)
{
	return wt_tensor_to_f32(t, dst, err, errlen);
}

int t5_encode_ref(const struct t5_weights *w, const int64_t *ids, const int64_t *mask, int len, int threads,
		  float *out, char *err, size_t errlen)
{
	const struct t5_config *c = &w->cfg;
	const int d = c->dim, da = c->dim_attn, ff = c->dim_ffn;
	size_t big = (size_t)d * (da > ff ? da : ff);
	float *x = NULL, *h = NULL, *q = NULL, *k = NULL, *v = NULL, *o = NULL, *a = NULL, *g = NULL;
	float *wbuf = NULL, *nw = NULL, *pos = NULL, *tmp = NULL;
	int *keys = NULL, *bucket = NULL;
	float *scratch = NULL;
	int count = 0, nkeys = 0, R, rc = -1;
	bool prefix = true;

	if (len < 1 || len > 1 << 16) {
		wt_seterr(err, errlen, "sequence length %d is out of range [1, 65536]", len);
		return -1;
	}
	for (int i = 0; i < len; i++) {
		if (ids[i] < 0 || ids[i] >= c->vocab_size) {
			wt_seterr(err, errlen, "token id %lld at position %d is out of range [0, %d)", (long long)ids[i], i,
				c->vocab_size);
			return -1;
		}
		count += mask[i] > 0;
	}
	for (int i = 0; i < len; i++)
		prefix &= (mask[i] != 0) == (i < count);
	memset(out, 0, sizeof(float) * (size_t)len * d);
	if (count == 0)
		return 0;
	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}
	R = prefix ? count : len;
	x = malloc(sizeof(float) * (size_t)R * d);
	h = malloc(sizeof(float) * (size_t)R * d);
	tmp = malloc(sizeof(float) * (size_t)R * d);
	q = malloc(sizeof(float) * (size_t)R * da);
	k = malloc(sizeof(float) * (size_t)R * da);
	v = malloc(sizeof(float) * (size_t)R * da);
	o = malloc(sizeof(float) * (size_t)R * da);
	a = malloc(sizeof(float) * (size_t)R * ff);
	g = malloc(sizeof(float) * (size_t)R * ff);
	wbuf = malloc(sizeof(float) * big);
	nw = malloc(sizeof(float) * (size_t)d);
	pos = malloc(sizeof(float) * (size_t)c->num_buckets * c->num_heads);
	keys = malloc(sizeof(int) * (size_t)len);
	bucket = malloc(sizeof(int) * (size_t)(2 * len - 1));
	scratch = malloc(sizeof(float) * (size_t)len * c->num_heads);
	if (!scratch || !x || !h || !tmp || !q || !k || !v || !o || !a || !g || !wbuf || !nw || !pos || !keys || !bucket) {
		wt_seterr(err, errlen, "out of memory for the T5 reference (%d tokens, dim %d)", len, d);
		goto out;
	}
	for (int j = 0; j < R; j++)
		if (mask[j] != 0)
			keys[nkeys++] = j;
	for (int r = -(len - 1); r <= len - 1; r++)
		bucket[r + len - 1] = t5_rel_bucket(r, c->num_buckets, c->max_dist);
	for (int i = 0; i < R; i++)
		if (t5_tensor_row_f32(w->embedding, ids[i], x + (size_t)i * d)) {
			wt_seterr(err, errlen, "cannot read embedding row %lld", (long long)ids[i]);
			goto out;
		}
	for (int l = 0; l < c->num_layers; l++) {
		const struct t5_layer_tensors *L = &w->layers[l];
		if (to_f32(L->norm1, nw, err, errlen) || to_f32(L->pos, pos, err, errlen))
			goto out;
		rms_norm(x, R, d, nw, c->eps, h);
		if (to_f32(L->q, wbuf, err, errlen))
			goto out;
		matmul(h, R, d, wbuf, da, q, threads);
		if (to_f32(L->k, wbuf, err, errlen))
			goto out;
		matmul(h, R, d, wbuf, da, k, threads);
		if (to_f32(L->v, wbuf, err, errlen))
			goto out;
		matmul(h, R, d, wbuf, da, v, threads);
		struct attn at = {q, k, v, o, pos, keys, nkeys, R, da, c->head_dim, c->num_heads, c->num_buckets,
				  c->max_dist, bucket, len, scratch};
		parallel_for(c->num_heads, threads, attn_slice, &at);
		if (to_f32(L->o, wbuf, err, errlen))
			goto out;
		matmul(o, R, da, wbuf, d, tmp, threads);
		for (size_t i = 0; i < (size_t)R * d; i++)
			x[i] += tmp[i];
		if (to_f32(L->norm2, nw, err, errlen))
			goto out;
		rms_norm(x, R, d, nw, c->eps, h);
		if (to_f32(L->gate, wbuf, err, errlen))
			goto out;
		matmul(h, R, d, wbuf, ff, g, threads);
		if (to_f32(L->fc1, wbuf, err, errlen))
			goto out;
		matmul(h, R, d, wbuf, ff, a, threads);
		for (size_t i = 0; i < (size_t)R * ff; i++)
			a[i] *= gelu_tanh(g[i]);
		if (to_f32(L->fc2, wbuf, err, errlen))
			goto out;
		matmul(a, R, ff, wbuf, d, tmp, threads);
		for (size_t i = 0; i < (size_t)R * d; i++)
			x[i] += tmp[i];
	}
	if (to_f32(w->norm, nw, err, errlen))
		goto out;
	rms_norm(x, count < R ? count : R, d, nw, c->eps, out);
	rc = 0;
out:
	free(x);
	free(h);
	free(tmp);
	free(q);
	free(k);
	free(v);
	free(o);
	free(a);
	free(g);
	free(wbuf);
	free(nw);
	free(pos);
	free(keys);
	free(bucket);
	free(scratch);
	return rc;
}
