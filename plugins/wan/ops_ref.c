/* ops_ref.c: plain-C fp32 reference of the Wan2.1 DiT ops (see ops_ref.h for the math).
 *
 * Written to be read: one loop nest per op. The two hot ops are blocked for the cache and use
 * eight explicit partial sums so that the compiler vectorizes the inner dot products without
 * -ffast-math (the summation order is fixed, so results do not depend on the compiler). */
#include "ops_ref.h"

#include <math.h>
#include <string.h>

/* Dot product of two contiguous n-vectors with 8 partial sums (vectorizable, fixed order). */
static float dot8(const float *a, const float *b, int n)
{
	float acc[8] = { 0 };
	int k = 0;
	for (; k + 8 <= n; k += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[k + j] * b[k + j];
	float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
	for (; k < n; k++)
		s += a[k] * b[k];
	return s;
}

/* acc[0..n) += p * v[0..n), in fixed blocks of 8 so that -O2 vectorizes it. */
static void axpy8(float *acc, float p, const float *v, int n)
{
	int k = 0;
	for (; k + 8 <= n; k += 8)
		for (int j = 0; j < 8; j++)
			acc[k + j] += p * v[k + j];
	for (; k < n; k++)
		acc[k] += p * v[k];
}

/* x[0..n) *= a, blocked like axpy8. */
static void scale8(float *x, float a, int n)
{
	int k = 0;
	for (; k + 8 <= n; k += 8)
		for (int j = 0; j < 8; j++)
			x[k + j] *= a;
	for (; k < n; k++)
		x[k] *= a;
}

/* Rows of W per tile: a tile (LIN_TILE x in floats) stays in L2 while every row of x passes. */
#define LIN_TILE 64

void ops_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out)
{
	for (int o0 = 0; o0 < out; o0 += LIN_TILE) {
		int o1 = o0 + LIN_TILE < out ? o0 + LIN_TILE : out;
		for (int i = 0; i < n; i++) {
			const float *xr = x + (size_t)i * in;
			float *yr = y + (size_t)i * out;
			for (int o = o0; o < o1; o++)
				yr[o] = dot8(xr, w + (size_t)o * in, in) + (b ? b[o] : 0.0f);
		}
	}
}

/* Mean and 1/sqrt(var + eps) of one row, in float64. */
static void row_stats(const float *x, int d, double eps, double *mean, double *rstd)
{
	double s = 0.0, s2 = 0.0;
	for (int j = 0; j < d; j++)
		s += x[j];
	double m = s / d;
	for (int j = 0; j < d; j++) {
		double t = x[j] - m;
		s2 += t * t;
	}
	*mean = m;
	*rstd = 1.0 / sqrt(s2 / d + eps);
}

void ops_layer_norm(float *y, const float *x, const float *gamma, const float *beta, int n, int d,
		    float eps)
{
	for (int i = 0; i < n; i++) {
		const float *xr = x + (size_t)i * d;
		float *yr = y + (size_t)i * d;
		double m, r;
		row_stats(xr, d, eps, &m, &r);
		for (int j = 0; j < d; j++) {
			float v = (float)((xr[j] - m) * r);
			if (gamma)
				v = v * gamma[j] + (beta ? beta[j] : 0.0f);
			yr[j] = v;
		}
	}
}

void ops_modulate(float *y, const float *x, const float *shift, const float *scale,
		  size_t mod_stride, int frames, int tokens_per_frame, int d, float eps)
{
	for (int f = 0; f < frames; f++) {
		const float *sh = shift + (size_t)f * mod_stride;
		const float *sc = scale + (size_t)f * mod_stride;
		for (int i = 0; i < tokens_per_frame; i++) {
			size_t row = (size_t)f * tokens_per_frame + i;
			const float *xr = x + row * d;
			float *yr = y + row * d;
			double m, r;
			row_stats(xr, d, eps, &m, &r);
			for (int j = 0; j < d; j++)
				yr[j] = (float)((xr[j] - m) * r) * (1.0f + sc[j]) + sh[j];
		}
	}
}

void ops_rms_norm(float *y, const float *x, const float *w, int n, int d, float eps)
{
	for (int i = 0; i < n; i++) {
		const float *xr = x + (size_t)i * d;
		float *yr = y + (size_t)i * d;
		double s2 = 0.0;
		for (int j = 0; j < d; j++)
			s2 += (double)xr[j] * xr[j];
		double r = 1.0 / sqrt(s2 / d + eps);
		for (int j = 0; j < d; j++)
			yr[j] = (float)(xr[j] * r) * w[j];
	}
}

void ops_rope_split(int head_dim, int pairs[3])
{
	int c = head_dim / 2;
	pairs[0] = c - 2 * (c / 3);
	pairs[1] = c / 3;
	pairs[2] = c / 3;
}

#define ROPE_MAX_PAIRS 128

void ops_rope(float *x, int frames, int gh, int gw, int heads, int head_dim, int start_frame)
{
	int pairs[3];
	ops_rope_split(head_dim, pairs);
	int c = head_dim / 2;
	if (c > ROPE_MAX_PAIRS)
		return; /* head_dim <= 256 is documented; nothing sane to do beyond */
	/* Inverse frequencies per pair: axis a's pair k uses theta^(-2k / (2*p_a)), float64 as
	 * rope_params builds them (1 / 10000^(arange(0, dim, 2) / dim)). */
	double inv[ROPE_MAX_PAIRS];
	int axis[ROPE_MAX_PAIRS];
	for (int a = 0, k0 = 0; a < 3; k0 += pairs[a], a++)
		for (int k = 0; k < pairs[a]; k++) {
			inv[k0 + k] = 1.0 / pow(10000.0, (double)(2 * k) / (double)(2 * pairs[a]));
			axis[k0 + k] = a;
		}
	double cs[ROPE_MAX_PAIRS], sn[ROPE_MAX_PAIRS];
	size_t tok = 0;
	for (int f = 0; f < frames; f++)
		for (int yy = 0; yy < gh; yy++)
			for (int xx = 0; xx < gw; xx++, tok++) {
				double pos[3] = { (double)(start_frame + f), (double)yy, (double)xx };
				for (int k = 0; k < c; k++) {
					double ang = pos[axis[k]] * inv[k];
					cs[k] = cos(ang);
					sn[k] = sin(ang);
				}
				float *row = x + tok * (size_t)heads * head_dim;
				for (int h = 0; h < heads; h++) {
					float *u = row + (size_t)h * head_dim;
					for (int k = 0; k < c; k++) {
						double re = u[2 * k], im = u[2 * k + 1];
						u[2 * k] = (float)(re * cs[k] - im * sn[k]);
						u[2 * k + 1] = (float)(re * sn[k] + im * cs[k]);
					}
				}
			}
}

/* Attention tiles: QB queries of one head against KB keys at a time. */
#define ATT_QB 8
#define ATT_KB 32
#define ATT_MAX_HD 256

void ops_attention(float *o, const float *q, const float *k, const float *v, int n, int m,
		   int heads, int head_dim, float scale)
{
	size_t rs = (size_t)heads * head_dim; /* row stride of q, k, v, o */
	if (head_dim > ATT_MAX_HD)
		return;
	for (int h = 0; h < heads; h++) {
		for (int i0 = 0; i0 < n; i0 += ATT_QB) {
			int qn = n - i0 < ATT_QB ? n - i0 : ATT_QB;
			float acc[ATT_QB][ATT_MAX_HD];
			float mx[ATT_QB], sum[ATT_QB];
			for (int a = 0; a < qn; a++) {
				mx[a] = -INFINITY;
				sum[a] = 0.0f;
				memset(acc[a], 0, sizeof(float) * head_dim);
			}
			for (int j0 = 0; j0 < m; j0 += ATT_KB) {
				int kn = m - j0 < ATT_KB ? m - j0 : ATT_KB;
				float s[ATT_QB][ATT_KB];
				for (int a = 0; a < qn; a++) {
					const float *qa = q + (size_t)(i0 + a) * rs + (size_t)h * head_dim;
					float bm = -INFINITY;
					for (int j = 0; j < kn; j++) {
						const float *kj = k + (size_t)(j0 + j) * rs + (size_t)h * head_dim;
						s[a][j] = dot8(qa, kj, head_dim) * scale;
						if (s[a][j] > bm)
							bm = s[a][j];
					}
					/* online softmax: rescale what was accumulated to the new max */
					float nm = bm > mx[a] ? bm : mx[a];
					float corr = expf(mx[a] - nm); /* exp(-inf) = 0 on the first tile */
					sum[a] *= corr;
					scale8(acc[a], corr, head_dim);
					mx[a] = nm;
					for (int j = 0; j < kn; j++) {
						float p = expf(s[a][j] - nm);
						const float *vj = v + (size_t)(j0 + j) * rs + (size_t)h * head_dim;
						sum[a] += p;
						axpy8(acc[a], p, vj, head_dim);
					}
				}
			}
			for (int a = 0; a < qn; a++) {
				float *oa = o + (size_t)(i0 + a) * rs + (size_t)h * head_dim;
				float inv = 1.0f / sum[a];
				for (int d = 0; d < head_dim; d++)
					oa[d] = acc[a][d] * inv;
			}
		}
	}
}

void ops_gelu_tanh(float *x, size_t n)
{
	const double c = 0.7978845608028654; /* sqrt(2/pi) */
	for (size_t i = 0; i < n; i++) {
		double u = x[i];
		x[i] = (float)(0.5 * u * (1.0 + tanh(c * (u + 0.044715 * u * u * u))));
	}
}

void ops_silu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double u = x[i];
		x[i] = (float)(u / (1.0 + exp(-u)));
	}
}

void ops_gated_add(float *x, const float *y, const float *gate, size_t mod_stride, int frames,
		   int tokens_per_frame, int d)
{
	for (int f = 0; f < frames; f++) {
		const float *g = gate + (size_t)f * mod_stride;
		for (int i = 0; i < tokens_per_frame; i++) {
			size_t row = ((size_t)f * tokens_per_frame + i) * d;
			for (int j = 0; j < d; j++)
				x[row + j] += y[row + j] * g[j];
		}
	}
}

void ops_add(float *x, const float *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] += a[i];
}

void ops_sin_embedding(float *out, const int64_t *t, int n, int dim)
{
	int half = dim / 2;
	for (int i = 0; i < n; i++) {
		double pos = (double)t[i];
		float *r = out + (size_t)i * dim;
		for (int k = 0; k < half; k++) {
			double a = pos * pow(10000.0, -(double)k / half);
			r[k] = (float)cos(a);
			r[half + k] = (float)sin(a);
		}
	}
}

#define PE_MAX_C 64

void ops_patch_embed(float *tokens, const float *z, const float *w, const float *b, int c,
		     int frames, int h, int w_, int d)
{
	int gh = h / 2, gw = w_ / 2, kin = c * 4;
	float vec[PE_MAX_C * 4];
	size_t plane = (size_t)h * w_, chan = (size_t)frames * plane;
	if (c > PE_MAX_C)
		return;
	size_t tok = 0;
	for (int f = 0; f < frames; f++)
		for (int yy = 0; yy < gh; yy++)
			for (int xx = 0; xx < gw; xx++, tok++) {
				for (int ci = 0; ci < c; ci++)
					for (int dy = 0; dy < 2; dy++)
						for (int dx = 0; dx < 2; dx++)
							vec[ci * 4 + dy * 2 + dx] =
								z[ci * chan + f * plane +
								  (size_t)(2 * yy + dy) * w_ + 2 * xx + dx];
				float *r = tokens + tok * d;
				for (int o = 0; o < d; o++)
					r[o] = dot8(vec, w + (size_t)o * kin, kin) + b[o];
			}
}

void ops_unpatchify(float *z, const float *o, int c, int frames, int h, int w)
{
	int gh = h / 2, gw = w / 2;
	size_t plane = (size_t)h * w, chan = (size_t)frames * plane;
	size_t tok = 0;
	for (int f = 0; f < frames; f++)
		for (int yy = 0; yy < gh; yy++)
			for (int xx = 0; xx < gw; xx++, tok++) {
				const float *r = o + tok * 4 * c;
				for (int dy = 0; dy < 2; dy++)
					for (int dx = 0; dx < 2; dx++)
						for (int ci = 0; ci < c; ci++)
							z[ci * chan + f * plane + (size_t)(2 * yy + dy) * w +
							  2 * xx + dx] = r[(dy * 2 + dx) * c + ci];
			}
}

void ops_flow_to_x0(float *x0, const float *xt, const float *flow, size_t n, double sigma)
{
	for (size_t i = 0; i < n; i++)
		x0[i] = (float)((double)xt[i] - sigma * (double)flow[i]);
}

void ops_add_noise(float *out, const float *x, const float *noise, size_t n, double sigma)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (float)((1.0 - sigma) * (double)x[i] + sigma * (double)noise[i]);
}

#define MEAN_COLS 256

void ops_row_mean(float *out, const float *x, int rows, int d, size_t row_stride)
{
	/* Column blocks so that each row is read contiguously. */
	for (int j0 = 0; j0 < d; j0 += MEAN_COLS) {
		int nj = d - j0 < MEAN_COLS ? d - j0 : MEAN_COLS;
		double acc[MEAN_COLS] = { 0 };
		for (int r = 0; r < rows; r++) {
			const float *xr = x + (size_t)r * row_stride + j0;
			for (int j = 0; j < nj; j++)
				acc[j] += xr[j];
		}
		for (int j = 0; j < nj; j++)
			out[j0 + j] = (float)(acc[j] / rows);
	}
}

double ops_cosine(const float *a, const float *b, int d)
{
	double ab = 0.0, aa = 0.0, bb = 0.0;
	for (int j = 0; j < d; j++) {
		ab += (double)a[j] * b[j];
		aa += (double)a[j] * a[j];
		bb += (double)b[j] * b[j];
	}
	return ops_cosine_of(ab, aa, bb);
}
