/* vae_ops.c: fp32 CPU reference ops for the Wan VAE and TAEHV (see vae_ops.h). */
/* The conv loops are the CPU reference's whole cost; GCC vectorizes the Cout axpy only at -O3. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "vae_ops.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

struct conv_job {
	const struct vae_conv_shape *s;
	const float *in, *wt, *bias;
	float *out;
	int h, w, hout, wout, rows; /* rows = tout * hout */
	int r0, r1;
};

#define CONV_XT 8 /* output pixels per tile: each weight row is reused CONV_XT times */

static void conv_rows(const struct conv_job *j)
{
	const struct vae_conv_shape *s = j->s;
	int cin = s->cin, cout = s->cout, h = j->h, w = j->w, hout = j->hout, wout = j->wout;
	size_t tap = (size_t)cin * cout;

	for (int r = j->r0; r < j->r1; r++) {
		int to = r / hout, yo = r % hout;
		for (int x0 = 0; x0 < wout; x0 += CONV_XT) {
			int nx = wout - x0 < CONV_XT ? wout - x0 : CONV_XT;
			float *acc = j->out + (((size_t)to * hout + yo) * wout + x0) * cout;
			for (int x = 0; x < nx; x++) {
				if (j->bias)
					memcpy(acc + (size_t)x * cout, j->bias, sizeof(float) * cout);
				else
					memset(acc + (size_t)x * cout, 0, sizeof(float) * cout);
			}
			for (int kt = 0; kt < s->kt; kt++) {
				int ti = to * s->st + kt;
				for (int ky = 0; ky < s->kh; ky++) {
					int yi = yo * s->sh - s->pad_top + ky;
					if (yi < 0 || yi >= h)
						continue;
					const float *row = j->in + ((size_t)ti * h + yi) * w * cin;
					for (int kx = 0; kx < s->kw; kx++) {
						const float *wp = j->wt + (((size_t)kt * s->kh + ky) * s->kw + kx) * tap;
						const float *ip[CONV_XT];
						int ok[CONV_XT];
						for (int x = 0; x < nx; x++) {
							int xi = (x0 + x) * s->sw - s->pad_left + kx;
							ok[x] = xi >= 0 && xi < w;
							ip[x] = row + (size_t)(ok[x] ? xi : 0) * cin;
						}
						for (int ci = 0; ci < cin; ci++) {
							const float *restrict wr = wp + (size_t)ci * cout;
							for (int x = 0; x < nx; x++) {
								if (!ok[x])
									continue;
								float a = ip[x][ci];
								float *restrict ac = acc + (size_t)x * cout;
								for (int co = 0; co < cout; co++)
									ac[co] += a * wr[co];
							}
						}
					}
				}
			}
		}
	}
}

static void *conv_thread(void *arg)
{
	conv_rows(arg);
	return NULL;
}

static int conv_threads = -1;

void vae_set_threads(int n)
{
	conv_threads = n;
}

void vae_conv(const struct vae_conv_shape *s, const float *in, int tin, int h, int w,
	      const float *wt, const float *bias, float *out, int hout, int wout)
{
	int tout = (tin - s->kt) / s->st + 1;
	struct conv_job job = { s, in, wt, bias, out, h, w, hout, wout, tout * hout, 0, tout * hout };
	double macs = (double)job.rows * wout * s->cin * s->cout * s->kt * s->kh * s->kw;
	int nt = conv_threads;
	if (nt < 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		const char *e = getenv("HERU_VAE_THREADS");
		nt = e ? atoi(e) : (int)(n > 0 ? n : 1);
		conv_threads = nt = nt < 1 ? 1 : nt > 64 ? 64 : nt;
	}
	if (nt > job.rows)
		nt = job.rows;
	if (nt <= 1 || macs < 4e6) {
		conv_rows(&job);
		return;
	}
	/* Each output row is computed by exactly one thread in the same order: the result does
	 * not depend on the thread count. */
	pthread_t tid[64];
	struct conv_job jobs[64];
	int running[64] = { 0 };
	for (int i = 0; i < nt; i++) {
		jobs[i] = job;
		jobs[i].r0 = (int)((int64_t)job.rows * i / nt);
		jobs[i].r1 = (int)((int64_t)job.rows * (i + 1) / nt);
		if (i > 0)
			running[i] = pthread_create(&tid[i], NULL, conv_thread, &jobs[i]) == 0;
	}
	conv_rows(&jobs[0]);
	for (int i = 1; i < nt; i++) {
		if (running[i])
			pthread_join(tid[i], NULL);
		else
			conv_rows(&jobs[i]); /* the thread could not start: do its rows here */
	}
}

void vae_repack_conv(const float *src, float *dst, int cout, int cin, int kt, int kh, int kw)
{
	for (int co = 0; co < cout; co++)
		for (int ci = 0; ci < cin; ci++)
			for (int a = 0; a < kt; a++)
				for (int b = 0; b < kh; b++)
					for (int c = 0; c < kw; c++) {
						size_t si = ((((size_t)co * cin + ci) * kt + a) * kh + b) * kw + c;
						size_t di = ((((size_t)a * kh + b) * kw + c) * cin + ci) * cout + co;
						dst[di] = src[si];
					}
}

static float silu1(float v)
{
	return v / (1.0f + expf(-v));
}

void vae_rms_norm(float *x, size_t n, int c, const float *gamma, int silu)
{
	float scale = sqrtf((float)c);
	for (size_t i = 0; i < n; i++) {
		float *p = x + i * (size_t)c;
		double ss = 0.0;
		for (int k = 0; k < c; k++)
			ss += (double)p[k] * p[k];
		double nrm = sqrt(ss);
		float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12)) * scale;
		for (int k = 0; k < c; k++) {
			float v = p[k] * inv * gamma[k];
			p[k] = silu ? silu1(v) : v;
		}
	}
}

void vae_upsample2x(const float *in, int t, int h, int w, int c, float *out)
{
	int h2 = 2 * h, w2 = 2 * w;
	for (int f = 0; f < t; f++)
		for (int y = 0; y < h2; y++)
			for (int x = 0; x < w2; x++)
				memcpy(out + (((size_t)f * h2 + y) * w2 + x) * c,
				       in + (((size_t)f * h + y / 2) * w + x / 2) * c, sizeof(float) * c);
}

int vae_attention(float *x, int t, int hw, int c, const float *gamma, const float *wqkv,
		  const float *bqkv, const float *wproj, const float *bproj)
{
	size_t n = (size_t)hw;
	float *xn = malloc(sizeof(float) * n * c);
	float *qkv = malloc(sizeof(float) * n * 3 * c);
	float *o = malloc(sizeof(float) * n * c);
	float *p = malloc(sizeof(float) * n);
	float *pr = malloc(sizeof(float) * n * c);
	int rc = -1;
	if (!xn || !qkv || !o || !p || !pr)
		goto out;
	struct vae_conv_shape s1 = { .cin = c, .cout = 3 * c, .kt = 1, .kh = 1, .kw = 1,
				     .st = 1, .sh = 1, .sw = 1 };
	struct vae_conv_shape s2 = s1;
	s2.cout = c;
	float scale = 1.0f / sqrtf((float)c);
	for (int f = 0; f < t; f++) {
		float *xf = x + (size_t)f * n * c;
		memcpy(xn, xf, sizeof(float) * n * c);
		vae_rms_norm(xn, n, c, gamma, 0);
		vae_conv(&s1, xn, 1, 1, hw, wqkv, bqkv, qkv, 1, hw);
		for (size_t i = 0; i < n; i++) {
			const float *q = qkv + i * 3 * c;
			float mx = -INFINITY;
			for (size_t j = 0; j < n; j++) {
				const float *k = qkv + j * 3 * c + c;
				float d = 0.0f;
				for (int e = 0; e < c; e++)
					d += q[e] * k[e];
				p[j] = d * scale;
				if (p[j] > mx)
					mx = p[j];
			}
			double sum = 0.0;
			for (size_t j = 0; j < n; j++) {
				p[j] = expf(p[j] - mx);
				sum += p[j];
			}
			float *oi = o + i * c;
			memset(oi, 0, sizeof(float) * c);
			for (size_t j = 0; j < n; j++) {
				const float *v = qkv + j * 3 * c + 2 * c;
				float pj = (float)(p[j] / sum);
				for (int e = 0; e < c; e++)
					oi[e] += pj * v[e];
			}
		}
		vae_conv(&s2, o, 1, 1, hw, wproj, bproj, pr, 1, hw);
		vae_add(xf, pr, n * c);
	}
	rc = 0;
out:
	free(xn);
	free(qkv);
	free(o);
	free(p);
	free(pr);
	return rc;
}

void vae_silu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = silu1(x[i]);
}

void vae_relu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void vae_add(float *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] += src[i];
}

void vae_nchw_to_nhwc(const float *in, int t, int c, int h, int w, float *out)
{
	size_t hw = (size_t)h * w;
	for (int f = 0; f < t; f++)
		for (int k = 0; k < c; k++)
			for (size_t i = 0; i < hw; i++)
				out[((size_t)f * hw + i) * c + k] = in[((size_t)f * c + k) * hw + i];
}

void vae_nhwc_to_nchw(const float *in, int t, int h, int w, int c, float *out)
{
	size_t hw = (size_t)h * w;
	for (int f = 0; f < t; f++)
		for (int k = 0; k < c; k++)
			for (size_t i = 0; i < hw; i++)
				out[((size_t)f * c + k) * hw + i] = in[((size_t)f * hw + i) * c + k];
}
